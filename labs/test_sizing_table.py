"""Fargate pod sizing — AWS "Fargate Pod configuration" (the vCPU/memory table), with document 003's outputs
(``0.5vCPU 1GB`` for netshoot and sample-app, ``0.25vCPU 0.5GB`` for kube-ops-view) and its defect 003-1
("fixed 0.5 vCPU / 1 GB units regardless of requests", which AWS contradicts).

AWS's rule: per resource, the larger of the biggest init container request and the sum of the regular
containers' requests; plus 256 MB memory for kubelet, kube-proxy and containerd; rounded up to the smallest
valid vCPU/memory combination covering both. No requests -> 0.25 vCPU / 0.5 GB; limits are not used (but a
container with only a limit gets it as its request from Kubernetes). Each case submits a pod in a profiled
namespace and reads the ``CapacityProvisioned`` annotation EKS writes at admission. The submission is a
server-side dry run (``kubectl create --dry-run=server``): the API server runs admission, EKS's mutating
webhook included, and returns the pod as it would have stored it, so no Fargate node boots for a pod whose
only outcome here is an annotation. Where a webhook refuses dry runs, the pod is created for real.
Replay only (check mode has nothing of the student's to read here); the namespace is
``sizing-<run id>`` with a profile of that name.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from fargatelab import KubectlFailed, Lab, ModuleLab, expect
from fargatelab.eks.facts import RUN_ID_LABEL

pytestmark = [
    pytest.mark.lab("Fargate pod sizing", "003"),
    pytest.mark.replay_only,
    pytest.mark.xdist_group("sizing"),  # --dist loadgroup: the module's namespace stays on one worker
]


@pytest.fixture(scope="module")
def namespace(module_lab: ModuleLab) -> Iterator[str]:
    with module_lab() as setup:
        yield setup.profiled_namespace("sizing")


def _c(cpu: str | None = None, memory: str | None = None, limits: dict[str, str] | None = None,
       **extra: Any) -> dict[str, Any]:
    """A container with these requests (and limits)."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    return {"resources": resources, **extra} if resources else dict(extra)


# id (requests -> documented size) -> (containers, init containers, CapacityProvisioned)
CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], str]] = {
    # AWS's own example: 1 vCPU + 8 GB requested -> 8 GB + 256 MB -> the 2 vCPU row.
    "1vCPU+8Gi->2vCPU 9GB": ([_c("1", "8Gi")], [], "2vCPU 9GB"),
    "no requests->0.25vCPU 0.5GB": ([_c()], [], "0.25vCPU 0.5GB"),
    "500m+500Mi->0.5vCPU 1GB": ([_c("500m", "500Mi")], [], "0.5vCPU 1GB"),
    "250m+256Mi (exactly 0.5GB with the 256MB)->0.25vCPU 0.5GB": ([_c("250m", "256Mi")], [], "0.25vCPU 0.5GB"),
    "250m+257Mi->0.25vCPU 1GB": ([_c("250m", "257Mi")], [], "0.25vCPU 1GB"),
    "memory 2Gi only (over 0.25vCPU's 2GB)->0.5vCPU 3GB": ([_c(memory="2Gi")], [], "0.5vCPU 3GB"),
    "1vCPU+1Gi->1vCPU 2GB": ([_c("1", "1Gi")], [], "1vCPU 2GB"),
    "2vCPU+16Gi (over 2vCPU's 16GB)->4vCPU 17GB": ([_c("2", "16Gi")], [], "4vCPU 17GB"),
    "4vCPU+30Gi (over 4vCPU's 30GB)->8vCPU 32GB": ([_c("4", "30Gi")], [], "8vCPU 32GB"),
    "8vCPU+16Gi (4GB steps)->8vCPU 20GB": ([_c("8", "16Gi")], [], "8vCPU 20GB"),
    "16vCPU+100Gi (8GB steps)->16vCPU 104GB": ([_c("16", "100Gi")], [], "16vCPU 104GB"),
    "2 containers x 500m+500Mi (summed)->1vCPU 2GB": ([_c("500m", "500Mi"), _c("500m", "500Mi")], [], "1vCPU 2GB"),
    "init container 2vCPU+1Gi larger than the sum->2vCPU 4GB": (
        [_c("500m", "500Mi")], [_c("2", "1Gi")], "2vCPU 4GB"),
    "init container smaller than the sum->0.5vCPU 1GB": (
        [_c("500m", "500Mi")], [_c("250m", "256Mi")], "0.5vCPU 1GB"),
    "limits 4/8Gi ignored (requests 250m+256Mi)->0.25vCPU 0.5GB": (
        [_c("250m", "256Mi", limits={"cpu": "4", "memory": "8Gi"})], [], "0.25vCPU 0.5GB"),
    "limits only 1/2Gi (become the requests)->1vCPU 3GB": (
        [_c(limits={"cpu": "1", "memory": "2Gi"})], [], "1vCPU 3GB"),
    "decimal 1G (954Mi)->0.25vCPU 2GB": ([_c(memory="1G")], [], "0.25vCPU 2GB"),
}


def _delete_pod(lab: Lab, namespace: str, name: str) -> None:
    lab.kube.kubectl("delete", "pod", "-n", namespace, name, "--ignore-not-found", "--wait=false", check=False)


def _admitted(lab: Lab, pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` as admission leaves it: from a server-side dry run, or from the pod created for real where a
    webhook does not support dry runs (the API server then refuses the dry run naming that webhook)."""
    meta = pod["metadata"]
    ran = lab.kube.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(pod),
                           check=False)
    if ran.ok:
        admitted: dict[str, Any] = json.loads(ran.stdout)
        return admitted
    if "does not support dry run" not in ran.stderr:
        raise KubectlFailed(ran.command, ran.returncode, ran.stderr)
    lab.on_cleanup(f"pod {meta['name']}", lambda: _delete_pod(lab, meta["namespace"], meta["name"]))
    lab.kube.kubectl("create", "-f", "-", stdin=json.dumps(pod))
    return lab.kube.pod(meta["namespace"], meta["name"])


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_capacity(lab: Lab, namespace: str, case: str) -> None:
    containers, init_containers, size = CASES[case]
    name = f"size-{list(CASES).index(case)}"
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": f"app-{i}", "image": "busybox", "command": ["sleep", "3600"], **c}
                       for i, c in enumerate(containers)],
    }
    if init_containers:
        spec["initContainers"] = [{"name": f"init-{i}", "image": "busybox", "command": ["true"], **c}
                                  for i, c in enumerate(init_containers)]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": {RUN_ID_LABEL: lab.cluster.run_id}},
           "spec": spec}
    lab.step(f"kubectl create --dry-run=server -o json -f - (pod {case.split('->')[0]}): "
             ".metadata.annotations.CapacityProvisioned")
    created = _admitted(lab, pod)
    expect("pod on Fargate (scheduler)", created["spec"].get("schedulerName"), "fargate-scheduler")
    expect(f"CapacityProvisioned for {case.split('->')[0]}",
           (created["metadata"].get("annotations") or {}).get("CapacityProvisioned"), size)
