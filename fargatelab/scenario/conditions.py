"""Named conditions for :func:`fargatelab.scenario.wait.for_`, in the workshop's words."""

from __future__ import annotations

from typing import Any, Callable

from ..rules.timing import Timing
from .kube import Kube
from .wait import Condition, condition

__all__ = [
    "PodRunning",
    "PodsRunning",
    "PodPending",
    "JobCompleted",
    "ResourceDeleted",
    "NamespacesDeleted",
    "ProfileStatus",
    "ProfileDeleted",
    "FargateNodesFor",
    "EventRecorded",
    "phase_summary",
    "Conditions",
]


def phase_summary(pods: list[dict[str, Any]]) -> str:
    if not pods:
        return "no pods"
    return ", ".join(
        f"{p['metadata']['name']}={p['status'].get('phase')}" + ("(deleting)" if p["metadata"].get("deletionTimestamp") else "")
        for p in pods
    )


def PodRunning(kube: Kube, namespace: str, name: str) -> Condition:  # noqa: N802 - named like e2e-framework
    def probe() -> tuple[bool, str]:
        pod = kube.pod(namespace, name)
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        return pod["status"].get("phase") == "Running" and ready, f"phase={pod['status'].get('phase')}"

    return condition(f"pod {namespace}/{name} Running", probe)


def PodsRunning(kube: Kube, namespace: str, selector: str, count: int) -> Condition:  # noqa: N802
    """Exactly ``count`` live pods match, all Running and Ready."""

    def probe() -> tuple[bool, str]:
        pods = kube.live_pods(namespace, selector)
        running = [p for p in pods if p["status"].get("phase") == "Running"
                   and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
        return len(pods) == count and len(running) == count, f"{len(running)}/{len(pods)} running: {phase_summary(pods)}"

    return condition(f"{count} pods Running in {namespace} ({selector})", probe)


def PodPending(kube: Kube, namespace: str, name: str, reason: str) -> Condition:  # noqa: N802
    """The pod is Pending and an event with ``reason`` was recorded for it."""

    def probe() -> tuple[bool, str]:
        pod = kube.pod(namespace, name)
        events = [e for e in kube.events(namespace, uid=pod["metadata"]["uid"]) if e["reason"] == reason]
        return (pod["status"].get("phase") == "Pending" and bool(events),
                f"phase={pod['status'].get('phase')}, {reason} events={len(events)}")

    return condition(f"pod {namespace}/{name} Pending with a {reason} event", probe)


def JobCompleted(kube: Kube, namespace: str, name: str) -> Condition:  # noqa: N802
    def probe() -> tuple[bool, str]:
        job = kube.job(namespace, name)
        conds = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])}
        succeeded = job.get("status", {}).get("succeeded", 0)
        completions = job["spec"].get("completions", 1)
        return conds.get("Complete") == "True", f"{succeeded}/{completions} succeeded, conditions={conds}"

    return condition(f"job {namespace}/{name} Complete", probe)


def ResourceDeleted(kube: Kube, path: str) -> Condition:  # noqa: N802
    def probe() -> tuple[bool, str]:
        return (not kube.exists(path)), "still exists"

    return condition(f"{path} deleted", probe)


def NamespacesDeleted(kube: Kube, names: list[str]) -> Condition:  # noqa: N802
    """None of ``names`` is left, not even Terminating."""

    def probe() -> tuple[bool, str]:
        left = [n for n in names if kube.exists(f"/api/v1/namespaces/{n}")]
        return not left, f"still there: {', '.join(left)}"

    return condition(f"namespaces {', '.join(names)} deleted", probe)


def ProfileStatus(eks: Any, cluster: str, name: str, status: str) -> Condition:  # noqa: N802
    def probe() -> tuple[bool, str]:
        actual = eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]["status"]
        return actual == status, f"status={actual}"

    return condition(f"Fargate profile {name} {status}", probe)


def ProfileDeleted(eks: Any, cluster: str, name: str) -> Condition:  # noqa: N802
    def probe() -> tuple[bool, str]:
        names = eks.list_fargate_profiles(clusterName=cluster).get("fargateProfileNames", [])
        return name not in names, f"profiles={names}"

    return condition(f"Fargate profile {name} gone", probe)


def FargateNodesFor(kube: Kube, namespace: str, selector: str, count: int) -> Condition:  # noqa: N802
    """``count`` live pods, each on its own Fargate node, and no Fargate node left without its pod.

    A pod's Fargate node is the node it is bound to, or, where the pods share a real node (kind's hosted
    placement), the shadow Fargate node that carries its address.
    """

    def probe() -> tuple[bool, str]:
        pods = kube.live_pods(namespace, selector)
        nodes = kube.fargate_nodes()
        fargate = {n["metadata"]["name"] for n in nodes}

        def fargate_node(pod: dict[str, Any]) -> str | None:
            return kube.fargate_node_name(pod, nodes)

        hosting = [fargate_node(p) for p in pods]
        on_own_node = len(set(hosting)) == len(hosting) and all(hosting)
        occupied = {fargate_node(p) for p in kube.get("/api/v1/pods")["items"]}
        orphans = sorted(fargate - occupied)
        ok = len(pods) == count and on_own_node and not orphans
        return ok, f"{len(pods)} pods on {len(set(hosting) & fargate)} Fargate nodes, orphan nodes={orphans}"

    return condition(f"{count} pods in {namespace} on {count} Fargate nodes", probe)


def EventRecorded(kube: Kube, namespace: str, uid: str, reason: str,  # noqa: N802
                  message: Callable[[str], bool] = lambda _: True) -> Condition:
    def probe() -> tuple[bool, str]:
        events = [e for e in kube.events(namespace, uid=uid) if e["reason"] == reason]
        return any(message(e.get("message", "")) for e in events), f"{reason} events: {[e.get('message') for e in events]}"

    return condition(f"{reason} event", probe)


class Conditions:
    """The conditions above bound once to a cluster, each with its default timeout from the timing profile
    (``lab.wait(lab.conditions.pod_running(ns, "netshoot"))``), in the manner of e2e-framework's
    ``conditions.New(resources)``."""

    def __init__(self, kube: Kube, timing: Timing) -> None:
        self.kube, self.timing = kube, timing

    @property
    def _pod(self) -> float:
        return self.timing.pod_ready_timeout

    def pod_running(self, namespace: str, name: str) -> Condition:
        return PodRunning(self.kube, namespace, name).within(self._pod)

    def pods_running(self, namespace: str, selector: str, count: int) -> Condition:
        return PodsRunning(self.kube, namespace, selector, count).within(self._pod)

    def pod_pending(self, namespace: str, name: str, reason: str) -> Condition:
        return PodPending(self.kube, namespace, name, reason).within(self._pod)

    def fargate_nodes_for(self, namespace: str, selector: str, count: int) -> Condition:
        return FargateNodesFor(self.kube, namespace, selector, count).within(self._pod)

    def event_recorded(self, namespace: str, uid: str, reason: str,
                       message: Callable[[str], bool] = lambda _: True) -> Condition:
        return EventRecorded(self.kube, namespace, uid, reason, message).within(self._pod)

    def deleted(self, path: str, timeout: float = 120) -> Condition:
        return ResourceDeleted(self.kube, path).within(timeout)
