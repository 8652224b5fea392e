"""The control plane's place in the VPC: the cross-account ENIs EKS puts in the cluster's subnets.

On EKS the API server is reached from pods through the ``kubernetes`` Service, whose endpoints are two ENIs
in the cluster's subnets (``kubectl get endpoints kubernetes``). Here the two ENIs are made in the AWS API
(moto), their addresses live on the VPC router's loopback, and the router forwards port 443 on them to the
API server at the environment's link-local address. The ``kubernetes`` Endpoints and EndpointSlice name
them, as EKS's API servers do.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any, Callable

from ..errors import ExitCode, HarnessError
from .vpc_network import VpcNetwork

__all__ = ["attach_control_plane", "apply_with_kubectl"]

HTTPS = 443


def attach_control_plane(network: VpcNetwork, ec2: Any, cluster_name: str, subnet_ids: list[str],
                         api_host: str, api_port: int, apply: Callable[[dict[str, Any]], None]) -> list[str]:
    """Make the two ENIs, route 443 on them to the API server, and point the ``kubernetes`` Service at them."""
    addresses = []
    for subnet_id in subnet_ids[:2]:
        eni = ec2.create_network_interface(
            SubnetId=subnet_id, Description=f"Amazon EKS {cluster_name}",
            TagSpecifications=[{"ResourceType": "network-interface", "Tags": [
                {"Key": "fargate-labs/run-id", "Value": network.run_id}]}])["NetworkInterface"]
        addresses.append(eni["PrivateIpAddress"])
    for address in addresses:
        _in_router(network, "ip", "addr", "add", f"{address}/32", "dev", "lo")
        _in_router(network, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", address, "-p", "tcp",
                   "--dport", str(HTTPS), "-j", "DNAT", "--to-destination", f"{api_host}:{api_port}",
                   "-m", "comment", "--comment", f"fargate-labs {network.run_id} kubernetes")
    # The slice below is written as the API server writes its own: no mirrored copy of the Endpoints.
    apply({"apiVersion": "v1", "kind": "Endpoints",
           "metadata": {"name": "kubernetes", "namespace": "default",
                        "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
           "subsets": [{"addresses": [{"ip": a} for a in addresses],
                        "ports": [{"name": "https", "port": HTTPS, "protocol": "TCP"}]}]})
    apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": "kubernetes", "namespace": "default",
                        "labels": {"kubernetes.io/service-name": "kubernetes"}},
           "addressType": "IPv4",
           "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
           "ports": [{"name": "https", "port": HTTPS, "protocol": "TCP"}]})
    return addresses


def _in_router(network: VpcNetwork, *command: str) -> None:
    done = subprocess.run(["ip", "netns", "exec", network.router, *command], capture_output=True, text=True)
    if done.returncode != 0:
        raise HarnessError(f"`{' '.join(command)}` in the VPC router failed: {done.stderr.strip()}",
                           ExitCode.START_FAILED)


def apply_with_kubectl(kubectl: str, kubeconfig: str) -> Callable[[dict[str, Any]], None]:
    def apply(obj: dict[str, Any]) -> None:
        done = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-"], input=json.dumps(obj),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise HarnessError(f"cannot apply {obj['kind']} kubernetes: {done.stderr.strip()}", ExitCode.START_FAILED)

    return apply
