"""The EKS-on-Fargate emulation as one process, talking to any Kubernetes API server through the API only.

``python -m fargatelab.emulator --kubeconfig K --aws-endpoint URL ...`` runs the profile cache, both
admission webhooks, the fargate-scheduler (with its node lifecycle), the logging watcher, the kube-system
add-ons and the load balancer controller, until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import boto3

from ..rules.logging_config import LOGGING_CONFIGMAP, LOGGING_NAMESPACE, logging_annotation, validate_logging_configmap
from ..rules.timing import profile
from .addons import install_addons
from .kube import Clients, connect, status_of
from .mutation import LoggingState
from .nodes import Subnet
from .profiles import ProfileCache
from .scheduler import PLACEMENTS, FargateScheduler
from .webhook import WebhookServer, register_webhooks

log = logging.getLogger("fargatelab.emulator")


class LoggingWatcher:
    """The Logging annotation new pods get, from the aws-logging ConfigMap as it is now."""

    def __init__(self, clients: Clients, interval: float = 0.5) -> None:
        self.c = clients
        self.interval = interval
        self.state = LoggingState(logging_annotation(False)[0])

    def refresh(self) -> None:
        try:
            cm = self.c.core.read_namespaced_config_map(LOGGING_CONFIGMAP, LOGGING_NAMESPACE)
        except Exception as exc:
            if status_of(exc) == 404:
                self.state = LoggingState(logging_annotation(False)[0])
                return
            raise
        reason = validate_logging_configmap(cm.data or {})
        self.state = LoggingState(logging_annotation(True, reason is None, reason)[0])

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.refresh()
            except Exception as exc:
                log.warning("cannot read the logging ConfigMap: %s", exc)
            stop.wait(self.interval)


class SubnetCache:
    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2
        self._known: dict[str, Subnet] = {}

    def __call__(self, subnet_id: str) -> Subnet:
        if subnet_id not in self._known:
            s = self.ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
            self._known[subnet_id] = Subnet(subnet_id, s["CidrBlock"], s["AvailabilityZone"])
        return self._known[subnet_id]


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m fargatelab.emulator")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--aws-endpoint", default=None, help="AWS API endpoint (moto); default: the real AWS")
    p.add_argument("--region", required=True)
    p.add_argument("--cluster", required=True)
    p.add_argument("--kubernetes-version", required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--webhook-host", default="127.0.0.1", help="address the API server can reach")
    p.add_argument("--webhook-port", type=int, default=0)
    p.add_argument("--webhook-cert", required=True)
    p.add_argument("--webhook-key", required=True)
    p.add_argument("--ca-file", required=True, help="CA that signed the webhook certificate")
    p.add_argument("--timing", default="fast")
    p.add_argument("--timing-scale", type=float, default=1.0)
    p.add_argument("--placement", choices=PLACEMENTS, default="per-pod-node")
    p.add_argument("--no-load-balancer-controller", action="store_true")
    p.add_argument("--coredns-on-fargate", action="store_true",
                   help="ship CoreDNS without the ec2 compute-type annotation (a cluster made Fargate-only, as in 002)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    session = boto3.session.Session(region_name=args.region)

    def aws(service: str) -> Any:
        return session.client(service, endpoint_url=args.aws_endpoint)

    clients = connect(args.kubeconfig)
    timing = profile(args.timing, args.timing_scale)

    profiles = ProfileCache(aws("eks"), args.cluster)
    logging_watcher = LoggingWatcher(clients)
    webhook = WebhookServer(args.webhook_host, args.webhook_port, args.webhook_cert, args.webhook_key,
                            profiles, lambda: logging_watcher.state,
                            lambda namespace, name: clients.api.sanitize_for_serialization(
                                clients.core.read_namespaced_pod(name, namespace)))
    subnet_of = SubnetCache(aws("ec2"))

    def profile_subnets(name: str) -> list[str]:
        return [s for p in profiles.snapshot() if p.name == name and p.status == "ACTIVE" for s in p.subnets]

    scheduler = FargateScheduler(clients, subnet_of, profile_subnets, args.region, args.kubernetes_version,
                                 args.run_id, timing, args.placement)

    def stop_pods_of(names: set[str]) -> None:
        # EKS stops the pods of a profile being deleted; their controllers' replacements stay Pending.
        selector = f"eks.amazonaws.com/fargate-profile in ({','.join(sorted(names))})"
        for pod in clients.core.list_pod_for_all_namespaces(label_selector=selector).items:
            try:
                clients.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
            except Exception as exc:
                log.warning("cannot stop pod %s: %s", pod.metadata.name, exc)

    profiles.on_removed(stop_pods_of)

    loops: list[Callable[[threading.Event], None]] = [profiles.run, logging_watcher.run, webhook.serve, scheduler.run]
    if not args.no_load_balancer_controller:
        try:
            from .lbc import LoadBalancerController
        except ImportError:
            log.warning("load balancer controller not available")
        else:
            lbc = LoadBalancerController(clients, aws("elbv2"), aws("ec2"), args.region, args.cluster, args.run_id)
            loops.append(lbc.run)

    threads = [threading.Thread(target=loop, args=(stop,), daemon=True, name=loop.__qualname__) for loop in loops]
    for t in threads:
        t.start()
    profiles.healthy.wait(30)
    register_webhooks(clients, f"https://{args.webhook_host}:{webhook.port}", Path(args.ca_file).read_bytes(),
                      args.run_id)
    install_addons(clients, on_fargate=args.coredns_on_fargate)
    print(f"READY webhook={args.webhook_host}:{webhook.port}", flush=True)
    stop.wait()
    for t in threads:
        t.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
