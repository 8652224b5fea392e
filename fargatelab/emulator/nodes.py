"""Fargate nodes: what one looks like, which IP it gets, and when it goes away.

A Fargate node exists for exactly one pod. It is named from the pod's IP, carries the Fargate labels and
taint and ``pods: 1``, and is deleted once its pod is gone (a completed pod keeps its node).
"""

from __future__ import annotations

import ipaddress
import random
import secrets
from dataclasses import dataclass
from typing import Any, Iterable

from ..rules.naming import fargate_node_name, kubelet_version, node_domain, provider_id

__all__ = ["COMPUTE_TYPE_LABEL", "FARGATE_TAINT", "Subnet", "allocate_ip", "fargate_node", "node_ip",
           "is_fargate_node"]

COMPUTE_TYPE_LABEL = "eks.amazonaws.com/compute-type"
FARGATE_TAINT = {"key": COMPUTE_TYPE_LABEL, "value": "fargate", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Subnet:
    id: str
    cidr: str
    zone: str


def allocate_ip(subnet: Subnet, used: Iterable[str], rng: random.Random | None = None) -> str:
    """A free address of ``subnet``, skipping the five AWS reserves (network, router, DNS, future, broadcast)."""
    net = ipaddress.ip_network(subnet.cidr)
    taken = set(used)
    first, last = int(net.network_address) + 4, int(net.broadcast_address) - 1
    rng = rng or random.Random()
    for _ in range(64):
        candidate = str(ipaddress.ip_address(rng.randint(first, last)))
        if candidate not in taken:
            return candidate
    for value in range(first, last + 1):
        candidate = str(ipaddress.ip_address(value))
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"subnet {subnet.id} ({subnet.cidr}) has no free address")


def is_fargate_node(node: dict[str, Any]) -> bool:
    return (node.get("metadata", {}).get("labels") or {}).get(COMPUTE_TYPE_LABEL) == "fargate"


def node_ip(node: dict[str, Any]) -> str | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            ip: str = address["address"]
            return ip
    return None


def fargate_node(ip: str, subnet: Subnet, region: str, kubernetes_version: str, run_id: str) -> dict[str, Any]:
    """The Node object a Fargate micro-VM registers, status included (kubelets create it that way)."""
    name = fargate_node_name(ip, region)
    hostname = f"ip-{ip.replace('.', '-')}.{node_domain(region)}"
    labels = {
        COMPUTE_TYPE_LABEL: "fargate",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": hostname,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": subnet.zone,
        "failure-domain.beta.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": subnet.zone,
    }
    # The size Kubernetes reports has no relation to the pod's Fargate size: EKS reports the
    # micro-VM's, which is always at least 2 vCPU.
    capacity = {"cpu": "2", "memory": "3943352Ki", "ephemeral-storage": "30787492Ki", "pods": "1"}
    allocatable = {"cpu": "2", "memory": "3841000Ki", "ephemeral-storage": "28373752581", "pods": "1"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            # Not an EKS annotation: it lets `fargate-lab` find the nodes of a run after a crash.
            "annotations": {"fargate-labs/run-id": run_id, "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {
            "providerID": provider_id(subnet.zone, name, secrets.token_hex(5) + "-" + secrets.token_hex(16)),
            "taints": [FARGATE_TAINT],
        },
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": hostname},
                          {"type": "InternalDNS", "address": hostname}],
            "capacity": capacity,
            "allocatable": allocatable,
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": secrets.token_hex(16),
                "containerRuntimeVersion": "containerd://1.7.27",
                "kernelVersion": "5.10.238-234.956.amzn2.x86_64",
                "kubeProxyVersion": kubelet_version(kubernetes_version),
                "kubeletVersion": kubelet_version(kubernetes_version),
                "machineID": secrets.token_hex(16),
                "operatingSystem": "linux",
                "osImage": "Amazon Linux 2",
                "systemUUID": secrets.token_hex(16),
            },
        },
    }
