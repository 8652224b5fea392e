"""Fargate limits — DaemonSets get no pods on Fargate (document 000, "AWS Fargate 고려 사항": "DaemonSets는
Fargate에서 지원되지 않습니다"; document 001, "2-5. kube-proxy"; AWS "AWS Fargate considerations").

The documents only state the rule; ``daemonset.yaml`` is the harness's probe, applied after document 000's
``fargate_2048_full.yaml`` in the same namespace::

    kubectl apply -f fargate_2048_full.yaml
    kubectl apply -f daemonset.yaml
    kubectl -n fargate-game-2048 get daemonset daemonset-probe

Fargate nodes carry the taint ``eks.amazonaws.com/compute-type=fargate:NoSchedule``, which the probe does not
tolerate, so the DaemonSet controller wants no pod on any of them (desired 0 in a Fargate-only cluster), while
the 2048 Deployment beside it runs on Fargate nodes. Replay uses ``fargate-game-2048-daemonset-<run id>``
with a profile of that name and applies only the Deployment of fargate_2048_full.yaml (its Service and
Ingress belong to Lab 2). Check mode reads the cluster: no DaemonSet pod (kube-proxy, aws-node, …) on a
Fargate node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest

from fargatelab import Capability, Lab, ModuleLab, expect
from fargatelab import conditions as cond

pytestmark = [
    pytest.mark.lab("Fargate limits — DaemonSets", "000"),
    pytest.mark.xdist_group("daemonset"),  # --dist loadgroup: the module's namespace stays on one worker
]

NAMESPACE = "fargate-game-2048"
GAME = "app.kubernetes.io/name=app-2048"
PROBE = "app.kubernetes.io/name=daemonset-probe"


@dataclass
class Probe:
    namespace: str
    #: Fargate nodes present when the DaemonSet controller had counted (replay)
    fargate_nodes: int = 0


def _only(lab: Lab, manifest: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    return [d for d in lab.load(manifest) if d.get("kind") in kinds]


def _daemonset(lab: Lab, namespace: str) -> dict[str, Any]:
    return lab.kube.get(f"/apis/apps/v1/namespaces/{namespace}/daemonsets/daemonset-probe")


@pytest.fixture(scope="module")
def probe(module_lab: ModuleLab) -> Iterator[Probe]:
    with module_lab() as setup:
        if not setup.replay:
            yield Probe(NAMESPACE)
            return
        kube = setup.kube
        namespace = setup.profiled_namespace(setup.scoped(NAMESPACE))
        setup.apply("fargate_2048_full.yaml",
                    "kubectl apply -f ~/environment/myeks/alb-controller/fargate_2048_full.yaml",
                    docs=_only(setup, "fargate_2048_full.yaml", ("Deployment",)))
        replicas = kube.deployment(namespace, "deployment-2048")["spec"].get("replicas", 1)
        setup.wait(setup.conditions.pods_running(namespace, GAME, replicas), setup.timing.pod_ready_timeout + 30)
        setup.apply("daemonset.yaml", docs=_only(setup, "daemonset.yaml", ("DaemonSet",)))

        def counted() -> tuple[bool, str]:
            ds = _daemonset(setup, namespace)
            status = ds.get("status", {})
            return status.get("observedGeneration") == ds["metadata"]["generation"], f"status={status}"

        setup.wait(cond.condition("DaemonSet daemonset-probe counted by its controller", counted), 60)
        yield Probe(namespace, len(kube.fargate_nodes()))


def _pods_of_daemonsets_on_fargate(lab: Lab) -> list[str]:
    fargate = {n["metadata"]["name"] for n in lab.kube.fargate_nodes()}
    return [f"{p['metadata']['namespace']}/{p['metadata']['name']} on {p['spec'].get('nodeName')}"
            for p in lab.kube.get("/api/v1/pods")["items"]
            if any(o.get("kind") == "DaemonSet" for o in p["metadata"].get("ownerReferences") or [])
            and p["spec"].get("nodeName") in fargate]


# id -> (fact, read from (lab, probe), expected)
FACTS: dict[str, tuple[str, Callable[[Lab, Probe], Any], Any]] = {
    "deployment-2048: 5 pods Running on Fargate nodes": (
        "deployment-2048 pods on their own Fargate nodes",
        lambda lab, p: (lambda pods, nodes: (
            len(pods), len({lab.kube.fargate_node_name(x, nodes) for x in pods}
                           - {None}),
            all(x["spec"].get("schedulerName") == "fargate-scheduler" for x in pods)))(
            [x for x in lab.kube.pods(p.namespace, GAME) if x["status"].get("phase") == "Running"],
            lab.kube.fargate_nodes()),
        (5, 5, True)),
    "daemonset-probe: desiredNumberScheduled 0": (
        "DaemonSet daemonset-probe desiredNumberScheduled (Fargate nodes present: see fact below)",
        lambda lab, p: _daemonset(lab, p.namespace)["status"].get("desiredNumberScheduled", 0), 0),
    "daemonset-probe: currentNumberScheduled 0, numberMisscheduled 0": (
        "DaemonSet daemonset-probe current / misscheduled",
        lambda lab, p: tuple(_daemonset(lab, p.namespace)["status"].get(k, 0)
                             for k in ("currentNumberScheduled", "numberMisscheduled")), (0, 0)),
    "daemonset-probe: no pods": ("daemonset-probe pods", lambda lab, p: len(lab.kube.pods(p.namespace, PROBE)), 0),
    "the Fargate nodes were there when it counted": (
        "Fargate nodes when the DaemonSet controller counted (at least the 5 of deployment-2048)",
        lambda lab, p: p.fargate_nodes >= 5, True),
}


#: what holds only where every node is a Fargate node (elsewhere the probe has a pod on each ordinary node)
FARGATE_ONLY = {"daemonset-probe: desiredNumberScheduled 0",
                "daemonset-probe: currentNumberScheduled 0, numberMisscheduled 0", "daemonset-probe: no pods"}


@pytest.mark.replay_only
@pytest.mark.parametrize("fact_id", [pytest.param(f, marks=pytest.mark.needs(Capability.FARGATE_ONLY)) if f in FARGATE_ONLY
                                     else f for f in FACTS], ids=list(FACTS))
def test_daemonset_probe(lab: Lab, probe: Probe, fact_id: str) -> None:
    lab.step("kubectl -n fargate-game-2048 get daemonset daemonset-probe")
    fact, read, expected = FACTS[fact_id]
    expect(fact, read(lab, probe), expected)


def test_no_daemonset_pod_on_a_fargate_node(lab: Lab, probe: Probe) -> None:
    """Cluster-wide (kube-proxy, aws-node, the probe): no pod of a DaemonSet is on a Fargate node."""
    lab.step("kubectl get pods -A -o wide   # DaemonSet pods vs fargate-ip-… nodes")
    expect("DaemonSet pods on Fargate nodes", _pods_of_daemonsets_on_fargate(lab), [])
