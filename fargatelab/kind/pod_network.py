"""The kind cluster's pod network: the CNI bridge plugin on each node, and routes between the nodes.

kind's own plugin, kindnetd, is fetched from a registry when a cluster starts and cannot be built from a
Go module here. What it does for a cluster on one Docker network is small, and is done here once the
nodes have joined: each node gets a bridge configuration for the pod range the controller-manager gave
it (``spec.podCIDR``), and a route to every other node's pod range through that node's address. The
nodes are on one bridge, so no encapsulation is needed, and nothing is masqueraded: a pod's address is
what another pod sees, as with the VPC CNI.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import ExitCode, HarnessError
from ..local.vpc_network import MTU

__all__ = ["CONFLIST", "KindNode", "bridge_config", "nodes_of", "routes", "wire"]

#: where the nodes' containerd reads its CNI configuration
CONFLIST = "/etc/cni/net.d/10-bridge.conflist"
#: the node's bridge, made before the CNI plugin (which takes an existing one as it is) so that it answers
#: ARP for the other nodes' pods
_BRIDGE = ("ip link show cni0 >/dev/null 2>&1 || ip link add cni0 type bridge; "
           f"ip link set cni0 mtu {MTU} up && sysctl -qw net.ipv4.conf.cni0.proxy_arp=1")


@dataclass(frozen=True)
class KindNode:
    name: str
    address: str
    pod_cidr: str


def bridge_config(pod_cidr: str, subnets: Iterable[str]) -> dict[str, Any]:
    """The CNI configuration of a node whose pods take addresses from ``pod_cidr``, with the prefix of the
    VPC subnet that holds it (``subnets``), as an ENI's address has; jumbo frames, as in a VPC.

    >>> config = bridge_config("10.11.65.0/24", ["10.11.64.0/20", "10.11.80.0/20"])
    >>> config["plugins"][0]["ipam"]["ranges"]
    [[{'subnet': '10.11.64.0/20', 'rangeStart': '10.11.65.2', 'rangeEnd': '10.11.65.254', 'gateway': '10.11.65.1'}]]
    >>> config["plugins"][0]["ipMasq"], config["plugins"][0]["mtu"]
    (False, 9001)
    """
    node_range = ipaddress.ip_network(pod_cidr)
    subnet = next((s for s in map(ipaddress.ip_network, subnets) if node_range.subnet_of(s)), node_range)  # type: ignore[arg-type]
    first, last = node_range.network_address + 1, node_range.broadcast_address - 1
    return {
        "cniVersion": "1.0.0", "name": "kind-bridge",
        "plugins": [
            # The gateway address sits on cni0 inside the node container's network namespace, not the host's.
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "mtu": MTU,
             "ipam": {"type": "host-local",
                      "ranges": [[{"subnet": str(subnet), "rangeStart": str(first + 1), "rangeEnd": str(last),
                                   "gateway": str(first)}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def routes(node: KindNode, nodes: Iterable[KindNode]) -> list[list[str]]:
    """``ip route`` arguments on ``node`` for every other node's pod range.

    >>> a, b = KindNode("cp", "100.64.244.2", "10.11.64.0/24"), KindNode("w", "100.64.244.3", "10.11.65.0/24")
    >>> routes(a, [a, b])
    [['replace', '10.11.65.0/24', 'via', '100.64.244.3']]
    """
    return [["replace", other.pod_cidr, "via", other.address] for other in nodes if other.name != node.name]


def nodes_of(node_list: dict[str, Any]) -> list[KindNode]:
    """The kind nodes of a ``kubectl get nodes -o json``, with their address and pod range.

    A node without a pod range yet is refused: the controller-manager gives one after the node registers.
    """
    found = []
    for item in node_list["items"]:
        name = item["metadata"]["name"]
        cidr = item["spec"].get("podCIDR")
        address = next((a["address"] for a in item["status"].get("addresses", []) if a["type"] == "InternalIP"), None)
        if not cidr or not address:
            raise HarnessError(f"kind node {name} has no pod range or address: the controller-manager gives one "
                               "to each node (kind's podSubnet); see its log (`kind export logs`) and "
                               "docs/troubleshooting.md",
                               ExitCode.START_FAILED)
        found.append(KindNode(name, address, cidr))
    return found


def _ranged_nodes(kubeconfig: str, expected: int, wait: float) -> list[KindNode]:
    """The ``expected`` nodes, once all have registered and each has its pod range: a worker registers a
    moment after ``kind create`` returns, and the controller-manager gives its range a moment after that
    (longer on a busy host, two clusters starting at once)."""
    deadline = time.monotonic() + wait
    while True:
        listed = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "get", "nodes", "-o", "json"],
                                capture_output=True, text=True, timeout=60)
        try:
            if listed.returncode != 0:
                raise HarnessError(f"cannot list the kind cluster's nodes: {listed.stderr.strip()[:300]}",
                                   ExitCode.START_FAILED)
            nodes = nodes_of(json.loads(listed.stdout))
            if len(nodes) < expected:
                raise HarnessError(f"the kind cluster has {len(nodes)} of its {expected} nodes registered after "
                                   f"{wait:.0f} s: see `kind export logs` and docs/troubleshooting.md",
                                   ExitCode.START_FAILED)
            return nodes
        except HarnessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def wire(kubeconfig: str, subnets: Iterable[str], expected: int, docker: str = "docker",
         wait: float = 120) -> list[KindNode]:
    """Give each of the cluster's ``expected`` nodes its bridge configuration and routes; the nodes, as wired.

    A pod's address has its VPC subnet's prefix, so a pod on another node is on-link to it: the node's
    bridge answers ARP for addresses it routes elsewhere (proxy ARP), as the VPC does.
    """
    subnets = list(subnets)
    nodes = _ranged_nodes(kubeconfig, expected, wait)
    for node in nodes:
        # kind names each node's container after the node; each step with what it reads on stdin
        exec_ = [docker, "exec", node.name]
        steps = [([*exec_, "sh", "-c", _BRIDGE], None),
                 ([docker, "exec", "-i", node.name, "sh", "-c", f"cat > {CONFLIST}.tmp && mv {CONFLIST}.tmp {CONFLIST}"],
                  json.dumps(bridge_config(node.pod_cidr, subnets), indent=2)),
                 *(([*exec_, "ip", "route", *args], None) for args in routes(node, nodes))]
        for step, stdin in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=60, input=stdin)
            if done.returncode != 0:
                raise HarnessError(f"cannot wire the pod network of kind node {node.name} ({' '.join(step[step.index(node.name) + 1:])}): "
                                   f"{done.stderr.strip()[:300]}", ExitCode.START_FAILED)
    return nodes
