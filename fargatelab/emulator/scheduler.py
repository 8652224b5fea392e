"""The fargate-scheduler: places each Fargate pod on a Fargate node of its own, or says why it cannot.

Level-triggered: every pass lists what the API holds and acts on the difference, so the scheduler
rebuilds its view after a restart and never binds a pod twice (a second binding is refused by the API).

Three placements:

* ``per-pod-node`` (local backend): a new Fargate node per pod, run by KWOK, and the pod bound to it;
* ``hosted`` (kind): the pod is bound to a real worker, and a shadow Fargate node named from the pod's
  IP keeps the node count and the node facts the labs assert;
* ``microvm`` (local backend, real data plane): as ``per-pod-node``, but a real kubelet in the node's
  microVM takes the node over, so the kubelet's own events and the containers' are real, not written here.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import threading
import time
from decimal import Decimal
from typing import Any, Callable

from ..rules.compat import unsupported_reason
from ..rules.logging_config import logging_annotation
from ..rules.matching import PROFILE_LABEL
from ..rules.sizing import capacity_provisioned, parse_quantity, pod_requests
from ..rules.timing import Timing
from .changes import Changes
from .kube import Clients, emit_event, status_of
from .mutation import FARGATE_SCHEDULER
from .nodes import COMPUTE_TYPE_LABEL, Subnet, allocate_ip, fargate_node, is_fargate_node, node_ip

__all__ = ["FargateScheduler", "PLACEMENTS", "worker_with_room"]

log = logging.getLogger(__name__)
PLACEMENTS = ("per-pod-node", "hosted", "microvm")
#: seconds a released ENI address is held before the scheduler gives it out again
RELEASE_HOLD = 30.0
#: the longest the scheduler waits between passes when nothing changes
IDLE = 1.0
_NODE_EVENTS = (
    ("Starting", "Starting kubelet."),
    ("NodeHasSufficientMemory", "Node {node} status is now: NodeHasSufficientMemory"),
    ("NodeHasNoDiskPressure", "Node {node} status is now: NodeHasNoDiskPressure"),
    ("NodeHasSufficientPID", "Node {node} status is now: NodeHasSufficientPID"),
    ("NodeAllocatableEnforced", "Updated Node Allocatable limit across pods"),
    ("NodeReady", "Node {node} status is now: NodeReady"),
)


def worker_with_room(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], pod: dict[str, Any]) -> str | None:
    """Of the real nodes that take ordinary pods (a worker, or a control-plane node without its NoSchedule
    taint), the one with the most CPU left after the requests of the pods bound to it, if ``pod`` fits there;
    of equals, the one with the fewest pods.

    >>> node = lambda name, cpu: {"metadata": {"name": name, "labels": {}}, "spec": {},
    ...                           "status": {"allocatable": {"cpu": cpu, "memory": "4Gi"}}}
    >>> asks = lambda cpu, on=None: {"spec": {"nodeName": on, "containers": [{"resources": {"requests": {"cpu": cpu}}}]},
    ...                              "status": {"phase": "Running"}}
    >>> worker_with_room([node("a", "2"), node("b", "2")], [asks("1500m", "a")], asks("500m"))
    'b'
    >>> worker_with_room([node("a", "2")], [asks("1500m", "a")], asks("1")) is None
    True
    >>> worker_with_room([node("a", "2"), node("b", "2")], [asks("0", "a")], asks("0"))
    'b'

    """
    used: dict[str, tuple[Decimal, Decimal]] = {}
    count: dict[str, int] = {}
    for bound in pods:
        on = bound["spec"].get("nodeName")
        if on and bound["status"].get("phase") not in ("Succeeded", "Failed"):
            count[on] = count.get(on, 0) + 1
            cpu, memory = pod_requests(bound["spec"])
            before = used.get(on, (Decimal(0), Decimal(0)))
            used[on] = (before[0] + cpu, before[1] + memory)
    want_cpu, want_memory = pod_requests(pod["spec"])
    best: tuple[Decimal, int, str] | None = None
    for node in nodes:
        spec, name = node["spec"], node["metadata"]["name"]
        if is_fargate_node(node) or spec.get("unschedulable") or any(
                t.get("effect") == "NoSchedule" for t in spec.get("taints") or []):
            continue
        allocatable = node["status"].get("allocatable") or {}
        cpu_used, memory_used = used.get(name, (Decimal(0), Decimal(0)))
        cpu_left = parse_quantity(allocatable.get("cpu", "0")) - cpu_used
        memory_left = parse_quantity(allocatable.get("memory", "0")) - memory_used
        if cpu_left >= want_cpu and memory_left >= want_memory:
            rank = (cpu_left, -count.get(name, 0), name)
            best = rank if best is None or rank[:2] > best[:2] else best
    return best[2] if best else None


def _loads(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


class FargateScheduler:
    def __init__(self, clients: Clients, subnets: Callable[[str], Subnet], profile_subnets: Callable[[str], list[str]],
                 region: str, kubernetes_version: str, run_id: str, timing: Timing,
                 placement: str = "per-pod-node", interval: float = 0.2) -> None:
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}")
        self.c = clients
        self.subnet = subnets
        self.profile_subnets = profile_subnets
        self.region = region
        self.kubernetes_version = kubernetes_version
        self.run_id = run_id
        self.timing = timing
        self.placement = placement
        self.interval = interval
        self._rejected: set[str] = set()
        self._announced: set[str] = set()
        self._provisioning: set[str] = set()
        self._rng = random.Random()
        #: addresses of Fargate nodes, with when they were last seen taken (a released one is held a while)
        self._last_taken: dict[str, float] = {}
        #: whether the last pass left something to do once time has passed (see :meth:`run`)
        self._deferred = False

    # --- API reads ----------------------------------------------------------------------------

    def _pods(self, field_selector: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = _loads(self.c.core.list_pod_for_all_namespaces(
            field_selector=field_selector, _preload_content=False))["items"]
        for pod in items:  # list items carry no kind; events need it for their involvedObject
            pod.setdefault("kind", "Pod")
            pod.setdefault("apiVersion", "v1")
        return items

    def _fargate_nodes(self) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = _loads(self.c.core.list_node(
            label_selector=f"{COMPUTE_TYPE_LABEL}=fargate", _preload_content=False))["items"]
        return nodes

    def _claim(self, namespace: str) -> Callable[[str], tuple[str, str | None] | None]:
        """(bound PV, its CSI driver or None) of a claim; None only when the claim is not bound."""

        def lookup(claim: str) -> tuple[str, str | None] | None:
            pvc = _loads(self.c.core.read_namespaced_persistent_volume_claim(
                claim, namespace, _preload_content=False))
            pv_name = pvc.get("spec", {}).get("volumeName")
            if not pv_name:
                return None
            pv = _loads(self.c.core.read_persistent_volume(pv_name, _preload_content=False))
            return pv_name, (pv.get("spec", {}).get("csi") or {}).get("driver")

        return lookup

    # --- one pass -----------------------------------------------------------------------------

    def reconcile(self) -> None:
        self._deferred = False
        pods = self._pods()
        nodes = self._fargate_nodes()
        used_ips = {ip for ip in (node_ip(n) for n in nodes) if ip}
        # A bound pod's node is named from its address: taken even while that node is (re-)registering.
        used_ips |= {name.split(".")[0].removeprefix("fargate-ip-").replace("-", ".") for name in
                     (p["spec"].get("nodeName") or "" for p in pods) if name.startswith("fargate-ip-")}
        used_ips |= self._recently_released(used_ips)
        for pod in pods:
            spec, meta = pod["spec"], pod["metadata"]
            if spec.get("schedulerName") != FARGATE_SCHEDULER or meta.get("deletionTimestamp"):
                continue
            try:
                if not spec.get("nodeName") and pod["status"].get("phase") == "Pending":
                    self._place(pod, used_ips)
                elif self.placement == "hosted" and pod["status"].get("podIP"):
                    self._ensure_shadow_node(pod, used_ips)
                if pod["status"].get("phase") == "Running" and self.placement != "microvm":
                    self._announce_started(pod)
            except Exception as exc:  # one unreadable pod (a missing claim, say) must not stall the rest
                log.warning("cannot schedule %s/%s: %s", meta["namespace"], meta["name"], exc)
        self._collect_nodes(nodes, pods)

    def _recently_released(self, taken: set[str], hold: float = RELEASE_HOLD) -> set[str]:
        """Addresses whose node went less than ``hold`` seconds ago: not given out again yet, so a new
        pod's microVM never meets the one its address last served while that one is still being taken
        down (a network namespace is torn down after it is deleted, not at once)."""
        now = time.monotonic()
        self._last_taken.update({ip: now for ip in taken})
        self._last_taken = {ip: t for ip, t in self._last_taken.items() if now - t < hold}
        return set(self._last_taken) - taken

    def _place(self, pod: dict[str, Any], used_ips: set[str]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        reason = unsupported_reason(spec, self._claim(meta["namespace"]))
        if reason is None:
            try:
                capacity_provisioned(spec)
            except ValueError as exc:
                reason = f"Pod not supported on Fargate: {exc}"
        if reason is not None:
            if uid not in self._rejected and not self._has_event(pod, "FailedScheduling"):
                emit_event(self.c, pod, "Warning", "FailedScheduling", reason, FARGATE_SCHEDULER)
            self._rejected.add(uid)
            return
        # On microVMs the real start is part of the latency: only what the profile adds beyond it is waited here.
        pending = self.timing.microvm_wait if self.placement == "microvm" else self.timing.node_provision
        if self._age(pod) < pending:
            self._deferred = True
            return
        profile = (meta.get("labels") or {}).get(PROFILE_LABEL, "")
        subnet_ids = self.profile_subnets(profile)
        if not subnet_ids:
            return  # the profile is gone; EKS leaves such pods Pending
        subnet = self.subnet(self._rng.choice(subnet_ids))
        if self.placement == "hosted":
            target = self._worker(pod)
            if target is None:
                return  # no worker has room yet: the pod stays Pending and the next pass looks again
        else:
            ip = allocate_ip(subnet, used_ips, self._rng)
            used_ips.add(ip)
            node = fargate_node(ip, subnet, self.region, self.kubernetes_version, self.run_id)
            if self.placement == "microvm":
                # The microVM's kubelet reports the node's state itself: conditions and node info written here
                # would read to it as another boot of the node (a Rebooted event) and hide its NodeReady. What
                # stays: the ENI's address (the next placement sees it taken) and the size, which the kubelet
                # admits the bound pod against before its own first status lands.
                status = node["status"]
                node["status"] = {"addresses": status["addresses"][:1], "capacity": status["capacity"],
                                  "allocatable": status["allocatable"]}
            target = node["metadata"]["name"]
            self._provisioning.add(target)
            try:
                self.c.core.create_node(node, _preload_content=False)
            except Exception as exc:
                self._provisioning.discard(target)
                log.warning("cannot create node %s: %s", target, exc)
                return
        try:
            self._bind(pod, target)
        finally:
            self._provisioning.discard(target)
        if self.placement == "per-pod-node":
            self._node_events(node)

    def _bind(self, pod: dict[str, Any], node_name: str) -> None:
        meta = pod["metadata"]
        annotation = (meta.get("annotations") or {}).get("Logging", "")
        # The event follows the annotation the webhook set at admission, as on EKS.
        _, event = logging_annotation("NOT_FOUND" not in annotation, "INVALID" not in annotation)
        emit_event(self.c, pod, event.type, event.reason, event.message, FARGATE_SCHEDULER)
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        try:
            self.c.core.create_namespaced_binding(meta["namespace"], binding, _preload_content=False)
        except Exception as exc:
            # 409: already bound (by an earlier life of this scheduler); the API refuses a second bind.
            if status_of(exc) != 409:
                log.warning("cannot bind %s/%s: %s", meta["namespace"], meta["name"], exc)
            return
        emit_event(self.c, pod, "Normal", "Scheduled",
                   f"Successfully assigned {meta['namespace']}/{meta['name']} to {node_name}", FARGATE_SCHEDULER)

    # --- node lifecycle -----------------------------------------------------------------------

    def _node_events(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        ref = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": name}}
        try:
            for reason, message in _NODE_EVENTS:
                emit_event(self.c, ref, "Normal", reason, message.format(node=name), "kubelet", host=name)
        except Exception as exc:  # events are informative; the node itself is what counts
            log.warning("cannot record events of node %s: %s", name, exc)

    def _announce_started(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._announced:
            return
        self._announced.add(uid)
        if self._has_event(pod, "Started"):
            return
        node = pod["spec"].get("nodeName")
        for container in pod["spec"].get("containers", []):
            image, name = container.get("image", ""), container["name"]
            for reason, message in (("Pulling", f'Pulling image "{image}"'),
                                    ("Pulled", f'Successfully pulled image "{image}"'),
                                    ("Created", f"Created container {name}"),
                                    ("Started", f"Started container {name}")):
                emit_event(self.c, pod, "Normal", reason, message, "kubelet", host=node)

    def _worker(self, pod: dict[str, Any]) -> str | None:
        """The real node with the most CPU left that has room for ``pod`` (the kubelet refuses a pod bound
        beyond its node's allocatable)."""
        nodes = _loads(self.c.core.list_node(_preload_content=False))["items"]
        return worker_with_room(nodes, self._pods(), pod)

    def _ensure_shadow_node(self, pod: dict[str, Any], used_ips: set[str]) -> None:
        ip = pod["status"]["podIP"]
        if ip in used_ips:
            return
        profile = (pod["metadata"].get("labels") or {}).get(PROFILE_LABEL, "")
        subnet_ids = self.profile_subnets(profile)
        if not subnet_ids:
            return
        subnets = [self.subnet(i) for i in subnet_ids]
        # the profile's subnet that holds the address (its zone is the node's), else its first
        subnet = next((n for n in subnets if ipaddress.ip_address(ip) in ipaddress.ip_network(n.cidr)), subnets[0])
        node = fargate_node(ip, subnet, self.region, self.kubernetes_version, self.run_id)
        try:
            self.c.core.create_node(node, _preload_content=False)
            used_ips.add(ip)
            self._node_events(node)
        except Exception as exc:
            if status_of(exc) != 409:
                log.warning("cannot create shadow node for %s: %s", ip, exc)

    def _collect_nodes(self, nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        """Delete each Fargate node whose pod is gone; a completed pod keeps its node, as on EKS."""
        occupied = {p["spec"].get("nodeName") for p in pods}
        occupied_ips = {p["status"].get("podIP") for p in pods if p["spec"].get("schedulerName") == FARGATE_SCHEDULER}
        for node in nodes:
            name = node["metadata"]["name"]
            if name in occupied or name in self._provisioning:
                continue
            if self.placement == "hosted" and node_ip(node) in occupied_ips:
                continue
            # A node created just before a restart may still be waiting for its pod's binding.
            if self._age(node) < 5.0:
                self._deferred = True
                continue
            try:
                self.c.core.delete_node(name, _preload_content=False)
            except Exception as exc:
                if status_of(exc) != 404:
                    log.warning("cannot delete node %s: %s", name, exc)

    # --- helpers ------------------------------------------------------------------------------

    def _has_event(self, pod: dict[str, Any], reason: str) -> bool:
        meta = pod["metadata"]
        events = _loads(self.c.core.list_namespaced_event(
            meta["namespace"], field_selector=f"involvedObject.uid={meta['uid']},reason={reason}",
            _preload_content=False))["items"]
        return bool(events)

    @staticmethod
    def _age(obj: dict[str, Any]) -> float:
        import datetime as dt

        created = obj["metadata"].get("creationTimestamp")
        if not created:
            return 0.0
        stamp = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
        return (dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()

    def run(self, stop: threading.Event) -> None:
        # A pass follows each change of the pods or the Fargate nodes; one deferred for time (a node still
        # provisioning, one too new to collect) comes again after ``interval``; what the API does not
        # announce (a profile's subnets) is read again within IDLE.
        changes = Changes(stop).watch(self.c.core.list_pod_for_all_namespaces).watch(
            self.c.core.list_node, label_selector=f"{COMPUTE_TYPE_LABEL}=fargate")
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.reconcile()
            except Exception as exc:  # the API server may be restarting: try again next pass
                log.warning("fargate-scheduler pass failed: %s", exc)
                self._deferred = True
            # A short pause first: a burst of changes (five replicas created at once) makes one pass.
            stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
            changes.wait(self.interval if self._deferred else IDLE)
