"""The VPC of a local environment as network namespaces: a router, and one attachment per microVM.

Every VPC address lives only inside namespaces this module creates; the host's own namespace holds none.

* The **router** namespace (``fargate-labs-<run>-vpc``) is the VPC's implicit router: it owns each subnet's
  ``.1`` address (on its loopback, as a VPC router answers for it), forwards between attachments, and has
  one uplink to the host with link-local addresses only. It has no default route, so nothing addressed
  outside the VPC (``curl ipinfo.io``) can leave: the packet is unroutable, there is no NAT anywhere.
* The **host** reaches VPC addresses by one route for the VPC's CIDR through the router's end of the uplink,
  and the router reaches the host's listeners (API server, registry) at the environment's link-local address
  on ``lo``. The host's only neighbour there is the router: it never resolves a VPC address itself, so an
  address asked for before its microVM was attached leaves no failed entry behind (the host would refuse
  the next connection to it, "no route to host", until that entry timed out).
* A **microVM attachment** is a namespace whose ``eth0`` (mtu 9001, as on Fargate) holds the ENI's address
  with its subnet's prefix, default route via the subnet's ``.1``; its peer sits in the router, which
  routes the address there and answers ARP for what lies beyond (proxy ARP), at once: the kernel would
  otherwise hold each answer up to 0.8 s, and drop answers while its queue is full.

Names carry the run id, so ``fargate-lab cleanup`` finds them after a ``kill -9``: namespaces
``fargate-labs-<run>-…``, links ``fl<run>…`` (interface names are at most 15 characters).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from ..errors import ExitCode, HarnessError

__all__ = ["VpcNetwork", "Attachment", "link_local_address", "namespaces", "namespaces_of_run", "remove_run"]

NETNS_PREFIX = "fargate-labs-"
MTU = 9001


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise HarnessError(f"`{' '.join(command)}` failed: {result.stderr.strip()}", ExitCode.START_FAILED)
    return result


def _sysctl(netns: str, **settings: str) -> None:
    """Set ``settings`` (sysctl keys with ``/`` for ``.``, so that interface names may hold dots) in ``netns``."""
    pairs = [f"{key}={value}" for key, value in settings.items()]
    result = subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw", *pairs], capture_output=True, text=True)
    if result.returncode != 0:
        raise HarnessError(f"sysctl {' '.join(pairs)} in {netns} failed: {result.stderr.strip()}",
                           ExitCode.START_FAILED)


def _proxy_arp(link: str) -> dict[str, str]:
    """Answer ARP for what the router routes elsewhere, without the kernel's random delay (up to 0.8 s per
    new neighbour, and answers dropped while its delay queue is full)."""
    return {f"net/ipv4/conf/{link}/proxy_arp": "1", f"net/ipv4/neigh/{link}/proxy_delay": "0"}


def link_local_address(run_id: str) -> str:
    """The environment's address on the host's ``lo``, where its listeners are reached from the VPC.

    One per run, so environments side by side never remove each other's: 169.254.<a>.<b>, away from
    the addresses AWS itself uses in that range (169.254.169.x, 169.254.170.x).

    >>> link_local_address("00000000")
    '169.254.200.1'
    """
    n = int(run_id[:8], 16) if all(c in "0123456789abcdef" for c in run_id[:8]) else sum(map(ord, run_id))
    return f"169.254.{200 + n % 50}.{1 + (n // 50) % 250}"


@dataclass(frozen=True)
class Attachment:
    """One microVM's place in the VPC: its namespace, and the router-side link of its ``eth0``."""

    netns: str
    address: str
    prefix: int
    router_link: str


class VpcNetwork:
    """The router namespace and its uplink for one environment (``run_id``) and VPC (``cidr``)."""

    def __init__(self, run_id: str, cidr: str) -> None:
        self.run_id = run_id
        self.cidr = ipaddress.ip_network(cidr)
        self.router = f"{NETNS_PREFIX}{run_id}-vpc"
        self.host_address = link_local_address(run_id)
        self._uplink_host = f"fl{run_id[:8]}u"
        self._gateways: set[str] = set()

    # --- the router ---------------------------------------------------------------------------

    def create(self) -> None:
        """Make the router namespace and its uplink; the host gets a route for the VPC, never an address in it."""
        owner = route_owner(str(self.cidr))
        if owner:
            # Two environments cannot route one CIDR; the host would not know whose address is whose.
            raise HarnessError(f"VPC {self.cidr} is already routed to {owner} (another environment with real pods): "
                               "take that environment down first (`fargate-lab down`, or `fargate-lab cleanup`)",
                               ExitCode.ALREADY_RUNNING)
        router_side = self._router_address()
        _ip("netns", "add", self.router)
        _ip("link", "set", "lo", "up", netns=self.router)
        _ip("link", "add", self._uplink_host, "type", "veth", "peer", "name", "up0", "netns", self.router)
        _ip("addr", "add", f"{self.host_address}/32", "dev", "lo", check=False)  # may exist after a crash
        _ip("link", "set", self._uplink_host, "up")
        _ip("link", "set", "up0", "up", netns=self.router)
        _ip("addr", "add", f"{router_side}/32", "dev", "up0", netns=self.router)
        _ip("route", "add", f"{self.host_address}/32", "dev", "up0", netns=self.router)
        # Through the router, not on-link: the host resolves the router's address only (see the module).
        for block in (str(self.cidr), self._management_block()):  # microVMs' own addresses: see ``attach``
            _ip("route", "add", block, "via", router_side, "dev", self._uplink_host, "onlink",
                "src", self.host_address)
        _sysctl(self.router, **{"net/ipv4/ip_forward": "1"})

    def _management_block(self) -> str:
        a, b, c, _ = self.host_address.split(".")
        return f"{a}.{b}.{c}.0/24"

    def _management_address(self, address: str) -> str:
        """A free link-local address for a microVM's own traffic, derived from its ENI address."""
        a, b, c, d = self.host_address.split(".")
        taken = {int(d), int(self._router_address().split(".")[3])}
        routed = _ip("route", "show", netns=self.router).stdout
        start = int(ipaddress.ip_address(address)) % 250
        for step in range(250):
            last = 2 + (start + step) % 252
            candidate = f"{a}.{b}.{c}.{last}"
            if last not in taken and f"{candidate} " not in routed:
                return candidate
        raise HarnessError(f"no free management address in {self._management_block()}", ExitCode.START_FAILED)

    def _router_address(self) -> str:
        a, b, c, d = (int(x) for x in self.host_address.split("."))
        return f"{a}.{b}.{c}.{d + 1 if d < 254 else d - 1}"

    def gateway(self, subnet: str) -> str:
        """The subnet's ``.1``: the router answers for it, as a VPC's router does."""
        network = ipaddress.ip_network(subnet)
        address = str(network.network_address + 1)
        if address not in self._gateways:
            _ip("addr", "add", f"{address}/32", "dev", "lo", netns=self.router, check=False)
            self._gateways.add(address)
        return address

    def answer_for(self, address: str) -> None:
        """Make the router hold ``address`` (the VPC's resolver, an ALB's node in the VPC): what is sent to it
        from the VPC arrives in the router's namespace, where its server listens."""
        _ip("addr", "add", f"{address}/32", "dev", "lo", netns=self.router, check=False)

    def forget(self, address: str) -> None:
        _ip("addr", "del", f"{address}/32", "dev", "lo", netns=self.router, check=False)

    def resolver(self) -> str:
        """The VPC's own DNS server, at the CIDR's base + 2 (AmazonProvidedDNS)."""
        return str(self.cidr.network_address + 2)

    # --- microVMs -----------------------------------------------------------------------------

    def attach(self, address: str, subnet: str, management: bool = False) -> Attachment:
        """A namespace for the microVM with ``address``, its ``eth0`` in ``subnet`` (mtu 9001), routed by the router.

        ``management``: the microVM runs a kubelet whose pod shares the address (see ``microvm``): it gets a
        link-local address for its own traffic, forwarding to its pod, and policy routing that gives the
        kubelet what arrives for the address on its port and the pod everything else.
        """
        network = ipaddress.ip_network(subnet)
        if ipaddress.ip_address(address) not in network or not network.subnet_of(self.cidr):  # type: ignore[arg-type]
            raise HarnessError(f"{address} is not in subnet {subnet} of VPC {self.cidr}", ExitCode.BAD_INPUT)
        netns = f"{NETNS_PREFIX}{self.run_id}-{address.replace('.', '-')}"
        link = "fl" + ipaddress.ip_address(address).packed.hex()
        gateway = self.gateway(subnet)
        _ip("netns", "add", netns)
        try:
            _ip("link", "set", "lo", "up", netns=netns)
            _ip("link", "add", link, "mtu", str(MTU), "netns", self.router, "type", "veth",
                "peer", "name", "eth0", "mtu", str(MTU), "netns", netns)
            _ip("link", "set", link, "up", netns=self.router)
            _sysctl(self.router, **_proxy_arp(link))

            _ip("addr", "add", f"{address}/{network.prefixlen}", "dev", "eth0", netns=netns)
            _ip("link", "set", "eth0", "up", netns=netns)
            _ip("route", "add", "default", "via", gateway, "dev", "eth0", netns=netns)
            _ip("route", "add", f"{address}/32", "dev", link, netns=self.router)
            # The router knows the ENI's MAC, as a VPC does: no ARP, which policy routing in a microVM (the
            # address is its pod's) would otherwise have to answer.
            mac = _ip("-j", "link", "show", "eth0", netns=netns).stdout
            _ip("neigh", "replace", address, "lladdr", json.loads(mac)[0]["address"], "dev", link, "nud", "permanent",
                netns=self.router)
            if management:
                self._manage(netns, address, link, gateway)
        except BaseException:
            _ip("netns", "del", netns, check=False)
            raise
        return Attachment(netns, address, network.prefixlen, link)

    def _manage(self, netns: str, address: str, link: str, gateway: str) -> None:
        own = self._management_address(address)
        _ip("addr", "add", f"{own}/32", "dev", "eth0", netns=netns)
        _ip("route", "add", f"{own}/32", "dev", link, netns=self.router)
        _ip("route", "add", f"{self.host_address}/32", "via", gateway, "dev", "eth0", "src", own, netns=netns)
        _sysctl(netns, **{"net/ipv4/ip_forward": "1"})
        # The address is local to the microVM (kubelet serves on it) and is the pod's: the kubelet's port
        # stays local, the rest goes to the pod's route (which the CNI plugin adds), before the local table.
        _ip("rule", "add", "pref", "10", "iif", "eth0", "ipproto", "tcp", "dport", "10250", "lookup", "local",
            netns=netns)
        _ip("rule", "add", "pref", "100", "to", f"{address}/32", "lookup", "main", netns=netns)
        _ip("rule", "add", "pref", "200", "lookup", "local", netns=netns)
        _ip("rule", "del", "pref", "0", "lookup", "local", netns=netns)

    def detach(self, attachment: Attachment) -> None:
        """Remove the microVM's namespace; its veth goes with it, and so does the router's route."""
        _ip("netns", "del", attachment.netns, check=False)

    def remove(self) -> None:
        remove_run(self.run_id)


def route_owner(cidr: str) -> str | None:
    """The link the host routes ``cidr`` to (another environment's uplink), or None while it is free."""
    taken = _ip("route", "show", cidr, check=False).stdout.split()
    if not taken:
        return None
    return taken[taken.index("dev") + 1] if "dev" in taken else "another link"


def namespaces() -> list[str]:
    """Every network namespace on the host."""
    listed = _ip("netns", "list", check=False).stdout.splitlines()
    return [line.split()[0] for line in listed if line.strip()]


def namespaces_of_run(run_id: str) -> list[str]:
    """Every network namespace of ``run_id`` (microVMs and router), also those of a run killed with -9."""
    return [n for n in namespaces() if n.startswith(f"{NETNS_PREFIX}{run_id}-")]


def remove_run(run_id: str) -> list[str]:
    """Remove what ``run_id`` made: its namespaces (their links go with them), the host's uplink, route and
    link-local address. Returns what was removed; removing what is already gone is not an error."""
    removed = []
    for netns in sorted(namespaces_of_run(run_id), key=lambda n: n.endswith("-vpc")):  # the router last
        _ip("netns", "del", netns, check=False)
        removed.append(f"network namespace {netns}")
    uplink = f"fl{run_id[:8]}u"
    if _ip("link", "del", uplink, check=False).returncode == 0:
        removed.append(f"link {uplink}")
    address = link_local_address(run_id)
    if _ip("addr", "del", f"{address}/32", "dev", "lo", check=False).returncode == 0:
        removed.append(f"address {address} on lo")
    return removed
