"""The microVM data plane end to end: the fargate-scheduler places a Deployment's pods, each gets a microVM
whose real kubelet runs it, and deleting the Deployment takes the nodes and their microVMs away."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Callable

import pytest

from cluster_helpers import fargate_profile, kubectl, until
from fargatelab.local.environment import LocalEnvironment
from fargatelab.local.vpc_network import namespaces_of_run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="microVMs need root (network namespaces, cgroups): run as root"),
]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleeper, namespace: real}
spec:
  replicas: 2
  selector: {matchLabels: {app: sleeper}}
  template:
    metadata: {labels: {app: sleeper}}
    spec:
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "echo started on $(hostname); sleep 3600"]
"""


@pytest.fixture(scope="module")
def env(local_environment: Callable[..., LocalEnvironment]) -> LocalEnvironment:
    return local_environment("microvms", data_plane="microvm")






def test_pods_run_in_microvms_placed_by_the_fargate_scheduler(env: LocalEnvironment, aws: Callable[[str], Any],
                                                               pod_execution_role: str) -> None:
    h = env.handle()
    eks = aws("eks")
    # The VPC's router, and CoreDNS's microVMs once it runs (the cluster DNS is on Fargate from the start).
    until(lambda: "Running" in kubectl(env, "get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns").stdout,
           120, "CoreDNS Running")
    before = len(namespaces_of_run(h.run_id))
    fargate_profile(env, eks, pod_execution_role, "real", "real")
    assert kubectl(env, "apply", "-f", "-", stdin=DEPLOYMENT).returncode == 0

    def running() -> list[dict[str, Any]]:
        pods = json.loads(kubectl(env, "get", "pods", "-n", "real", "-o", "json").stdout)["items"]
        ok = [p for p in pods if p["status"].get("phase") == "Running"
              and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]
        return ok if len(ok) == 2 else []

    pods = until(running, 180, "2 pods Running")
    nodes = {n["metadata"]["name"]: n for n in json.loads(kubectl(env, "get", "nodes", "-o", "json").stdout)["items"]}
    for pod in pods:
        node = nodes[pod["spec"]["nodeName"]]
        internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        assert pod["spec"]["schedulerName"] == "fargate-scheduler"
        assert (pod["status"]["podIP"], pod["status"]["hostIP"], internal) == (internal[0],) * 2 + ([internal[0]],)
        assert node["metadata"]["name"] == f"fargate-ip-{internal[0].replace('.', '-')}.{h.region}.compute.internal"
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
        logs = kubectl(env, "logs", "-n", "real", pod["metadata"]["name"])
        assert logs.stdout.startswith("started on "), logs.stderr
        events = json.loads(kubectl(env, "get", "events", "-n", "real", "--field-selector",
                                     f"involvedObject.name={pod['metadata']['name']}", "-o", "json").stdout)["items"]
        started = [e for e in events if e["reason"] == "Started"]
        assert started and started[0]["source"].get("component") == "kubelet"
        assert started[0]["source"].get("host") == node["metadata"]["name"]
    assert len(namespaces_of_run(h.run_id)) == before + 2  # one microVM per pod

    # A Service reaches the pods from another microVM, through the client's own kube-proxy.
    assert kubectl(env, "apply", "-f", "-", stdin=WEB).returncode == 0
    web_ip = json.loads(kubectl(env, "get", "service", "-n", "real", "web", "-o", "json").stdout)["spec"]["clusterIP"]
    client = pods[0]["metadata"]["name"]

    def fetched() -> str:
        # busybox's nc: its static wget cannot load the resolver libraries the image lacks
        got = kubectl(env, "exec", "-n", "real", client, "--", "sh", "-c",
                       f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {web_ip} 80")
        return got.stdout if "served by a real pod" in got.stdout else ""

    until(fetched, 120, f"the web Service at {web_ip} from pod {client}")

    # The cluster DNS is a real CoreDNS on Fargate behind kube-dns, from the first pod on.
    lookup = kubectl(env, "exec", "-n", "real", client, "--", "nslookup", "web.real.svc.cluster.local")
    assert f"Address: {web_ip}" in lookup.stdout, lookup.stdout + lookup.stderr
    coredns = json.loads(kubectl(env, "get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o",
                                  "json").stdout)["items"]
    assert coredns and {p["spec"]["schedulerName"] for p in coredns} == {"fargate-scheduler"}

    # The API server is reached from pods through the kubernetes Service: two ENIs in the cluster's subnets.
    endpoints = json.loads(kubectl(env, "get", "endpoints", "kubernetes", "-o", "json").stdout)["subsets"][0]
    assert [p["port"] for p in endpoints["ports"]] == [443] and len(endpoints["addresses"]) == 2
    assert all(a["ip"].startswith("10.11.") for a in endpoints["addresses"])
    api = kubectl(env, "exec", "-n", "real", client, "--", "sh", "-c", "printf '' | nc -w 2 172.20.0.1 443 && echo open")
    assert api.stdout.strip() == "open", api.stderr
    assert kubectl(env, "delete", "deployment", "-n", "real", "web", "--wait=true").returncode == 0

    assert kubectl(env, "delete", "deployment", "-n", "real", "sleeper", "--wait=true").returncode == 0
    until(lambda: len(namespaces_of_run(h.run_id)) == before, 120, "the microVMs gone with their nodes")


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: real}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && echo served by a real pod > /www/index.html && httpd -f -p 80 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: real}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"""


ROOT_SHELL = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  {binding}
  hostPID: true
  tolerations: [{{operator: Exists}}]
  volumes: [{{name: hostroot, hostPath: {{path: /}}}}]
  containers:
  - name: root-shell
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {{privileged: true}}
    volumeMounts: [{{name: hostroot, mountPath: /host}}]
"""


def test_a_pod_bound_to_a_fargate_node_by_hand_never_starts_a_container(
        env: LocalEnvironment, aws: Callable[[str], Any], pod_execution_role: str) -> None:
    """A microVM here is Linux namespaces on the host: a privileged, hostPath, host-PID container bound to its
    kubelet by hand (past the fargate-scheduler) would be root on the machine. The guard refuses it, by nodeName
    and by a binding, and the real kubelet refuses a second pod while its own pod runs."""
    eks = aws("eks")
    fargate_profile(env, eks, pod_execution_role, "guarded", "guarded")
    assert kubectl(env, "run", "-n", "guarded", "owner", "--image=busybox", "--", "sleep", "3600").returncode == 0
    until(lambda: "Running" in kubectl(env, "get", "pod", "-n", "guarded", "owner").stdout, 120, "owner Running")
    node = kubectl(env, "get", "pod", "-n", "guarded", "owner", "-o", "jsonpath={.spec.nodeName}").stdout

    # In a namespace no profile selects, so no Fargate check would ever see it.
    by_name = kubectl(env, "apply", "-f", "-", stdin=ROOT_SHELL.format(
        name="by-name", namespace="default", binding=f"nodeName: {node}"))
    assert by_name.returncode != 0
    assert ("Pod not supported on Fargate: fields not supported: HostPID, volumes not supported: hostroot is of an "
            "unsupported volume Type, invalid SecurityContext fields: Privileged") in by_name.stderr, by_name.stderr

    assert kubectl(env, "apply", "-f", "-", stdin=ROOT_SHELL.format(
        name="by-binding", namespace="default", binding="schedulerName: nobody")).returncode == 0
    binding = json.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "by-binding"},
                          "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    bound = kubectl(env, "create", "--raw", "/api/v1/namespaces/default/pods/by-binding/binding", "-f", "-",
                     stdin=binding)
    assert bound.returncode != 0 and "Pod not supported on Fargate" in bound.stderr, bound.stderr
    assert kubectl(env, "get", "pod", "by-binding", "-o", "jsonpath={.spec.nodeName}").stdout == ""

    # A pod Fargate could run, bound by hand beside the microVM's own: the kubelet's one pod slot is taken.
    plain = ("apiVersion: v1\nkind: Pod\nmetadata: {name: second, namespace: default}\n"
             f"spec: {{nodeName: {node}, containers: [{{name: c, image: busybox, command: [sleep, '3600']}}]}}\n")
    assert kubectl(env, "apply", "-f", "-", stdin=plain).returncode == 0
    reason = until(lambda: kubectl(env, "get", "pod", "second", "-o", "jsonpath={.status.reason}").stdout,
                    60, "the kubelet's verdict on the second pod")
    assert reason == "OutOfpods"
    assert kubectl(env, "get", "pod", "second", "-o", "jsonpath={.status.containerStatuses}").stdout == ""
    for pod in ("by-binding", "second"):
        kubectl(env, "delete", "pod", pod, "--wait=false")
    assert kubectl(env, "delete", "namespace", "guarded", "--wait=true").returncode == 0


def test_a_second_environment_with_real_pods_is_refused_in_one_line(
        local_environment: Callable[..., LocalEnvironment], env: LocalEnvironment) -> None:
    from fargatelab.errors import ExitCode, HarnessError

    with pytest.raises(HarnessError) as refused:
        local_environment("microvms-second", data_plane="microvm")
    assert refused.value.code == ExitCode.ALREADY_RUNNING and "take that environment down" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_down_leaves_no_microvm_behind(env: LocalEnvironment, aws: Callable[[str], Any],
                                       pod_execution_role: str) -> None:
    """Taken down with a pod still running, the environment leaves no process, namespace, cgroup or mount."""
    from pathlib import Path

    from fargatelab.local import process

    h = env.handle()
    eks = aws("eks")
    fargate_profile(env, eks, pod_execution_role, "down")
    assert kubectl(env, "run", "stays", "--image=busybox", "--", "sleep", "3600").returncode == 0
    until(lambda: "Running" in kubectl(env, "get", "pod", "stays").stdout, 120, "pod stays Running")
    state_dir = env.dir
    env.down(quiet=True)

    assert process.tagged_pids(h.run_id) == []
    assert namespaces_of_run(h.run_id) == []
    assert not list(Path("/sys/fs/cgroup").glob(f"*/fargate-labs/{h.run_id}"))
    assert str(state_dir) not in Path("/proc/self/mounts").read_text()
    assert "sleep 3600" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
