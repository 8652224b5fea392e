"""Explain, without a cluster, where each pod of some manifests would run and why.

For every Pod and every pod template (Deployment, ReplicaSet, StatefulSet, Job,
CronJob, DaemonSet) the verdict follows the order EKS applies its rules in:

1. DaemonSet pods never run on Fargate;
2. ``eks.amazonaws.com/compute-type: ec2`` on the pod keeps it off Fargate;
3. the pod goes to Fargate only if a profile matches its namespace and labels;
4. the fargate-scheduler refuses pods Fargate cannot run (``Pod not supported ...``);
5. otherwise it gets a Fargate node of the size in ``CapacityProvisioned``.

A pod template without a namespace takes its object's namespace, else ``default``.
Persistent volume claims are not looked up (no cluster), so EBS-backed claims pass.

>>> profiles = load_profiles([{"fargateProfileName": "study_wildcard",
...     "selectors": [{"namespace": "study-*"}], "status": "ACTIVE"}])
>>> deploy = {"kind": "Deployment", "metadata": {"name": "netshoot", "namespace": "study-aews"},
...     "spec": {"template": {"metadata": {"labels": {"app": "netshoot"}}, "spec": {"containers": [
...         {"name": "netshoot", "resources": {"requests": {"cpu": "500m", "memory": "500Mi"}}}]}}}}
>>> [verdict] = explain([deploy], profiles)
>>> verdict.runs_on_fargate, verdict.profile, verdict.capacity_provisioned
(True, 'study_wildcard', '0.5vCPU 1GB')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from .compat import is_daemonset_pod, unsupported_reason
from .matching import COMPUTE_TYPE_ANNOTATION, Profile, Selector, kept_off_fargate, matching_profile
from .sizing import capacity_provisioned

__all__ = ["Verdict", "explain", "format_table", "to_json", "load_profiles", "WORKLOAD_KINDS"]

WORKLOAD_KINDS = ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "Job", "CronJob", "DaemonSet")
DAEMONSET_REASON = "DaemonSet pods do not run on Fargate"


@dataclass(frozen=True)
class Verdict:
    """Where one pod (or every pod of one template) would run."""

    kind: str
    namespace: str
    name: str
    runs_on_fargate: bool
    reason: str | None
    profile: str | None
    capacity_provisioned: str | None


def _pod_template(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod metadata, pod spec) of a workload document."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "Pod":
        return doc.get("metadata") or {}, spec
    if doc.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template") or {}
    return template.get("metadata") or {}, template.get("spec") or {}


def _workloads(documents: list[Any]) -> Iterator[dict[str, Any]]:
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        if str(doc.get("kind") or "").endswith("List"):
            yield from _workloads(doc.get("items") or [])
        elif doc.get("kind") in WORKLOAD_KINDS:
            yield doc


def _labels_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def _verdict(doc: dict[str, Any], profiles: list[Profile]) -> Verdict:
    metadata = doc.get("metadata") or {}
    pod_metadata, pod_spec = _pod_template(doc)
    namespace = pod_metadata.get("namespace") or metadata.get("namespace") or "default"
    labels = dict(pod_metadata.get("labels") or {})

    def verdict(ok: bool, reason: str | None, profile: str | None = None, size: str | None = None) -> Verdict:
        return Verdict(doc["kind"], namespace, metadata.get("name", ""), ok, reason, profile, size)

    if doc["kind"] == "DaemonSet" or is_daemonset_pod(metadata):
        return verdict(False, DAEMONSET_REASON)
    if kept_off_fargate(pod_metadata):
        return verdict(False, f"annotation {COMPUTE_TYPE_ANNOTATION}: ec2 keeps the pod off Fargate")
    profile = matching_profile(profiles, namespace, labels)
    if profile is None:
        return verdict(False, f"no Fargate profile matches namespace {namespace} and labels {_labels_text(labels)}")
    rejection = unsupported_reason(pod_spec)
    if rejection is not None:
        return verdict(False, rejection, profile.name)
    try:
        size = capacity_provisioned(pod_spec)
    except ValueError as err:
        return verdict(False, str(err), profile.name)
    return verdict(True, None, profile.name, size)


def explain(documents: list[dict[str, Any]], profiles: list[Profile]) -> list[Verdict]:
    """A verdict per Pod or pod template in ``documents``, in document order.

    >>> [v] = explain([{"kind": "DaemonSet", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
    ...     "spec": {"template": {"spec": {"containers": [{"name": "kube-proxy"}]}}}}], [])
    >>> v.runs_on_fargate, v.reason
    (False, 'DaemonSet pods do not run on Fargate')
    """
    return [_verdict(doc, profiles) for doc in _workloads(documents)]


def format_table(verdicts: list[Verdict]) -> str:
    """A kubectl-style table, one line per verdict; empty cells show ``-``.

    >>> print(format_table([Verdict("Pod", "default", "web", False,
    ...     "no Fargate profile matches namespace default and labels {}", None, None)]))
    KIND  NAMESPACE  NAME  FARGATE  PROFILE  CAPACITY  REASON
    Pod   default    web   no       -        -         no Fargate profile matches namespace default and labels {}
    """
    header = ("KIND", "NAMESPACE", "NAME", "FARGATE", "PROFILE", "CAPACITY", "REASON")
    rows = [header] + [
        (
            v.kind, v.namespace, v.name, "yes" if v.runs_on_fargate else "no",
            v.profile or "-", v.capacity_provisioned or "-", v.reason or "-",
        )
        for v in verdicts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def to_json(verdicts: list[Verdict]) -> str:
    """The verdicts as a JSON list of objects with the Verdict's field names.

    >>> print(to_json([Verdict("Pod", "default", "web", True, None, "default", "0.25vCPU 0.5GB")]))
    [
      {
        "kind": "Pod",
        "namespace": "default",
        "name": "web",
        "runs_on_fargate": true,
        "reason": null,
        "profile": "default",
        "capacity_provisioned": "0.25vCPU 0.5GB"
      }
    ]
    """
    return json.dumps([asdict(v) for v in verdicts], indent=2)


def _profile(entry: dict[str, Any]) -> Profile:
    if "fargateProfile" in entry or "fargateProfileName" in entry:
        return Profile.from_api(entry)
    if "name" in entry:
        # eksctl ClusterConfig: profiles eksctl creates are ACTIVE once the command returns.
        return Profile(
            name=entry["name"],
            selectors=[Selector(s["namespace"], dict(s.get("labels") or {})) for s in entry.get("selectors") or []],
            subnets=list(entry.get("subnets") or []),
        )
    raise ValueError(f"not a Fargate profile (no fargateProfileName or name): {sorted(entry)}")


def load_profiles(doc: dict[str, Any] | list[Any]) -> list[Profile]:
    """Profiles from an EKS API answer (one profile, a list, or ``{"fargateProfiles": [...]}``)
    or from an eksctl ClusterConfig's ``fargateProfiles``.

    >>> cfg = {"kind": "ClusterConfig", "fargateProfiles": [{"name": "fargate-game-2048",
    ...     "selectors": [{"namespace": "fargate-game-2048"}]}]}
    >>> [p.name for p in load_profiles(cfg)], load_profiles(cfg)[0].status
    (['fargate-game-2048'], 'ACTIVE')
    """
    if isinstance(doc, list):
        return [_profile(entry) for entry in doc]
    if "fargateProfiles" in doc or doc.get("kind") == "ClusterConfig":
        return [_profile(entry) for entry in doc.get("fargateProfiles") or []]
    if "fargateProfile" in doc or "fargateProfileName" in doc:
        return [Profile.from_api(doc)]
    raise ValueError("no Fargate profiles found: expected a list, fargateProfiles, or fargateProfile")
