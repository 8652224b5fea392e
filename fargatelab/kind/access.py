"""The ALBs' way to a kind cluster's pods: a network namespace of the run's, on the kind network.

The ALBs' HAProxies listen on the host, as on the microVM data plane, and reach their targets, pod
addresses inside the kind nodes, from this namespace (HAProxy's ``namespace`` on each server). The host
itself never routes the VPC's addresses: two kind runs side by side give their pods the same ranges, and
each namespace routes only its own cluster's, through that cluster's nodes.

The namespace's address on the kind network is one Docker never hands out (the network's ``--ip-range``
keeps Docker to the lower half), picked from the run id.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from typing import Iterable

from ..errors import ExitCode, HarnessError
from ..local.vpc_network import NETNS_PREFIX, namespaces
from .engine import DOCKER_RANGE, KIND_SUBNET
from .pod_network import KindNode

__all__ = ["access_address", "close", "namespace_of", "open_access"]


def namespace_of(run_id: str) -> str:
    """The run's access namespace: named like the run's other namespaces, so an orphan search finds it."""
    return f"{NETNS_PREFIX}{run_id}-kind"


def access_address(run_id: str, taken: Iterable[str] = ()) -> str:
    """An address of the kind network's upper half for ``run_id``, not one of ``taken``.

    >>> a = access_address("ab12cd34"); ipaddress.ip_address(a) in ipaddress.ip_network("100.64.244.128/25")
    True
    >>> access_address("ab12cd34", [a]) != a
    True
    """
    upper = next(n for n in ipaddress.ip_network(KIND_SUBNET).subnets() if not n.overlaps(ipaddress.ip_network(DOCKER_RANGE)))
    hosts = [str(h) for h in upper.hosts()][:-1]  # the last stays free (the network's broadcast is next to it)
    start = int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16) % len(hosts)
    taken = set(taken)
    for step in range(len(hosts)):
        candidate = hosts[(start + step) % len(hosts)]
        if candidate not in taken:
            return candidate
    raise HarnessError(f"no address left on the kind network for another run ({len(hosts)} runs hold one): "
                       "remove finished runs (`fargate-lab cleanup --orphans`)", ExitCode.START_FAILED)


def _ip(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *(["-n", netns] if netns else []), *args], capture_output=True, text=True)


def _taken() -> list[str]:
    taken = []
    for netns in namespaces():
        if netns.endswith("-kind") and netns.startswith(NETNS_PREFIX):
            shown = _ip("-o", "-4", "addr", "show", "dev", "eth0", netns=netns).stdout.split()
            taken += [word.split("/")[0] for i, word in enumerate(shown) if i and shown[i - 1] == "inet"]
    return taken


def open_access(run_id: str, bridge: str, nodes: Iterable[KindNode]) -> str:
    """Make the run's access namespace on ``bridge`` with routes to each node's pod range; its name."""
    netns = namespace_of(run_id)
    close(run_id)  # what a run of the same id left
    address = access_address(run_id, _taken())
    host_end = f"flk{run_id[:8]}"
    steps = [("netns", "add", netns), ("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", netns),
             ("link", "set", host_end, "master", bridge, "up")]
    inside = [("link", "set", "lo", "up"), ("link", "set", "eth0", "up"),
              ("addr", "add", f"{address}/{ipaddress.ip_network(KIND_SUBNET).prefixlen}", "dev", "eth0"),
              *(("route", "add", node.pod_cidr, "via", node.address) for node in nodes)]
    try:
        for step in steps:
            _check(_ip(*step), step)
        for step in inside:
            _check(_ip(*step, netns=netns), step)
    except BaseException:
        close(run_id)
        raise
    return netns


def _check(done: subprocess.CompletedProcess[str], step: tuple[str, ...]) -> None:
    if done.returncode != 0:
        raise HarnessError(f"cannot make the ALBs' way to the kind cluster (`ip {' '.join(step)}`): "
                           f"{done.stderr.strip()}", ExitCode.START_FAILED)


def close(run_id: str) -> None:
    """Remove the run's access namespace (its link goes with it); nothing if there is none."""
    _ip("netns", "del", namespace_of(run_id))
