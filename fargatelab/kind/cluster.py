"""One run's kind cluster, through the kind CLI: created on its own network, loaded with images, deleted.

A thin handle rather than pytest-kind-ng's ``KindCluster``: that one writes ``.pytest-kind/`` into the
current directory, reads the kind version to download when it is imported, and passes no configuration
of its own to ``kind create cluster``.

**Nothing leaves the machine.** kind would make its network on a private range with outbound NAT, and a pod's packet to an
address no Service has claimed yet (the API server's ClusterIP before kube-proxy's rules exist) would go out
through the host's uplink. The network made here has no NAT, and a rule in Docker's own ``DOCKER-USER``
chain drops whatever its bridge would forward elsewhere: the host still reaches the node (the API server's
published port) and the node the host (the emulation's webhooks and the registry on the gateway), nothing
goes beyond. (Docker's ``--internal`` networks would do the same, but publish no port.)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from ..errors import ExitCode, HarnessError
from . import pod_network
from .engine import DOCKER_RANGE, KIND_GATEWAY, KIND_SUBNET

__all__ = ["BRIDGE", "KindCluster", "NETWORK", "ensure_network"]

#: the Docker network kind puts its nodes on (KIND_EXPERIMENTAL_DOCKER_NETWORK names it for kind)
NETWORK = "fargate-labs-kind"
#: its bridge on the host, named so that one netfilter rule can hold it in
BRIDGE = "fl-kind0"
#: the rule: nothing the bridge forwards goes anywhere but back onto the bridge
_DROP = ["DOCKER-USER", "-i", BRIDGE, "!", "-o", BRIDGE, "-m", "comment", "--comment",
         "fargate-labs: kind stays on this machine", "-j", "DROP"]


#: the nodes' links carry the pods' jumbo frames, as a VPC does
_MTU_OPTION = "com.docker.network.driver.mtu"


def _subnet_is_ours() -> None:
    """The host reaches the nodes only if no other interface claims their subnet (a bridge left by another
    Docker engine would take the replies)."""
    routes = subprocess.run(["ip", "-o", "route", "show", KIND_SUBNET], capture_output=True, text=True).stdout
    others = sorted({line.split(" dev ")[1].split()[0] for line in routes.splitlines() if " dev " in line} - {BRIDGE})
    if others:
        raise HarnessError(f"another interface ({', '.join(others)}) holds the kind network's subnet {KIND_SUBNET}: "
                           f"remove it (`ip link del {others[0]}` if nothing uses it), or run with --backend local",
                           ExitCode.BACKEND_UNAVAILABLE)


def _no_way_out() -> None:
    if subprocess.run(["iptables", "-C", *_DROP], capture_output=True).returncode != 0:
        done = subprocess.run(["iptables", "-I", *_DROP], capture_output=True, text=True)
        if done.returncode != 0:
            raise HarnessError(f"cannot hold the kind network on this machine ({done.stderr.strip()}): the kind "
                               "backend needs Docker's iptables chains (dockerd with --iptables)",
                               ExitCode.BACKEND_UNAVAILABLE)


def ensure_network(docker: str = "docker") -> str:
    """The kind network, made internal on the engine's kind subnet if it is not there; its gateway."""
    found = subprocess.run([docker, "network", "inspect", NETWORK], capture_output=True, text=True)
    if found.returncode == 0 and (
            (KIND_SUBNET, DOCKER_RANGE) not in {(c.get("Subnet"), c.get("IPRange"))
                                                for c in json.loads(found.stdout)[0]["IPAM"]["Config"]}
            or json.loads(found.stdout)[0].get("Options", {}).get(_MTU_OPTION) != str(pod_network.MTU)):
        # made by an earlier version on other addresses: made anew (Docker refuses while a node is on it)
        gone = subprocess.run([docker, "network", "rm", NETWORK], capture_output=True, text=True)
        if gone.returncode != 0:
            raise HarnessError(f"the Docker network {NETWORK} is not on {KIND_SUBNET} and cannot be removed "
                               f"({gone.stderr.strip()}): delete the kind clusters on it, then run again",
                               ExitCode.BACKEND_UNAVAILABLE)
        found = subprocess.run([docker, "network", "inspect", NETWORK], capture_output=True, text=True)
    if found.returncode != 0:
        made = subprocess.run([docker, "network", "create", "--driver=bridge", f"--subnet={KIND_SUBNET}",
                               f"--gateway={KIND_GATEWAY}", f"--ip-range={DOCKER_RANGE}",
                               f"--opt=com.docker.network.bridge.name={BRIDGE}",
                               "--opt=com.docker.network.bridge.enable_ip_masquerade=false",
                               f"--opt={_MTU_OPTION}={pod_network.MTU}",
                               "--label=fargate-labs=kind", NETWORK], capture_output=True, text=True)
        if made.returncode != 0:
            raise HarnessError(f"cannot make the Docker network {NETWORK} ({made.stderr.strip()}): remove what holds "
                               f"{KIND_SUBNET}, or run with --backend local", ExitCode.BACKEND_UNAVAILABLE)
        found = subprocess.run([docker, "network", "inspect", NETWORK], capture_output=True, text=True, check=True)
    _no_way_out()
    _subnet_is_ours()
    for config in json.loads(found.stdout)[0]["IPAM"]["Config"]:
        if config.get("Gateway") and ":" not in config["Gateway"]:
            return str(config["Gateway"])
    raise HarnessError(f"the Docker network {NETWORK} has no IPv4 gateway: remove it (`docker network rm {NETWORK}`)"
                       " and run again", ExitCode.BACKEND_UNAVAILABLE)


class KindCluster:
    """``kind`` at ``kind_bin`` acting on the cluster ``name``; its kubeconfig at ``kubeconfig``."""

    def __init__(self, name: str, kind_bin: str, kubeconfig: Path) -> None:
        self.name, self.kind_bin, self.kubeconfig = name, kind_bin, kubeconfig

    def _kind(self, *args: str, timeout: float = 600, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.kind_bin, *args], capture_output=True, text=True, timeout=timeout, input=stdin,
                              env={**os.environ, "KIND_EXPERIMENTAL_DOCKER_NETWORK": NETWORK})

    def exists(self) -> bool:
        listed = self._kind("get", "clusters")
        return self.name in listed.stdout.split()

    def create(self, image: str, config: dict[str, Any], subnets: list[str],
               wait: float = 180) -> list[pod_network.KindNode]:
        """Create the cluster, wire its pod network, and wait until every node is Ready; nothing is left if
        any of it fails. (kind's own ``--wait`` would wait for a node Ready before its network exists.)"""
        ensure_network()
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        made = self._kind("create", "cluster", f"--name={self.name}", f"--image={image}", "--config=-",
                          f"--kubeconfig={self.kubeconfig}", stdin=json.dumps(config))
        try:
            if made.returncode != 0:
                tail = [line for line in (made.stderr or made.stdout).strip().splitlines() if line.strip()][-3:]
                raise HarnessError(f"kind could not create the cluster {self.name} ({' | '.join(tail)[:600]}): "
                                   "see `fargate-lab kind-engine` and docs/backends.md, or run with --backend local",
                                   ExitCode.BACKEND_UNAVAILABLE)
            nodes = pod_network.wire(str(self.kubeconfig), subnets, len(config["nodes"]))
            ready = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", "wait", "--for=condition=Ready",
                                    "nodes", "--all", f"--timeout={int(wait)}s"], capture_output=True, text=True)
            if ready.returncode != 0:
                raise HarnessError(f"the kind cluster {self.name}'s nodes are not Ready after {int(wait)} s "
                                   f"({ready.stderr.strip()[:300]}): see docs/troubleshooting.md",
                                   ExitCode.START_FAILED)
        except BaseException:
            self.delete()
            raise
        return nodes

    def load(self, archive: Path) -> None:
        """An image archive (OCI or docker-save) into every node's containerd, by kind's own mechanism."""
        done = self._kind("load", "image-archive", str(archive), f"--name={self.name}")
        if done.returncode != 0:
            raise HarnessError(f"kind could not load {archive.name} into {self.name}: "
                               f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}", ExitCode.START_FAILED)

    def delete(self) -> None:
        self._kind("delete", "cluster", f"--name={self.name}", f"--kubeconfig={self.kubeconfig}", timeout=120)
