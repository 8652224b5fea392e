"""The VPC as network namespaces: microVMs reach each other and the host's listeners, nothing leaves the
machine, the host holds no VPC address, and removal leaves nothing."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest

from fargatelab.local.vpc_network import VpcNetwork, namespaces_of_run, remove_run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root: run as root"),
]

CIDR = "10.11.0.0/16"
SUBNET = "10.11.64.0/20"
SERVER = "import socket,sys; s=socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); " \
         "c,a=s.accept(); c.sendall(a[0].encode()); c.close()"


def _in(netns: str, *command: str, timeout: float = 5) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *command], capture_output=True, text=True, timeout=timeout)


def _serve(netns: str | None, address: str, port: int) -> subprocess.Popen[str]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    server = subprocess.Popen([*prefix, sys.executable, "-c", SERVER, address, str(port)], text=True)
    time.sleep(0.5)
    return server


CLIENT = "import socket,sys; c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3); print(c.recv(64).decode())"


@pytest.fixture
def vpc() -> Iterator[VpcNetwork]:
    run_id = f"t{os.getpid() % 10**7:07d}"
    network = VpcNetwork(run_id, CIDR)
    network.create()
    try:
        yield network
    finally:
        remove_run(run_id)


def test_microvms_reach_each_other_and_the_host_but_nothing_else(vpc: VpcNetwork) -> None:
    one = vpc.attach("10.11.64.11", SUBNET)
    two = vpc.attach("10.11.64.12", SUBNET)
    assert "mtu 9001" in _in(one.netns, "ip", "link", "show", "eth0").stdout
    assert "10.11.64.11/20" in _in(one.netns, "ip", "-4", "addr", "show", "eth0").stdout

    server = _serve(two.netns, "10.11.64.12", 8080)
    seen = _in(one.netns, sys.executable, "-c", CLIENT, "10.11.64.12", "8080")
    server.wait(5)
    assert seen.stdout.strip() == "10.11.64.11", seen.stderr  # microVM to microVM, no NAT on the way

    server = _serve(None, vpc.host_address, 18480)
    seen = _in(one.netns, sys.executable, "-c", CLIENT, vpc.host_address, "18480")
    server.wait(5)
    assert seen.stdout.strip() == "10.11.64.11", seen.stderr  # a host listener on the link-local address

    server = _serve(two.netns, "10.11.64.12", 8081)
    with socket.create_connection(("10.11.64.12", 8081), timeout=3) as conn:  # the host reaches the VPC
        assert conn.recv(64).decode() == vpc.host_address
    server.wait(5)

    outside = _in(one.netns, sys.executable, "-c", CLIENT, "192.0.2.1", "80")
    assert outside.returncode != 0 and "unreachable" in outside.stderr.lower()


def test_an_address_asked_for_before_its_microvm_is_reached_once_attached(vpc: VpcNetwork) -> None:
    """The API server may dial a kubelet's address before its microVM exists (a node name reused, say): the
    host's first failure must not outlive the attachment. The host resolves only the router, never a VPC
    address, so no failed neighbour entry for the address is left to refuse the next connection."""
    with pytest.raises(OSError):
        socket.create_connection(("10.11.64.40", 10250), timeout=3)
    two = vpc.attach("10.11.64.40", SUBNET, management=True)
    server = _serve(two.netns, "10.11.64.40", 10250)
    with socket.create_connection(("10.11.64.40", 10250), timeout=3) as conn:
        assert conn.recv(64).decode() == vpc.host_address
    server.wait(5)
    uplink = subprocess.run(["ip", "route", "get", "10.11.64.40"], capture_output=True, text=True).stdout.split()
    neighbours = subprocess.run(["ip", "-4", "neigh", "show", "dev", uplink[uplink.index("dev") + 1]],
                                capture_output=True, text=True).stdout
    resolved = [ipaddress.ip_address(line.split()[0]) for line in neighbours.splitlines()]
    assert resolved and not [a for a in resolved if a in ipaddress.ip_network(CIDR)], neighbours


def test_the_router_answers_arp_without_delay(vpc: VpcNetwork) -> None:
    one = vpc.attach("10.11.64.50", SUBNET)
    delay = _in(vpc.router, "sysctl", "-n", f"net.ipv4.neigh.{one.router_link}.proxy_delay").stdout.strip()
    assert delay == "0"


def test_the_host_holds_no_vpc_address(vpc: VpcNetwork) -> None:
    vpc.attach("10.11.64.20", SUBNET)
    host = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    addresses = [ipaddress.ip_interface(line.split()[3]).ip for line in host.splitlines()]
    assert not [a for a in addresses if a in ipaddress.ip_network(CIDR)]


def test_removal_leaves_nothing(vpc: VpcNetwork) -> None:
    vpc.attach("10.11.64.30", SUBNET)
    assert len(namespaces_of_run(vpc.run_id)) == 2
    removed = remove_run(vpc.run_id)
    assert any("-vpc" in r for r in removed) and any("10-11-64-30" in r for r in removed)
    assert namespaces_of_run(vpc.run_id) == []
    assert vpc.host_address not in subprocess.run(["ip", "addr", "show", "lo"], capture_output=True, text=True).stdout
    assert str(CIDR) not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
