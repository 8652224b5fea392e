"""What the EKS Fargate mutating webhook does to a pod: the JSON patch, decided without I/O.

>>> from fargatelab.rules.matching import Profile, Selector
>>> game = Profile("fargate-game-2048", [Selector("fargate-game-2048", {})])
>>> pod = {"metadata": {"namespace": "fargate-game-2048"}, "spec": {"schedulerName": "default-scheduler",
...        "containers": [{"name": "app", "image": "nginx"}]}}
>>> ops = fargate_patch(pod, "fargate-game-2048", [game], LOGGING_ENABLED)
>>> {op["path"]: op["value"] for op in ops}["/spec/schedulerName"]
'fargate-scheduler'
>>> fargate_patch(pod, "default", [game], LOGGING_ENABLED)
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..rules.compat import is_daemonset_pod
from ..rules.matching import PROFILE_LABEL, Profile, kept_off_fargate, matching_profile
from ..rules.sizing import capacity_provisioned

__all__ = [
    "FARGATE_SCHEDULER",
    "SYSTEM_NODE_CRITICAL",
    "LoggingState",
    "LOGGING_ENABLED",
    "fargate_patch",
]

FARGATE_SCHEDULER = "fargate-scheduler"
SYSTEM_NODE_CRITICAL = ("system-node-critical", 2000001000)


@dataclass(frozen=True)
class LoggingState:
    """The Logging annotation value a new pod gets, from the aws-logging ConfigMap as it is now."""

    annotation: str


LOGGING_ENABLED = LoggingState("LoggingEnabled")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _wants_fargate(pod: dict[str, Any]) -> bool:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if spec.get("nodeName"):
        return False
    if spec.get("schedulerName") not in (None, "default-scheduler", FARGATE_SCHEDULER):
        return False
    # CoreDNS ships pinned to EC2 by its annotation until the documented patch removes it;
    # DaemonSet pods never run on Fargate.
    return not kept_off_fargate(meta) and not is_daemonset_pod(meta)


def fargate_patch(
    pod: dict[str, Any], namespace: str, profiles: list[Profile], logging: LoggingState
) -> list[dict[str, Any]]:
    """JSON patch operations turning ``pod`` into a Fargate pod, or ``[]`` when no ACTIVE profile takes it."""
    if not _wants_fargate(pod):
        return []
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    profile = matching_profile(profiles, namespace, meta.get("labels") or {})
    if profile is None:
        return []
    priority_class, priority = SYSTEM_NODE_CRITICAL
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/spec/schedulerName", "value": FARGATE_SCHEDULER},
        # The built-in Priority admission plugin ran before webhooks, so the resolved value is set too.
        {"op": "add", "path": "/spec/priorityClassName", "value": priority_class},
        {"op": "add", "path": "/spec/priority", "value": priority},
        {"op": "add", "path": "/spec/preemptionPolicy", "value": "PreemptLowerPriority"},
    ]
    if "labels" not in meta:
        ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
    ops.append({"op": "add", "path": f"/metadata/labels/{_escape(PROFILE_LABEL)}", "value": profile.name})
    if "annotations" not in meta:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    try:
        ops.append({"op": "add", "path": "/metadata/annotations/CapacityProvisioned",
                    "value": capacity_provisioned(spec)})
    except ValueError:
        pass  # too large for any Fargate size: the fargate-scheduler rejects it with the reason
    ops.append({"op": "add", "path": "/metadata/annotations/Logging", "value": logging.annotation})
    return ops
