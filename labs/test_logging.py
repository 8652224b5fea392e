"""Documented extra — Fargate logging (document 003, the Fargate logging part; document 002, "Fargate logging";
AWS "Fargate logging").

Fargate's built-in log router reads the ConfigMap ``aws-logging`` in the namespace ``aws-observability``
(labelled ``aws-observability: enabled``). Documented checks::

    kubectl get ns --show-labels
    kubectl get cm -n aws-observability aws-logging -o yaml
    cat <<EOF | kubectl apply -f -   (sample-app.yaml: pods that write logs)

Recorded: a pod created while the ConfigMap exists gets ``Logging: LoggingEnabled`` and the event
``LoggingEnabled`` "Successfully enabled logging for pod"; without it ``LoggingDisabled:
LOGGING_CONFIGMAP_NOT_FOUND`` and a Warning ``LoggingDisabled`` event; the validating webhook
``0500-amazon-eks-fargate-configmaps-admission.amazonaws.com`` refuses an unsupported output plugin and a
ConfigMap over 5300 characters; changes reach new pods only.

``aws-observability`` is cluster-wide: the module holds an exclusive cluster lock (``test_netshoot`` takes it
shared while its pods are admitted), is in the xdist group ``aws-observability`` (``--dist loadgroup``), and
puts the namespace and ConfigMap back as it found them. The Fargate webhook reads the ConfigMap with a short
delay (as on EKS, changes reach pods created afterwards), so a probe pod is re-created until the change shows,
for at most ``PROPAGATION`` seconds. Pods run in ``study-aews-logging-<run id>`` with a profile of that name.
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
import yaml

from fargatelab import Lab, ModuleLab, expect
from fargatelab import conditions as cond
from fargatelab.scenario.manifests import MANIFESTS

pytestmark = [
    pytest.mark.lab("Documented extras — Fargate logging", "003"),
    pytest.mark.xdist_group("aws-observability"),
]

NAMESPACE = "study-aews"
OBSERVABILITY = "aws-observability"
CONFIGMAP = f"/api/v1/namespaces/{OBSERVABILITY}/configmaps/aws-logging"
WEBHOOK = "0500-amazon-eks-fargate-configmaps-admission.amazonaws.com"
ENABLED = "LoggingEnabled"
NOT_FOUND = "LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND"
ENABLED_EVENT = ("fargate-scheduler", "Normal", "LoggingEnabled", "Successfully enabled logging for pod")
NOT_FOUND_EVENT = ("fargate-scheduler", "Warning", "LoggingDisabled",
                   'Disabled logging because aws-logging configmap was not found. configmap "aws-logging" not found')
#: the longest the webhook may take to notice a ConfigMap change
PROPAGATION = 15.0
DOCUMENTED_SAMPLE_APP = "cat <<EOF | kubectl apply -f -   # sample-app.yaml, namespace study-aews"


@dataclass
class Logging:
    namespace: str


def _snapshot(lab: Lab) -> tuple[bool, dict[str, Any] | None]:
    """(namespace aws-observability exists, the aws-logging ConfigMap as it is or None)."""
    exists = lab.kube.exists(f"/api/v1/namespaces/{OBSERVABILITY}")
    try:
        configmap = lab.kube.get(CONFIGMAP)
    except LookupError:
        return exists, None
    meta = configmap["metadata"]
    return exists, {"apiVersion": "v1", "kind": "ConfigMap", "data": configmap.get("data", {}),
                    "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}}


def _restore(lab: Lab, namespace_existed: bool, configmap: dict[str, Any] | None) -> None:
    lab.kube.kubectl("delete", "configmap", "aws-logging", "-n", OBSERVABILITY, "--ignore-not-found")
    if configmap is not None:
        lab.kube.kubectl("create", "-f", "-", stdin=json.dumps(configmap))
    elif not namespace_existed:
        lab.kube.kubectl("delete", "namespace", OBSERVABILITY, "--ignore-not-found", "--wait=false")


def _restored(lab: Lab, namespace_existed: bool) -> None:
    if not namespace_existed:
        lab.wait(cond.ResourceDeleted(lab.kube, f"/api/v1/namespaces/{OBSERVABILITY}"), 120)


@pytest.fixture(scope="module")
def logging_lab(module_lab: ModuleLab) -> Iterator[Logging]:
    with module_lab(lock=OBSERVABILITY) as setup:
        if not setup.replay:
            yield Logging(setup.namespace(NAMESPACE))
            return
        namespace_existed, configmap = _snapshot(setup)
        # aws-observability goes back to how this module found it: started first, waited for last,
        # so its namespace and the module's go side by side.
        setup.on_cleanup("aws-observability as it was", lambda: _restored(setup, namespace_existed))
        namespace = setup.profiled_namespace(setup.scoped(NAMESPACE))
        setup.on_cleanup("put back aws-observability", lambda: _restore(setup, namespace_existed, configmap))
        yield Logging(namespace)


def _apply_file(lab: Lab, manifest: str, check: bool = True) -> Any:
    """``kubectl apply -f <manifest>`` as written: aws-observability is the one namespace Fargate reads."""
    lab.step(f"kubectl apply -f {manifest}")
    return lab.kube.kubectl("apply", "-f", str(MANIFESTS / manifest), check=check)


def _delete_configmap(lab: Lab) -> None:
    lab.step("kubectl delete cm -n aws-observability aws-logging")
    lab.kube.kubectl("delete", "configmap", "aws-logging", "-n", OBSERVABILITY, "--ignore-not-found")


def _new_pod(lab: Lab, namespace: str, name: str, expected: str) -> dict[str, Any]:
    """A pod created now; re-created (for at most PROPAGATION s) until the webhook's view has caught up."""
    deadline = time.monotonic() + PROPAGATION
    attempt = 0
    while True:
        attempt += 1
        pod_name = f"{name}-{attempt}"
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name, "namespace": namespace},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]}}
        lab.kube.kubectl("create", "-f", "-", stdin=json.dumps(body))
        pod = lab.kube.pod(namespace, pod_name)
        if (pod["metadata"].get("annotations") or {}).get("Logging") == expected or time.monotonic() > deadline:
            return pod
        lab.kube.kubectl("delete", "pod", "-n", namespace, pod_name, "--wait=false")
        time.sleep(0.5)


def _logging_events(lab: Lab, pod: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    namespace, uid = pod["metadata"]["namespace"], pod["metadata"]["uid"]
    lab.wait(lab.conditions.event_recorded(namespace, uid, "Scheduled"))
    return [(e.get("source", {}).get("component", ""), e["type"], e["reason"], e["message"])
            for e in lab.kube.events(namespace, uid=uid) if e["reason"].startswith("Logging")]


@pytest.mark.replay_only
def test_without_configmap_logging_disabled(lab: Lab, logging_lab: Logging) -> None:
    _delete_configmap(lab)
    pod = _new_pod(lab, logging_lab.namespace, "no-configmap", NOT_FOUND)
    expect("Logging annotation of a pod created without the aws-logging ConfigMap",
           pod["metadata"]["annotations"].get("Logging"), NOT_FOUND)
    expect("logging event without the ConfigMap", _logging_events(lab, pod), [NOT_FOUND_EVENT])


def _too_many_chars() -> str:
    """aws-logging-cloudwatch.yaml's ConfigMap, its parsers.conf padded with comments past 5300 characters."""
    docs = [d for d in yaml.safe_load_all((MANIFESTS / "aws-logging-cloudwatch.yaml").read_text()) if d]
    configmap = copy.deepcopy(next(d for d in docs if d["kind"] == "ConfigMap"))
    size = sum(len(v) for v in configmap["data"].values())
    padding = 5301 - size
    configmap["data"]["parsers.conf"] += "".join(f"# {'x' * 77}\n" for _ in range(padding // 80 + 1))
    assert sum(len(v) for v in configmap["data"].values()) > 5300
    return json.dumps(configmap)


DENIALS = {
    "loki output->not a supported output plugin": (
        "aws-logging-invalid.yaml", "loki is not a supported output plugin. Please fix the logging configmap"),
    "over 5300 chars->too many chars": (None, "Config map has too many chars."),
}


@pytest.mark.replay_only
@pytest.mark.parametrize("case", list(DENIALS), ids=list(DENIALS))
def test_configmap_denied(lab: Lab, logging_lab: Logging, case: str) -> None:
    manifest, reason = DENIALS[case]
    before = _snapshot(lab)[1]
    if manifest:
        result = _apply_file(lab, manifest, check=False)
        # The Namespace in the same file is accepted; only the ConfigMap is refused.
        accepted = re.search(r"^namespace/aws-observability (created|unchanged|configured)", result.stdout, re.M)
        expect("Namespace in the refused file", bool(accepted), True)
    else:
        _apply_file(lab, "aws-logging-cloudwatch.yaml")  # the namespace, and a valid ConfigMap to update
        before = _snapshot(lab)[1]
        lab.step("kubectl apply -f -   # aws-logging with parsers.conf padded past 5300 characters")
        result = lab.kube.kubectl("apply", "-f", "-", stdin=_too_many_chars(), check=False)
    expect("kubectl apply exit code (refused)", result.returncode != 0, True)
    denial = re.search(r'admission webhook "[^"]*" denied the request: .*', result.stderr)
    expect("webhook denial", denial.group(0).strip() if denial else result.stderr.strip(),
           f'admission webhook "{WEBHOOK}" denied the request: {reason}')
    expect("aws-logging ConfigMap unchanged by the refused apply", _snapshot(lab)[1], before)


def test_configmap_enables_logging(lab: Lab, logging_lab: Logging) -> None:
    if lab.replay:
        result = _apply_file(lab, "aws-logging-cloudwatch.yaml", check=False)
        denial = re.search(r'admission webhook "[^"]*" denied the request: .*', result.stderr)
        expect("the webhook's verdict on aws-logging-cloudwatch.yaml", denial.group(0) if denial else "accepted",
               "accepted")
        expect("kubectl apply aws-logging-cloudwatch.yaml", (result.returncode, bool(re.search(
            r"^configmap/aws-logging (created|configured|unchanged)", result.stdout, re.M))), (0, True))
    else:
        lab.ensure("aws-logging-cloudwatch.yaml", "terraform apply (eks_blueprints_addons enable_fargate_fluentbit)")
    lab.step("kubectl get ns --show-labels; kubectl get cm -n aws-observability aws-logging -o yaml")
    namespace = lab.kube.get(f"/api/v1/namespaces/{OBSERVABILITY}")
    expect("aws-observability label", namespace["metadata"].get("labels", {}).get("aws-observability"), "enabled")
    data = lab.kube.get(CONFIGMAP).get("data", {})
    expect("aws-logging keys", sorted(data), ["filters.conf", "flb_log_cw", "output.conf", "parsers.conf"])
    expect("aws-logging output plugins", re.findall(r"^\s*Name\s+(\S+)", data.get("output.conf", ""), re.M),
           ["cloudwatch", "cloudwatch_logs"])
    expect("aws-logging flb_log_cw", data.get("flb_log_cw"), "true")
    expect("aws-logging size within 5300 characters", sum(len(v) for v in data.values()) <= 5300, True)

    if lab.replay:
        # Wait until the webhook sees the ConfigMap, then deploy the documented pods that write logs.
        probe = _new_pod(lab, logging_lab.namespace, "with-configmap", ENABLED)
        expect("Logging annotation of a pod created with the ConfigMap",
               probe["metadata"]["annotations"].get("Logging"), ENABLED)
    lab.ensure("sample-app.yaml", DOCUMENTED_SAMPLE_APP)
    lab.wait(lab.conditions.pods_running(logging_lab.namespace, "app=nginx", 2))
    pods = lab.kube.pods(logging_lab.namespace, "app=nginx")
    expect("sample-app pods' Logging annotation", [p["metadata"]["annotations"].get("Logging") for p in pods],
           [ENABLED, ENABLED])
    if lab.replay:  # events expire after an hour on a student's cluster
        for pod in pods:
            expect(f"logging event of {pod['metadata']['name']}", _logging_events(lab, pod), [ENABLED_EVENT])


@pytest.mark.replay_only
def test_changes_reach_new_pods_only(lab: Lab, logging_lab: Logging) -> None:
    """Deleting the ConfigMap leaves running pods as they were; only pods created afterwards lose logging."""
    _apply_file(lab, "aws-logging-cloudwatch.yaml")
    earlier = _new_pod(lab, logging_lab.namespace, "before-change", ENABLED)
    expect("Logging annotation while the ConfigMap exists", earlier["metadata"]["annotations"].get("Logging"), ENABLED)
    _delete_configmap(lab)
    later = _new_pod(lab, logging_lab.namespace, "after-change", NOT_FOUND)
    expect("Logging annotation of a pod created after the ConfigMap was deleted",
           later["metadata"]["annotations"].get("Logging"), NOT_FOUND)
    expect("Logging annotation of the earlier pod, unchanged",
           lab.kube.pod(logging_lab.namespace, earlier["metadata"]["name"])["metadata"]["annotations"].get("Logging"),
           ENABLED)
