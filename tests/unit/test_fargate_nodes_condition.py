"""Pods each on a Fargate node of their own: bound to it (local, eks), or beside its shadow (kind's hosted placement)."""

from __future__ import annotations

from typing import Any

from fargatelab.scenario.conditions import FargateNodesFor
from fargatelab.scenario.kube import Kube


def node(name: str, address: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"addresses": [{"type": "InternalIP", "address": address}]}}


def pod(bound: str, ip: str) -> dict[str, Any]:
    return {"spec": {"nodeName": bound}, "status": {"podIP": ip}}


class FakeKube:
    def __init__(self, pods: list[dict[str, Any]], nodes: list[dict[str, Any]], others: list[dict[str, Any]] = []) -> None:
        self.pods, self.nodes, self.others = pods, nodes, others

    def live_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.pods

    def fargate_nodes(self) -> list[dict[str, Any]]:
        return self.nodes

    def get(self, path: str) -> dict[str, Any]:
        return {"items": self.pods + self.others}

    fargate_node_of = Kube.fargate_node_of  # the lookup under test, over the lists above
    fargate_node_name = Kube.fargate_node_name


A, B = node("fargate-ip-10-11-64-5.x", "10.11.64.5"), node("fargate-ip-10-11-64-6.x", "10.11.64.6")


def probe(kube: FakeKube, count: int) -> tuple[bool, str]:
    return FargateNodesFor(kube, "ns", "app=x", count).probe()  # type: ignore[arg-type]


def test_pods_bound_to_fargate_nodes_of_their_own() -> None:
    assert probe(FakeKube([pod(A["metadata"]["name"], "10.11.64.5"), pod(B["metadata"]["name"], "10.11.64.6")],
                          [A, B]), 2) == (True, "2 pods on 2 Fargate nodes, orphan nodes=[]")


def test_pods_on_a_shared_real_node_count_by_their_shadow_nodes() -> None:
    kube = FakeKube([pod("kind-control-plane", "10.11.64.5"), pod("kind-control-plane", "10.11.64.6")], [A, B],
                    others=[pod("kind-control-plane", "100.64.244.2")])
    assert probe(kube, 2)[0]


def test_a_shadow_node_without_its_pod_is_an_orphan() -> None:
    ok, seen = probe(FakeKube([pod("kind-control-plane", "10.11.64.5")], [A, B]), 1)
    assert not ok and seen == "1 pods on 1 Fargate nodes, orphan nodes=['fargate-ip-10-11-64-6.x']"


def test_two_pods_on_one_fargate_node_do_not_pass() -> None:
    ok, seen = probe(FakeKube([pod(A["metadata"]["name"], "10.11.64.5"), pod(A["metadata"]["name"], "10.11.64.9")],
                              [A]), 2)
    assert not ok and seen.startswith("2 pods on 1 Fargate nodes")
