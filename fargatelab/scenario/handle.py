"""The cluster handle every backend yields: scenarios ask it what the cluster can do, never which it is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

__all__ = ["Capability", "ClusterHandle"]


class Capability:
    """What a backend can do; scenarios skip or adapt on these, with the reason they name."""

    #: pods really run and can reach each other (netshoot probes, ``kubectl exec``)
    POD_NETWORK = "pod-network"
    #: the ALB serves HTTP (the 2048 page through its hostname)
    LOAD_BALANCER_HTTP = "load-balancer-http"
    #: the service proxy of the API server reaches pods (kind)
    SERVICE_PROXY = "service-proxy"
    #: AWS resources live in a real account, so cost and leaks are real
    REAL_AWS = "real-aws"
    #: the run may create, change and delete (replay mode)
    WRITE = "write"
    #: pods reach the internet through the VPC's NAT gateway
    INTERNET_EGRESS = "internet-egress"
    #: the API server accepts the tokens ``aws eks get-token`` makes (``aws eks update-kubeconfig``)
    EKS_AUTHENTICATION = "eks-authentication"
    #: every node is a Fargate node (a pod no profile selects has nowhere to run; DaemonSets want no pod)
    FARGATE_ONLY = "fargate-only"
    #: each Fargate pod is bound to a Fargate node of its own, whose kubelet runs it
    NODE_PER_POD = "node-per-pod"

    #: what each capability is; which backend has it: :mod:`fargatelab.backends.capabilities`
    REASONS: Mapping[str, str] = {
        POD_NETWORK: "pods run as real containers that reach each other (netshoot probes, kubectl exec)",
        LOAD_BALANCER_HTTP: "a real ALB answers HTTP at its hostname (the 2048 page)",
        SERVICE_PROXY: "the API server's service proxy reaches pods",
        REAL_AWS: "AWS resources live in a real account, so cost and leaks are real",
        WRITE: "the run may create, change and delete (replay mode)",
        INTERNET_EGRESS: "pods reach the internet through the VPC's NAT gateway",
        EKS_AUTHENTICATION: "the API server accepts tokens from `aws eks get-token` (aws eks update-kubeconfig)",
        FARGATE_ONLY: "every node is a Fargate node: a pod no profile selects stays Pending, a DaemonSet wants none",
        NODE_PER_POD: "each Fargate pod is bound to a Fargate node of its own (hostIP = pod IP, its kubelet's events)",
    }


@dataclass(frozen=True)
class ClusterHandle:
    """Everything a scenario needs to talk to a cluster and its AWS account."""

    kubeconfig: str
    cluster_name: str
    region: str
    run_id: str
    #: AWS API endpoint (moto) or None for the real AWS endpoints
    aws_endpoint: str | None = None
    capabilities: frozenset[str] = frozenset()
    kubernetes_version: str = ""
    #: multiplier applied to every documented wait (1.0 = the backend's own pace)
    timing_scale: float = 1.0
    extra: Mapping[str, str] = field(default_factory=dict)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    @property
    def node_domain(self) -> str:
        """The VPC's DNS domain in the cluster's region: a node's name ends with it, a pod's search list too.

        >>> ClusterHandle("k", "c", "us-east-1", "r").node_domain
        'ec2.internal'
        """
        from ..rules.naming import node_domain

        return node_domain(self.region)

    def load_balancer(self, hostname: str) -> Mapping[str, object] | None:
        """What the backend serves a load balancer's DNS name with when the name is not in public DNS (the
        local backend's ALBs: ``address``, ``scheme``, ``ports``); None for a name it does not serve, and
        on backends whose load balancers are in DNS."""
        names = self.extra.get("load_balancers")
        if not names:
            return None
        try:
            entry = json.loads(Path(names).read_text()).get(hostname)
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) else None

    def load_balancer_address(self, hostname: str) -> str | None:
        """Where to connect for ``hostname``, asking for it as ``curl --resolve`` does; None: use DNS.
        Internal load balancers have no address here: they answer only inside the VPC."""
        entry = self.load_balancer(hostname) or {}
        return str(entry["address"]) if entry.get("scheme") == "internet-facing" and entry.get("address") else None

    def aws_environment(self) -> dict[str, str]:
        """The standard variables that point boto3 and the AWS CLI at this cluster's AWS endpoint."""
        env = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.aws_endpoint:
            env.update(
                AWS_ENDPOINT_URL=self.aws_endpoint,
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",
            )
        return env
