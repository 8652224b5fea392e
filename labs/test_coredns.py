"""Documented extra — CoreDNS on Fargate (document 001, "2-4. coreDNS"; document 002, the coredns add-on's
``computeType``; AWS "Getting started with AWS Fargate", "Update CoreDNS").

EKS ships CoreDNS with the pod template annotation ``eks.amazonaws.com/compute-type: ec2``, which keeps its
pods off Fargate even when a profile selects ``kube-system``. Documented step, after creating that profile::

    kubectl patch deployment coredns -n kube-system --type json \\
      -p='[{"op": "remove", "path": "/spec/template/metadata/annotations/eks.amazonaws.com~1compute-type"}]'

Then the CoreDNS pods run on Fargate nodes. kube-system is shared by the whole cluster: replay names the
profile ``kube-system-<run id>`` (selecting ``kube-system``), restores the annotation and deletes the profile
when the module ends, and holds a cluster-wide lock meanwhile. ``test_kube_system_sizing`` takes the same
lock and both modules are in the xdist group ``kube-system``, so with ``-n 2 --dist loadgroup`` they run on
one worker, one after the other (the lock keeps them apart under ``--dist loadfile`` too).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from fargatelab import Capability, Lab, ModuleLab, expect
from fargatelab import conditions as cond

pytestmark = [
    pytest.mark.lab("Documented extras — CoreDNS on Fargate", "001"),
    pytest.mark.xdist_group("kube-system"),
]

KUBE_SYSTEM = "kube-system"
SELECTOR = "k8s-app=kube-dns"
ANNOTATION = "eks.amazonaws.com/compute-type"
PROFILE_LABEL = "eks.amazonaws.com/fargate-profile"
PATCH = '[{"op": "remove", "path": "/spec/template/metadata/annotations/eks.amazonaws.com~1compute-type"}]'
DOCUMENTED_PATCH = f"kubectl patch deployment coredns -n kube-system --type json -p='{PATCH}'"
DEPLOYMENT = "/apis/apps/v1/namespaces/kube-system/deployments/coredns"


def _live_pods(lab: Lab) -> list[dict[str, Any]]:
    return lab.live_pods(KUBE_SYSTEM, SELECTOR)


def _template_annotations(lab: Lab) -> dict[str, str]:
    annotations: dict[str, str] = lab.kube.get(DEPLOYMENT)["spec"]["template"]["metadata"].get("annotations") or {}
    return annotations


def _restore(lab: Lab, original: dict[str, str], replicas: int) -> None:
    """Put CoreDNS back as EKS ships it: the template annotation, and its pods (Pending) off Fargate.

    A rolling update back to the annotated template would stall: none of its pods can become available
    (they stay Pending), and with ``maxUnavailable`` rounding to 0 the controller keeps the old pods. So the
    Deployment goes to 0 replicas, gets its annotation back, and returns to its replica count.
    """
    patch = {"spec": {"replicas": 0, "template": {"metadata": {"annotations": {ANNOTATION: original.get(ANNOTATION)}}}}}
    lab.kube.kubectl("patch", "deployment", "coredns", "-n", KUBE_SYSTEM, "-p", json.dumps(patch))
    lab.wait(cond.condition("CoreDNS scaled to 0", lambda: (not (p := _live_pods(lab)), f"{len(p)} pods")), 60)
    lab.kube.kubectl("scale", "deployment", "coredns", "-n", KUBE_SYSTEM, f"--replicas={replicas}")

    # A cluster made Fargate-only (002's) has CoreDNS without the pin, on Fargate: back there it goes.
    to_fargate = original.get(ANNOTATION) != "ec2"

    def restored() -> tuple[bool, str]:
        pods = _live_pods(lab)
        pinned = [p for p in pods
                  if (p["metadata"].get("annotations") or {}).get(ANNOTATION) == original.get(ANNOTATION)]
        on_fargate = [p for p in pods if p["spec"].get("schedulerName") == "fargate-scheduler"]
        return (len(pods) == len(pinned) == replicas and len(on_fargate) == (replicas if to_fargate else 0),
                f"{len(pods)} pods, {len(pinned)} with the annotation as it was, {len(on_fargate)} on Fargate")

    lab.wait(cond.condition("CoreDNS restored (as it was before the lab)", restored), 60)


@pytest.fixture(scope="module")
def kube_system(module_lab: ModuleLab) -> Iterator[str | None]:
    """The kube-system profile's name (replay), or None in check mode (the student's own profile)."""
    with module_lab(lock=KUBE_SYSTEM) as setup:
        setup.watch(KUBE_SYSTEM)
        if not setup.replay:
            yield None
            return
        original = _template_annotations(setup)
        replicas = setup.kube.deployment(KUBE_SYSTEM, "coredns")["spec"].get("replicas", 1)
        # Registered first so it runs last: after the profile is gone, the annotation goes back.
        setup.on_cleanup("CoreDNS template annotation", lambda: _restore(setup, original, replicas))
        if original.get(ANNOTATION) != "ec2":
            # A cluster whose pods really run starts as 002's (CoreDNS on Fargate, so the cluster DNS works from
            # the first pod on): the lab first puts CoreDNS as EKS ships it, then replays 001's patch.
            setup.step("CoreDNS as EKS ships it: template annotation eks.amazonaws.com/compute-type: ec2")
            _restore(setup, {ANNOTATION: "ec2"}, replicas)
        setup.step('fargate_profiles = { kube_system = { selectors = [{ namespace = "kube-system" }] } }')
        profile = setup.create_profile(KUBE_SYSTEM, [{"namespace": KUBE_SYSTEM}])
        yield profile["fargateProfileName"]


@pytest.mark.replay_only  # the student has already patched CoreDNS (the documented end state)
@pytest.mark.needs(Capability.FARGATE_ONLY)  # elsewhere the EC2 pin lets ordinary nodes run CoreDNS
def test_coredns_pinned_to_ec2(lab: Lab, kube_system: str) -> None:
    """With a kube-system profile ACTIVE, CoreDNS pods still stay off Fargate: the annotation pins them to EC2."""
    expect(f"CoreDNS template annotation {ANNOTATION}", _template_annotations(lab).get(ANNOTATION), "ec2")
    # Pods made after the profile went ACTIVE: the replacements of the ones deleted here.
    before = {p["metadata"]["uid"] for p in _live_pods(lab)}
    lab.kube.kubectl("delete", "pod", "-n", KUBE_SYSTEM, "-l", SELECTOR, "--wait=false")
    replicas = lab.kube.deployment(KUBE_SYSTEM, "coredns")["spec"]["replicas"]

    def unschedulable() -> tuple[bool, str]:
        pods = [p for p in _live_pods(lab) if p["metadata"]["uid"] not in before]
        waiting = [p for p in pods if any(c["type"] == "PodScheduled" and c["status"] == "False"
                                          for c in p["status"].get("conditions", []))]
        return len(pods) == len(waiting) == replicas, f"{len(waiting)}/{len(pods)} new pods unschedulable"

    lab.wait(cond.condition("new CoreDNS pods unschedulable", unschedulable), 60)
    pods = [p for p in _live_pods(lab) if p["metadata"]["uid"] not in before]
    expect("CoreDNS pod phases", [p["status"].get("phase") for p in pods], ["Pending"] * replicas)
    expect("CoreDNS pods' scheduler (the webhook left them alone)",
           {p["spec"].get("schedulerName") for p in pods}, {"default-scheduler"})
    expect("CoreDNS pods' nodes", [p["spec"].get("nodeName") for p in pods], [None] * replicas)
    expect("CoreDNS pods' profile label", [p["metadata"].get("labels", {}).get(PROFILE_LABEL) for p in pods],
           [None] * replicas)


def test_patch_moves_coredns_to_fargate(lab: Lab, kube_system: str | None) -> None:
    if lab.replay:
        ran = lab.run(DOCUMENTED_PATCH, timeout=120)
        lab.compared(ran, "kubectl patch output", ran.stdout.strip(), "deployment.apps/coredns patched")
    expect(f"CoreDNS template annotation {ANNOTATION} removed by: {DOCUMENTED_PATCH}",
           _template_annotations(lab).get(ANNOTATION), None)
    replicas = lab.kube.deployment(KUBE_SYSTEM, "coredns")["spec"]["replicas"]
    lab.wait(lab.conditions.pods_running(KUBE_SYSTEM, SELECTOR, replicas), lab.timing.pod_ready_timeout + 30)

    def on_fargate_nodes() -> tuple[bool, str]:
        listed = lab.kube.fargate_nodes()
        found = [lab.kube.fargate_node_name(p, listed) for p in _live_pods(lab)]
        return None not in found, f"Fargate nodes of the pods: {found}"

    # A shadow Fargate node (kind's hosted placement) comes a moment after its pod's address.
    lab.wait(cond.condition("each CoreDNS pod on a Fargate node", on_fargate_nodes), 30)
    pods = _live_pods(lab)
    listed = lab.kube.fargate_nodes()
    nodes = [lab.kube.fargate_node_name(p, listed) for p in pods]
    expect("CoreDNS pods on Fargate nodes, one each", (len(set(nodes)), None not in nodes), (replicas, True))
    expect("CoreDNS pods' scheduler", {p["spec"].get("schedulerName") for p in pods}, {"fargate-scheduler"})
    profiles = {p["metadata"]["labels"].get(PROFILE_LABEL) for p in pods}
    if kube_system is not None:
        expect("CoreDNS pods' profile label", profiles, {kube_system})
    else:
        assert len(profiles) == 1 and None not in profiles, f"CoreDNS pods' profile label\n  actual: {profiles}"
    # 100m / 70Mi requested + 256 MB for the Kubernetes components -> the smallest size.
    expect("CoreDNS CapacityProvisioned", {p["metadata"]["annotations"].get("CapacityProvisioned") for p in pods},
           {"0.25vCPU 0.5GB"})
