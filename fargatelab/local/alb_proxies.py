"""The ALBs' data plane: one HAProxy per load balancer that ELBv2 (moto) holds, configured from its listeners,
rules and target groups and reconfigured as they change, with ELBv2's health checks run by HAProxy and
reported back through DescribeTargetHealth.

Run as ``python -m fargatelab.local.alb_proxies --state-dir DIR`` (the environment's ``alb-proxies``
component). Each ALB listens on a loopback address of its own (``127.100.x.y``) on its listeners' ports;
``DIR/load-balancers.json`` maps every DNS name to it, which is what ``fargate-lab resolve`` prints and what
the harness connects to for a hostname. Internal ALBs are served the same way on the host but are not
resolved for it: they answer only inside the VPC.

Inside the VPC each ALB also has an address of the VPC's (in its first public subnet), held by the VPC's
router, where the same HAProxy listens (HAProxy binds in the router's network namespace); ``DIR/vpc-hosts``
gives the VPC's resolver the name of each, so ``curl http://<ALB DNS name>`` works from a pod.

Beside a kind cluster (the state's ``targets_namespace``) there is no VPC router: each HAProxy listens on
the host only and reaches the pods from the run's namespace on the kind network (``fargatelab.kind.access``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..emulator.aws_generation import Generation
from ..rules.timing import profile
from . import process
from .alb_config import ALB_503, Alb, elb_health, render
from .aws.network import VPC_CIDR
from .microvm_host import SHORT_ROOT
from .vpc_network import VpcNetwork

__all__ = ["NAMES_FILE", "address_for", "main", "vpc_address_for"]

log = logging.getLogger("fargatelab.alb")
#: beside the environment's state: DNS name -> {"address", "scheme", "ports", "arn"}
NAMES_FILE = "load-balancers.json"
_INACTIVE = ("draining", "unused", "unavailable")


def _free_address(arn: str, salt: str, count: int, address: Any, taken: set[str]) -> str:
    """The first of ``count`` addresses (``address(n)``), from a place the ARN picks, that is not ``taken``:
    a load balancer keeps its address across restarts while it is free."""
    value = int(hashlib.sha256(f"{salt}{arn}".encode()).hexdigest()[:8], 16)
    for step in range(count):
        candidate = str(address((value + step) % count))
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"no {salt} address left for another load balancer")


def vpc_address_for(arn: str, taken: set[str]) -> str:
    """An address for the ALB inside the VPC, in 10.11.1.1-10.11.15.254 of the first public subnet (pods get
    addresses of the private subnets only; the router's own are .1, .2 and the control plane's ENIs).

    >>> vpc_address_for("arn:lb/1", set()).startswith("10.11.")
    True
    """
    return _free_address(arn, "vpc", 15 * 254, lambda n: f"10.11.{n // 254 + 1}.{n % 254 + 1}", taken)


def address_for(arn: str, taken: set[str]) -> str:
    """A loopback address of its own for the load balancer ``arn``, stable across restarts when free.

    >>> address_for("arn:lb/1", set()) == address_for("arn:lb/1", set())
    True
    >>> a = address_for("arn:lb/1", set()); address_for("arn:lb/1", {a}) != a
    True
    """
    return _free_address(arn, "loopback", 65024, lambda n: f"127.100.{n // 254}.{n % 254 + 1}", taken)


class Proxy:
    """One ALB's HAProxy: its directory, configuration, process and health-check view."""

    def __init__(self, root: Path, run_id: str, arn: str, address: str, network: VpcNetwork | None,
                 vpc_address: str) -> None:
        self.arn, self.address, self.run_id = arn, address, run_id
        self.network, self.vpc_address = network, vpc_address
        if network is not None:
            network.answer_for(vpc_address)
        slug = hashlib.sha256(arn.encode()).hexdigest()[:10]
        self.name = f"alb-{slug}"
        self.dir = root / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        SHORT_ROOT.joinpath(run_id).mkdir(parents=True, exist_ok=True)
        self.socket = SHORT_ROOT / run_id / f"{slug}.sock"  # a unix socket's path is short
        self.errorfile = self.dir / "503.http"
        self.errorfile.write_text(ALB_503)
        self.config = ""
        self.pid = 0
        #: targets seen passing their health checks (healthy from then on, until HAProxy marks them down)
        self.passed: set[str] = set()
        self.first_seen: dict[str, float] = {}

    def apply(self, config: str) -> None:
        """Start HAProxy with ``config``, or reload it (its master re-reads the file on SIGUSR2)."""
        if config == self.config and process.alive(self.pid, self.run_id):
            return
        (self.dir / "haproxy.cfg").write_text(config)
        if process.alive(self.pid, self.run_id):
            (self.dir / "server-state").write_text(self._command("show servers state"))
            os.kill(self.pid, signal.SIGUSR2)
        else:
            if self.pid:
                log.warning("the proxy of %s died: starting it again", self.arn)
            binary = shutil.which("haproxy") or "haproxy"
            self.pid = process.start(self.name, [binary, "-W", "-db", "-f", str(self.dir / "haproxy.cfg")],
                                     self.dir, self.run_id).pid
        self.config = config

    def _command(self, command: str) -> str:
        """One command on HAProxy's stats socket, and its answer ("" when it cannot be asked)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                s.sendall(command.encode() + b"\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            return ""
        return data.decode(errors="replace")

    def stats(self) -> list[dict[str, str]]:
        """HAProxy's ``show stat``: one row per frontend, backend and server."""
        return list(csv.DictReader(io.StringIO(self._command("show stat").lstrip("# "))))

    def health(self, alb: Alb, health_scale: float) -> dict[str, dict[str, dict[str, str]]]:
        """Each target group's targets as ELBv2 target health, from what HAProxy's checks found."""
        rows = {(r.get("pxname"), r.get("svname")): r for r in self.stats()}
        out: dict[str, dict[str, dict[str, str]]] = {}
        now = time.monotonic()
        for i, arn in enumerate(sorted(alb.groups), 1):
            tg = alb.groups[arn]
            out[arn] = {}
            for ip, port in tg.targets:
                key = f"{ip}:{port}"
                self.first_seen.setdefault(f"{arn} {key}", now)
                row = rows.get((f"tg{i}", key), {})
                status, check = row.get("status", ""), row.get("check_status", "").lstrip("* ")
                settled = now - self.first_seen[f"{arn} {key}"] >= tg.healthy * tg.interval * health_scale
                if status.startswith("UP") and check.startswith("L7OK") and settled:
                    self.passed.add(f"{arn} {key}")
                elif status.startswith("DOWN"):
                    self.passed.discard(f"{arn} {key}")
                out[arn][key] = elb_health(row, f"{arn} {key}" in self.passed)
        return out

    def stop(self) -> None:
        if self.pid:
            process.stop([self.pid], grace=2.0)
        if self.network is not None:
            self.network.forget(self.vpc_address)
        self.socket.unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class AlbProxies:
    def __init__(self, state_dir: Path) -> None:
        import boto3

        state = json.loads((state_dir / "state.json").read_text())
        self.dir, self.run_id = state_dir, state["run_id"]
        self.endpoint = state["aws_endpoint"]
        self.elbv2 = boto3.client("elbv2", endpoint_url=self.endpoint, region_name=state["region"],
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
        timing = profile(state.get("timing", "fast"), float(state.get("timing_scale", 1.0)))
        self.health_scale = timing.health_check_scale
        self.root = state_dir / "albs"
        #: where the targets are reached from beside a kind cluster; else the VPC's router serves the ALBs too
        self.targets_in: str | None = state.get("targets_namespace")
        self.network = None if self.targets_in else VpcNetwork(self.run_id, VPC_CIDR)
        self.proxies: dict[str, Proxy] = {}
        self.albs: dict[str, Alb] = {}
        self._generation = Generation(self.endpoint, "elbv2")
        #: what was last written and posted: each pass repeats neither when nothing changed
        self._names = ""
        self._health = ""

    def _inventory(self) -> dict[str, Alb]:
        found = {}
        for lb in self.elbv2.describe_load_balancers()["LoadBalancers"]:
            if lb.get("Type", "application") != "application":
                continue
            try:
                found[lb["LoadBalancerArn"]] = self._describe(lb)
            except ClientError as err:  # deleted while being described: it is gone next pass
                log.info("skipping %s this pass: %s", lb["LoadBalancerArn"], err.response["Error"]["Code"])
        return found

    def _describe(self, lb: dict[str, Any]) -> Alb:
        arn = lb["LoadBalancerArn"]
        listeners = [(li, self.elbv2.describe_rules(ListenerArn=li["ListenerArn"])["Rules"])
                     for li in self.elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]]
        groups = []
        for tg in self.elbv2.describe_target_groups(LoadBalancerArn=arn)["TargetGroups"]:
            health = self.elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])
            groups.append((tg, [(h["Target"]["Id"], int(h["Target"].get("Port") or tg.get("Port") or 80))
                                for h in health["TargetHealthDescriptions"]
                                if (h.get("TargetHealth") or {}).get("State") not in _INACTIVE]))
        return Alb.from_elbv2(lb, listeners, groups)

    def reconcile(self) -> None:
        # The load balancers change only through ELBv2 calls (and the health this posts): their inventory,
        # some twenty calls with two ALBs, is read again only then; HAProxy's checks are read every pass.
        if self._generation.changed():
            self.albs = self._inventory()
            self._generation.mark()
        gone = [a for a in self.proxies if a not in self.albs]
        if gone:
            self._write_names()  # its name stops resolving before its proxy stops answering
        for arn in gone:
            log.info("load balancer %s is gone: stopping its proxy", arn)
            self.proxies.pop(arn).stop()
        health: dict[str, dict[str, dict[str, str]]] = {}
        for arn, alb in self.albs.items():
            proxy = self.proxies.get(arn)
            if proxy is None:
                taken = {p.address for p in self.proxies.values()}
                vpc_taken = {p.vpc_address for p in self.proxies.values()}
                proxy = self.proxies[arn] = Proxy(self.root, self.run_id, arn, address_for(arn, taken), self.network,
                                                  vpc_address_for(arn, vpc_taken))
                log.info("serving %s on %s (in the VPC: %s)", alb.dns_name, proxy.address, proxy.vpc_address)
            in_vpc = (proxy.vpc_address, self.network.router) if self.network else None
            proxy.apply(render(alb, proxy.address, str(proxy.socket), str(proxy.errorfile), self.health_scale,
                               in_vpc, str(proxy.dir / "server-state"), self.targets_in))
            health.update(proxy.health(alb, self.health_scale))
        # Names first: a proxy gone or new is told even if the health report below fails this pass.
        self._write_names()
        posted = json.dumps(health, sort_keys=True)
        if health and posted != self._health:
            request = urllib.request.Request(f"{self.endpoint}/_fargatelab/target-health", data=posted.encode(),
                                             method="POST", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=5).close()
            self._health = posted

    def _write_names(self) -> None:
        names = {alb.dns_name: {"address": self.proxies[arn].address, "scheme": alb.scheme, "arn": arn,
                                "ports": [li.port for li in alb.listeners]}
                 for arn, alb in self.albs.items() if arn in self.proxies}
        # The VPC's resolver reads this (it reloads it within a second): every ALB, internal ones too.
        hosts = "".join(f"{self.proxies[arn].vpc_address} {alb.dns_name}\n"
                        for arn, alb in self.albs.items() if arn in self.proxies)
        written = json.dumps(names, sort_keys=True) + hosts
        if written == self._names:
            return
        for name, text in ((NAMES_FILE, json.dumps(names, indent=1)), ("vpc-hosts", hosts)):
            tmp = self.dir / f"{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.dir / name)
        self._names = written

    def stop_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
        self.proxies.clear()

    def run(self, stop: threading.Event, interval: float = 0.5) -> None:
        self.reconcile()
        print("READY", flush=True)
        while not stop.wait(interval):
            try:
                self.reconcile()
            except Exception as exc:  # moto may be restarting: keep trying until stopped
                log.warning("reconcile failed: %s", exc)


def main(argv: list[str] | None = None) -> int:
    return process.serve_state_dir("fargatelab.local.alb_proxies", AlbProxies, argv)


if __name__ == "__main__":
    sys.exit(main())
