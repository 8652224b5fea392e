"""Lab 5 — the root-shell pod is rejected (documents 002 and 003, "파드 권한과 호스트 네임스페이스 공유로 호스트 탈취 시도").

Documented steps::

    kubectl apply -f - <<EOF   (root-shell.yaml)
    kubectl get pod -n study-aews root-shell                          -> 0/1 Pending
    kubectl describe pod -n study-aews root-shell | grep Events: -A 10
    kubectl delete pod -n study-aews root-shell

The fargate-scheduler refuses the pod with ``Warning FailedScheduling`` and the exact text the documents
print. The variants take the root-shell pod without any unsupported field and add one field each, so each
message part is pinned down on its own (the order of the parts is fixed by live clusters' messages, quoted
in lab-reference.md). Replay runs in ``study-aews-root-shell-<run id>`` with a profile of the same name.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any, Callable, Iterator

import pytest

from fargatelab import Lab, ModuleLab, expect

pytestmark = [
    pytest.mark.lab("Lab 5 — the root-shell pod is rejected", "002"),
    pytest.mark.xdist_group("root-shell"),  # --dist loadgroup: the module's namespace stays on one worker
]

NAMESPACE = "study-aews"
DOCUMENTED_APPLY = "kubectl apply -f - <<EOF   # root-shell.yaml, namespace study-aews"
ROOT_SHELL_MESSAGE = ("Pod not supported on Fargate: fields not supported: HostNetwork, HostPID, HostIPC, "
                      "volumes not supported: hostroot is of an unsupported volume Type, "
                      "invalid SecurityContext fields: Privileged")


@pytest.fixture(scope="module")
def namespace(module_lab: ModuleLab) -> Iterator[str]:
    """Replay gives the module a namespace of its own (``study-aews-root-shell-<run id>``) and its profile."""
    with module_lab() as setup:
        yield setup.profiled_namespace(setup.scoped(NAMESPACE)) if setup.replay else setup.namespace(NAMESPACE)


def _failed_scheduling(lab: Lab, namespace: str, name: str) -> list[tuple[str, str, str]]:
    pod = lab.kube.pod(namespace, name)
    return [(e.get("source", {}).get("component", ""), e["type"], e["message"])
            for e in lab.kube.events(namespace, uid=pod["metadata"]["uid"]) if e["reason"] == "FailedScheduling"]


def test_root_shell_stays_pending(lab: Lab, namespace: str) -> None:
    lab.ensure("root-shell.yaml", DOCUMENTED_APPLY)
    lab.wait(lab.conditions.pod_pending(namespace, "root-shell", "FailedScheduling"))
    pod = lab.kube.pod(namespace, "root-shell")
    expect("root-shell schedulerName (the profile matched)", pod["spec"].get("schedulerName"), "fargate-scheduler")

    lab.step("kubectl describe pod -n study-aews root-shell | grep Events: -A 10")
    expect("FailedScheduling event of root-shell (source, type, message)",
           _failed_scheduling(lab, namespace, "root-shell"), [("fargate-scheduler", "Warning", ROOT_SHELL_MESSAGE)])

    if lab.replay:
        # "stays": longer than a supported pod takes from creation to Running under this timing profile.
        time.sleep(lab.timing.node_provision + lab.timing.pod_start + 1.0)
    lab.step("kubectl get pod -n study-aews root-shell")
    table = lab.kube.kubectl("get", "pod", "-n", namespace, "root-shell").stdout.splitlines()
    expect("kubectl get pod root-shell: READY and STATUS",
           table[1].split()[1:3] if len(table) > 1 else table, ["0/1", "Pending"])
    pod = lab.kube.pod(namespace, "root-shell")
    expect("root-shell node (none: no Fargate node is made for it)", pod["spec"].get("nodeName"), None)
    expect("root-shell hostIP", pod["status"].get("hostIP"), None)

    if lab.replay:
        lab.step("kubectl delete pod -n study-aews root-shell")
        lab.kube.kubectl("delete", "pod", "-n", namespace, "root-shell", "--wait=false")
        lab.wait(lab.conditions.deleted(f"/api/v1/namespaces/{namespace}/pods/root-shell", 60))


def _supported_root_shell(lab: Lab) -> dict[str, Any]:
    """root-shell.yaml's pod without its four unsupported features (what Fargate would accept)."""
    pod: dict[str, Any] = copy.deepcopy(lab.load("root-shell.yaml")[0])
    spec = pod["spec"]
    for field in ("hostNetwork", "hostPID", "hostIPC", "volumes"):
        spec.pop(field, None)
    container = spec["containers"][0]
    container.pop("securityContext", None)
    container.pop("volumeMounts", None)
    return pod


def _host_path(pod: dict[str, Any]) -> None:
    pod["spec"]["volumes"] = [{"name": "hostroot", "hostPath": {"path": "/"}}]
    pod["spec"]["containers"][0]["volumeMounts"] = [{"mountPath": "/host", "name": "hostroot"}]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(pod: dict[str, Any]) -> None:
        target = pod
        *parents, leaf = path.split(".")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
        target[leaf] = value

    return change


PREFIX = "Pod not supported on Fargate: "
# id -> (what to add to the supported pod, the fargate-scheduler's message or None: it runs)
VARIANTS: dict[str, tuple[Callable[[dict[str, Any]], None], str | None]] = {
    "no unsupported field->Running on Fargate": (lambda pod: None, None),
    "hostNetwork->fields not supported: HostNetwork": (
        _set("spec.hostNetwork", True), PREFIX + "fields not supported: HostNetwork"),
    "hostPID->fields not supported: HostPID": (_set("spec.hostPID", True), PREFIX + "fields not supported: HostPID"),
    "hostIPC->fields not supported: HostIPC": (_set("spec.hostIPC", True), PREFIX + "fields not supported: HostIPC"),
    "hostPath volume->unsupported volume Type": (
        _host_path, PREFIX + "volumes not supported: hostroot is of an unsupported volume Type"),
    "privileged->invalid SecurityContext fields: Privileged": (
        _set("spec.containers.0.securityContext", {"privileged": True}),
        PREFIX + "invalid SecurityContext fields: Privileged"),
    "hostPort->port contains HostIP or HostPort": (
        _set("spec.containers.0.ports", [{"containerPort": 8080, "hostPort": 8080}]),
        PREFIX + "port contains HostIP or HostPort"),
    "capability NET_ADMIN->Capabilities added: NET_ADMIN": (
        _set("spec.containers.0.securityContext", {"capabilities": {"add": ["NET_ADMIN"]}}),
        PREFIX + "invalid SecurityContext fields: Capabilities added: NET_ADMIN"),
}


def _delete_pod(lab: Lab, namespace: str, name: str) -> None:
    lab.kube.kubectl("delete", "pod", "-n", namespace, name, "--ignore-not-found", "--wait=false", check=False)


@pytest.mark.replay_only
@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_one_unsupported_field(lab: Lab, namespace: str, variant: str) -> None:
    change, message = VARIANTS[variant]
    pod = _supported_root_shell(lab)
    change(pod)
    name = f"root-shell-{list(VARIANTS).index(variant)}"
    pod["metadata"].update(name=name, namespace=namespace)
    lab.on_cleanup(f"pod {name}", lambda: _delete_pod(lab, namespace, name))
    lab.kube.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    if message is None:
        lab.wait(lab.conditions.pod_running(namespace, name))
        expect("FailedScheduling events of a supported pod", _failed_scheduling(lab, namespace, name), [])
        return
    lab.wait(lab.conditions.pod_pending(namespace, name, "FailedScheduling"))
    expect(f"FailedScheduling event for {variant.split('->')[0]} (source, type, message)",
           _failed_scheduling(lab, namespace, name), [("fargate-scheduler", "Warning", message)])
    expect(f"{name} node", lab.kube.pod(namespace, name)["spec"].get("nodeName"), None)
