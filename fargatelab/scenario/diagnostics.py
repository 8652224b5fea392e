"""What a failed step leaves for the reader: events, describe and logs of its namespaces, and the nodes."""

from __future__ import annotations

from typing import Iterable

from ..eks.facts import RUN_ID_LABEL
from .kube import Kube

__all__ = ["collect"]


def collect(kube: Kube, namespaces: Iterable[str], run_id: str) -> list[tuple[str, str]]:
    """(title, text) sections; a collector that fails says so in its section instead of hiding the failure."""
    commands: list[tuple[str, tuple[str, ...]]] = []
    for ns in namespaces:
        commands += [
            (f"events in {ns}", ("get", "events", "-n", ns, "--sort-by=.metadata.creationTimestamp")),
            (f"describe pods in {ns}", ("describe", "pods", "-n", ns)),
            (f"logs in {ns}", ("logs", "-n", ns, "--all-containers", "--prefix", "--tail=50",
                               "-l", f"{RUN_ID_LABEL}={run_id}")),
        ]
    commands.append(("nodes", ("get", "nodes", "-o", "wide")))
    out = []
    for title, args in commands:
        try:
            result = kube.kubectl(*args, check=False, timeout=20)
            out.append((title, (result.stdout or result.stderr).strip() or "(empty)"))
        except Exception as exc:
            out.append((title, f"could not collect: {exc}"))
    return out
