"""Names of Fargate nodes and of the AWS Load Balancer Controller's resources."""

from __future__ import annotations

import hashlib
import re

import pytest

from fargatelab.rules.naming import (fargate_node_name,
    kubelet_version,
    load_balancer_dns_name,
    load_balancer_name,
    provider_id,
    target_group_name)


def sha10(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@pytest.mark.parametrize(
    ("ip", "region", "expected"),
    [
        ("10.11.64.72", "ap-northeast-2", "fargate-ip-10-11-64-72.ap-northeast-2.compute.internal"),
        ("10.10.18.147", "ap-northeast-2", "fargate-ip-10-10-18-147.ap-northeast-2.compute.internal"),
        ("192.168.1.5", "us-west-2", "fargate-ip-192-168-1-5.us-west-2.compute.internal"),
        ("10.0.0.1", "us-east-1", "fargate-ip-10-0-0-1.ec2.internal"),
        ("10.0.0.1", "us-east-2", "fargate-ip-10-0-0-1.us-east-2.compute.internal"),
    ],
    ids=["workshop node", "study node", "us-west-2", "us-east-1 uses ec2.internal", "us-east-2 is not special"],
)
def test_fargate_node_name(ip: str, region: str, expected: str) -> None:
    assert fargate_node_name(ip, region) == expected


@pytest.mark.parametrize("ip", ["10.0.0", "10.0.0.256", "fe80::1", "host"], ids=["short", "octet too big", "ipv6", "name"])
def test_fargate_node_name_needs_an_ipv4_address(ip: str) -> None:
    with pytest.raises(ValueError):
        fargate_node_name(ip, "ap-northeast-2")


def test_provider_id() -> None:
    node = "fargate-ip-10-11-64-72.ap-northeast-2.compute.internal"
    assert provider_id("ap-northeast-2a", node, "1a2b3c4d5e") == f"aws:///ap-northeast-2a/1a2b3c4d5e/{node}"


@pytest.mark.parametrize(
    ("given", "prefix"),
    [("1.34.4", "v1.34.4-eks-"), ("v1.34.4", "v1.34.4-eks-"), ("1.23.17", "v1.23.17-eks-"),
     ("1.30", "v1.30.0-eks-"), ("v1.30.8-eks-2d5f260", "v1.30.8-eks-")],
    ids=["plain", "with v", "workshop 1.23", "minor only", "already an EKS version"],
)
def test_kubelet_version_shape(given: str, prefix: str) -> None:
    version = kubelet_version(given)
    assert version.startswith(prefix)
    assert re.fullmatch(r"v\d+\.\d+\.\d+-eks-[0-9a-f]{7}", version)


def test_kubelet_version_is_deterministic_and_differs_by_version() -> None:
    assert kubelet_version("1.34.4") == kubelet_version("v1.34.4")
    assert kubelet_version("1.34.4")[-7:] != kubelet_version("1.34.5")[-7:]


def test_kubelet_version_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        kubelet_version("latest")


LB_CASES = [
    ("workshop game", "eks-demo", "fargate-game-2048", "ingress-2048", "internet-facing", "k8s-fargateg-ingress2-"),
    ("study game (docs: k8s-game2048-ingress2-)", "c", "game-2048", "ingress-2048", "internet-facing",
     "k8s-game2048-ingress2-"),
    ("study-aews cut to 8", "c", "study-aews", "ingress-2048", "internet-facing", "k8s-studyaew-ingress2-"),
    ("short names are not padded", "c", "ns", "web", "internal", "k8s-ns-web-"),
    ("dots and dashes stripped", "c", "a.b-c", "x.y_z", "internal", "k8s-abc-xyz-"),
]


@pytest.mark.parametrize(
    ("cluster", "namespace", "ingress", "scheme", "prefix"), [c[1:] for c in LB_CASES], ids=[c[0] for c in LB_CASES]
)
def test_load_balancer_name(cluster: str, namespace: str, ingress: str, scheme: str, prefix: str) -> None:
    name = load_balancer_name(cluster, namespace, ingress, scheme)
    assert name == prefix + sha10(f"{cluster}{namespace}/{ingress}{scheme}")
    assert len(name) <= 32  # the ELB limit


def test_load_balancer_name_hash_covers_cluster_and_scheme() -> None:
    base = load_balancer_name("c1", "ns", "ing", "internet-facing")
    assert load_balancer_name("c2", "ns", "ing", "internet-facing") != base
    assert load_balancer_name("c1", "ns", "ing", "internal") != base
    assert load_balancer_name("c1", "ns", "ing", "internet-facing") == base


def test_load_balancer_name_for_an_explicit_group() -> None:
    name = load_balancer_name("c", "ns", "ing", "internet-facing", group_name="shared.alb-group-for-everyone")
    assert name == "k8s-sharedalbgroupfor-" + sha10("cshared.alb-group-for-everyoneinternet-facing")


def test_load_balancer_name_rejects_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown scheme"):
        load_balancer_name("c", "ns", "ing", "public")


def test_target_group_name() -> None:
    name = target_group_name("c", "study-aews", "ingress-2048", "service-2048", "uid-1", 80, 80)
    expected_hash = sha10("c" + "study-aews/ingress-2048" + "study-aews" + "ingress-2048" + "uid-1" + "80" + "80"
                          + "ip" + "HTTP" + "HTTP1")
    assert name == "k8s-studyaew-service2-" + expected_hash


@pytest.mark.parametrize(
    "change",
    [{"service_uid": "uid-2"}, {"service_port": "http"}, {"target_port": 8080}, {"target_type": "instance"},
     {"protocol": "HTTPS"}, {"protocol_version": "HTTP2"}, {"group_name": "g"}],
    ids=["service uid", "named service port", "target port", "target type", "protocol", "protocol version", "group"],
)
def test_target_group_hash_covers(change: dict[str, object]) -> None:
    args: dict[str, object] = dict(cluster_name="c", namespace="ns", ingress_name="ing", service_name="svc",
                                   service_uid="uid-1", service_port=80, target_port=80)
    assert target_group_name(**args) != target_group_name(**{**args, **change})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lb", "region", "scheme", "digits", "expected"),
    [
        ("k8s-game2048-ingress2-db993ba6ac", "ap-northeast-2", "internet-facing", 782663732,
         "k8s-game2048-ingress2-db993ba6ac-782663732.ap-northeast-2.elb.amazonaws.com"),
        ("k8s-ns-web-0123456789", "us-west-2", "internal", "1234567890",
         "internal-k8s-ns-web-0123456789-1234567890.us-west-2.elb.amazonaws.com"),
        ("k8s-ns-web-0123456789", "cn-northwest-1", "internet-facing", 1,
         "k8s-ns-web-0123456789-1.cn-northwest-1.elb.amazonaws.com.cn"),
    ],
    ids=["documented internet-facing ALB", "internal prefix", "China partition"],
)
def test_load_balancer_dns_name(lb: str, region: str, scheme: str, digits: str | int, expected: str) -> None:
    assert load_balancer_dns_name(lb, region, scheme, digits) == expected


def test_a_fargate_node_in_us_east_1_is_in_ec2_internal() -> None:
    from fargatelab.emulator.nodes import Subnet, fargate_node

    node = fargate_node("10.0.1.5", Subnet("subnet-1", "10.0.0.0/20", "us-east-1a"), "us-east-1", "1.34.4", "r1")
    assert node["metadata"]["name"] == "fargate-ip-10-0-1-5.ec2.internal"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "ip-10-0-1-5.ec2.internal"
