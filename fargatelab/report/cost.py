"""What a run cost, estimated from what it observed: Fargate vCPU-hours and GB-hours, and ALB hours.

* Fargate: every pod of the run (in a namespace labelled with the run id or ending in ``-<run id>``)
  that got a ``CapacityProvisioned`` annotation (``0.25vCPU 0.5GB``) is billed for that capacity over its
  lifetime: from its ``creationTimestamp`` until it was seen deleted (the watch's DELETED event), or
  until its containers finished for a pod that completed, or until the meter stopped for one still
  alive. Fargate bills per second with a one-minute minimum, so each pod's seconds are rounded up and
  raised to 60. (Fargate starts billing when the image pull starts, a little after creation: the
  estimate errs high by the scheduling delay.)
* ALB: every load balancer of the run (see :func:`fargatelab.cleanup.leftovers.run_load_balancers`) from its
  ``CreatedTime`` until it was seen gone, billed per started hour. LCU charges depend on traffic and are
  not estimated.

Prices are the on-demand list prices of :data:`PRICES` for the cluster's region (Linux/x86 Fargate, ALB
hourly); regions without an entry are estimated with the ap-northeast-2 prices and say so.

>>> parse_capacity("0.25vCPU 0.5GB")
(0.25, 0.5)
>>> pod = PodRecord("u1", "ns-r1", "p", "0.25vCPU 0.5GB", start=0.0, end=30.0)
>>> pod.billed_seconds
60
>>> report = estimate([pod], [], "ap-northeast-2")
>>> report["fargate"]["vcpu_hours"], report["fargate"]["gb_hours"]
(0.004167, 0.008333)
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["Prices", "PRICES", "PodRecord", "LoadBalancerRecord", "parse_capacity", "estimate", "CostMeter",
           "merge_observations", "write_report", "summary_line"]

log = logging.getLogger("fargatelab.report.cost")


@dataclass(frozen=True)
class Prices:
    region: str
    fargate_vcpu_hour: float
    fargate_gb_hour: float
    alb_hour: float
    currency: str
    as_of: str
    source: str


#: On-demand list prices used for the estimate, with where and when they were read.
PRICES = {
    "ap-northeast-2": Prices(
        region="ap-northeast-2", fargate_vcpu_hour=0.04656, fargate_gb_hour=0.00511, alb_hour=0.0225,
        currency="USD", as_of="2025-01",
        source="AWS list prices for Asia Pacific (Seoul): https://aws.amazon.com/fargate/pricing/ "
               "(Amazon EKS, Linux/x86, per vCPU-hour and per GB-hour) and "
               "https://aws.amazon.com/elasticloadbalancing/pricing/ (Application Load Balancer-hour); "
               "recorded from the pricing pages as of 2025-01, not fetched at run time"),
}

_CAPACITY = re.compile(r"^\s*([0-9.]+)\s*vCPU\s+([0-9.]+)\s*GB\s*$", re.IGNORECASE)


def parse_capacity(value: str) -> tuple[float, float]:
    """(vCPU, GB) of a CapacityProvisioned annotation; ValueError when it is not one."""
    m = _CAPACITY.match(value or "")
    if not m:
        raise ValueError(f"not a CapacityProvisioned value: {value!r}")
    return float(m.group(1)), float(m.group(2))


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    capacity: str
    start: float  # epoch seconds
    end: float | None = None
    end_reason: str = ""

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end if self.end is not None else time.time()) - self.start)

    @property
    def billed_seconds(self) -> int:
        return max(60, math.ceil(self.seconds))


@dataclass
class LoadBalancerRecord:
    arn: str
    name: str
    created: float
    gone: float | None = None

    @property
    def hours(self) -> float:
        return max(0.0, (self.gone if self.gone is not None else time.time()) - self.created) / 3600.0

    @property
    def billed_hours(self) -> int:
        return max(1, math.ceil(self.hours - 1e-9))


def _epoch(stamp: Any) -> float:
    if isinstance(stamp, _dt.datetime):
        return stamp.timestamp()
    return _dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def estimate(pods: Iterable[PodRecord], load_balancers: Iterable[LoadBalancerRecord], region: str) -> dict[str, Any]:
    prices = PRICES.get(region) or PRICES["ap-northeast-2"]
    pods, load_balancers = list(pods), list(load_balancers)
    vcpu_hours = gb_hours = 0.0
    rows = []
    for pod in sorted(pods, key=lambda p: (p.start, p.namespace, p.name)):
        vcpu, gb = parse_capacity(pod.capacity)
        hours = pod.billed_seconds / 3600.0
        vcpu_hours += vcpu * hours
        gb_hours += gb * hours
        rows.append({**asdict(pod), "vcpu": vcpu, "gb": gb, "seconds": round(pod.seconds, 3),
                     "billed_seconds": pod.billed_seconds})
    alb_hours = sum(lb.billed_hours for lb in load_balancers)
    fargate_cost = vcpu_hours * prices.fargate_vcpu_hour + gb_hours * prices.fargate_gb_hour
    alb_cost = alb_hours * prices.alb_hour
    return {
        "region": region,
        "prices": asdict(prices),
        "prices_note": "" if region in PRICES else f"no prices recorded for {region}; {prices.region} prices used",
        "fargate": {"pods": len(rows), "vcpu_hours": round(vcpu_hours, 6), "gb_hours": round(gb_hours, 6),
                    "cost": round(fargate_cost, 6), "pod_records": rows},
        "alb": {"load_balancers": len(load_balancers), "hours": alb_hours, "cost": round(alb_cost, 6),
                "records": [{**asdict(lb), "hours": round(lb.hours, 6), "billed_hours": lb.billed_hours}
                            for lb in load_balancers]},
        "total_cost": round(fargate_cost + alb_cost, 6),
        "currency": prices.currency,
    }


def summary_line(report: dict[str, Any], path: Path | None = None) -> str:
    f, a = report["fargate"], report["alb"]
    where = f" ({path})" if path else ""
    return (f"cost estimate: Fargate {f['pods']} pods, {f['vcpu_hours']:.4f} vCPU-h + {f['gb_hours']:.4f} GB-h; "
            f"ALB {a['load_balancers']} x {a['hours']} h; total {report['total_cost']:.4f} {report['currency']} "
            f"at {report['prices']['region']} list prices of {report['prices']['as_of']}{where}")


def write_report(directory: Path, report: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cost.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    return path


# --- observation ----------------------------------------------------------------------------------------


class CostMeter:
    """Watches the run's pods (Kubernetes watch) and polls its load balancers while the run goes on."""

    def __init__(self, kubeconfig: str, run_id: str, aws: Callable[[str], Any] | None, clusters: list[str],
                 alb_interval: float = 20.0) -> None:
        self.kubeconfig, self.run_id, self.aws, self.clusters = kubeconfig, run_id, aws, clusters
        self.alb_interval = alb_interval
        self.pods: dict[str, PodRecord] = {}
        self.load_balancers: dict[str, LoadBalancerRecord] = {}
        self.labelled: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: each thread, with how long stop() waits for it
        self._threads: list[tuple[threading.Thread, float]] = []
        self._api: Any = None
        self.errors: list[str] = []

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client

            from ..kube_client import client_configuration

            self._api = client.ApiClient(client_configuration(self.kubeconfig))
        return self._api

    def belongs(self, namespace: str) -> bool:
        return namespace.endswith(f"-{self.run_id}") or namespace in self.labelled

    # Pods ---------------------------------------------------------------------------------------------

    def observe_pod(self, pod: Any, deleted: bool = False, now: float | None = None) -> None:
        """Record one pod as the API shows it (a kubernetes client V1Pod)."""
        meta = pod.metadata
        if not self.belongs(meta.namespace or ""):
            return
        capacity = (meta.annotations or {}).get("CapacityProvisioned")
        with self._lock:
            record = self.pods.get(meta.uid)
            if record is None:
                if not capacity:
                    return  # not (yet) on Fargate: not billed
                record = PodRecord(meta.uid, meta.namespace, meta.name, capacity, _epoch(meta.creation_timestamp))
                self.pods[meta.uid] = record
            elif capacity:
                record.capacity = capacity
            if record.end is not None:
                return
            if deleted:
                record.end, record.end_reason = (now or time.time()), "deleted"
                return
            phase = pod.status.phase if pod.status else None
            if phase in ("Succeeded", "Failed"):
                finished = [c.state.terminated.finished_at for c in (pod.status.container_statuses or [])
                            if c.state and c.state.terminated and c.state.terminated.finished_at]
                record.end, record.end_reason = (max(_epoch(f) for f in finished) if finished
                                                 else (now or time.time())), phase.lower()

    def _vanished(self, alive_uids: set[str], now: float) -> None:
        with self._lock:
            for uid, record in self.pods.items():
                if record.end is None and uid not in alive_uids:
                    record.end, record.end_reason = now, "gone"

    def _refresh_namespaces(self) -> None:
        from kubernetes import client

        from ..eks.facts import RUN_ID_LABEL

        items = client.CoreV1Api(self._client()).list_namespace(
            label_selector=f"{RUN_ID_LABEL}={self.run_id}").items
        self.labelled |= {n.metadata.name for n in items}

    def _watch_pods(self) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(self._client())
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    self._refresh_namespaces()
                    listing = core.list_pod_for_all_namespaces()
                    for pod in listing.items:
                        self.observe_pod(pod)
                    self._vanished({p.metadata.uid for p in listing.items}, time.time())
                    version = listing.metadata.resource_version
                w = watch.Watch()
                for event in w.stream(core.list_pod_for_all_namespaces, resource_version=version,
                                      timeout_seconds=5, allow_watch_bookmarks=True):
                    obj = event["object"]
                    if event["type"] == "BOOKMARK":
                        version = obj.metadata.resource_version if hasattr(obj, "metadata") else version
                        continue
                    if event["type"] == "ERROR":
                        version = ""
                        break
                    if obj.metadata.namespace and not self.belongs(obj.metadata.namespace):
                        if obj.metadata.namespace.endswith(self.run_id):
                            self._refresh_namespaces()
                    self.observe_pod(obj, deleted=event["type"] == "DELETED")
                    version = obj.metadata.resource_version or version
                    if self._stop.is_set():
                        w.stop()
                        break
                self._refresh_namespaces()
            except Exception as exc:  # 410 Gone, a dropped connection: list again
                if "410" not in str(exc):
                    log.debug("pod watch restarted: %s", exc)
                version = ""
                self._stop.wait(1.0)

    # Load balancers -------------------------------------------------------------------------------------

    def poll_load_balancers(self, now: float | None = None) -> None:
        if self.aws is None:
            return
        from ..cleanup.leftovers import run_load_balancers

        now = now or time.time()
        current = run_load_balancers(self.aws("elbv2"), self.run_id, self.clusters or None)
        seen = {lb["LoadBalancerArn"] for lb in current}
        with self._lock:
            for lb in current:
                if lb["LoadBalancerArn"] not in self.load_balancers:
                    self.load_balancers[lb["LoadBalancerArn"]] = LoadBalancerRecord(
                        lb["LoadBalancerArn"], lb["LoadBalancerName"], _epoch(lb["CreatedTime"]))
            for arn, record in self.load_balancers.items():
                if record.gone is None and arn not in seen:
                    record.gone = now

    def _poll_load_balancers(self) -> None:
        while not self._stop.wait(self.alb_interval):
            try:
                self.poll_load_balancers()
            except Exception as exc:
                log.debug("load balancer poll failed: %s", exc)

    # Lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> CostMeter:
        # An idle pod watch ends only with its 5 s server timeout: stop() gives it a moment, not that long,
        # since its final listing sees whatever the watch would have (the threads are daemons).
        for target, patience in ((self._watch_pods, 0.5), (self._poll_load_balancers, 25.0)):
            t = threading.Thread(target=target, daemon=True, name=f"cost-{target.__name__}")
            t.start()
            self._threads.append((t, patience))
        return self

    def stop(self) -> dict[str, Any]:
        """Stop watching; one last look at what is left; the observations (JSON-ready)."""
        self._stop.set()
        for t, patience in self._threads:
            t.join(timeout=patience)
        now = time.time()
        try:
            from kubernetes import client

            listing = client.CoreV1Api(self._client()).list_pod_for_all_namespaces()
            for pod in listing.items:
                self.observe_pod(pod, now=now)
            self._vanished({p.metadata.uid for p in listing.items}, now)
        except Exception as exc:
            self.errors.append(f"final pod listing failed: {exc}")
        try:
            self.poll_load_balancers(now)
        except Exception as exc:
            self.errors.append(f"final load balancer listing failed: {exc}")
        with self._lock:
            return {"pods": [asdict(p) for p in self.pods.values()],
                    "load_balancers": [asdict(lb) for lb in self.load_balancers.values()],
                    "stopped": now, "errors": list(self.errors)}


def merge_observations(observations: Iterable[dict[str, Any]]) -> tuple[list[PodRecord], list[LoadBalancerRecord]]:
    """Combine what several processes (pytest-xdist workers) saw of the same pods and load balancers.

    A pod's end is the first precise observation (deleted, or its containers' finish) if any process made
    one, else the earliest time a process found it gone.
    """
    pods: dict[str, list[PodRecord]] = {}
    lbs: dict[str, LoadBalancerRecord] = {}
    for obs in observations:
        for raw in obs.get("pods", []):
            pod = PodRecord(**raw)
            pods.setdefault(pod.uid, []).append(pod)
        for raw in obs.get("load_balancers", []):
            lb = LoadBalancerRecord(**raw)
            have = lbs.get(lb.arn)
            if have is None:
                lbs[lb.arn] = lb
            elif lb.gone is not None and (have.gone is None or lb.gone < have.gone):
                have.gone = lb.gone
    merged = []
    for seen in pods.values():
        pod = seen[0]
        ends = [p for p in seen if p.end is not None]
        precise = [p for p in ends if p.end_reason != "gone"]
        best = min(precise or ends, key=lambda p: p.end or 0.0) if ends else None
        merged.append(PodRecord(pod.uid, pod.namespace, pod.name, pod.capacity, min(p.start for p in seen),
                                best.end if best else None, best.end_reason if best else ""))
    return merged, list(lbs.values())
