"""Backends: each yields the same :class:`~fargatelab.scenario.handle.ClusterHandle`.

Scenario code never asks which backend it runs on; it asks the handle what the cluster can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from ..errors import ExitCode, HarnessError
from ..scenario.handle import ClusterHandle

__all__ = ["Backend", "BackendOptions", "open_backend", "BACKENDS"]

BACKENDS = ("local", "kind", "eks")


@dataclass(frozen=True)
class BackendOptions:
    backend: str = "local"
    mode: str = "replay"
    cluster: str = "eksworkshop"
    region: str = "ap-northeast-2"
    run_id: str = ""
    timing: str = "fast"
    timing_scale: float = 1.0
    #: name of an environment already `up` to reuse (local backend)
    reuse: str | None = None
    #: name to give a new local environment
    env_name: str = ""
    #: eks: an existing Fargate pod execution role instead of one created for the run
    pod_execution_role_arn: str | None = None
    #: eks: replay on a cluster without the tag fargate-labs/sandbox=true
    allow_unsafe: bool = False
    #: eks: take cluster name and region from this kubeconfig context ("" = the current one)
    kube_context: str | None = None
    #: eks: leave what the run created in place (no final cleanup)
    keep: bool = False
    #: this process owns the run (the only process, or the pytest-xdist controller): it takes down what
    #: the run made, while workers sharing the run leave it up for the others
    owner: bool = True
    #: local: "kwok" (simulated pods) or "microvm" (real pods, one microVM each; Linux, root)
    data_plane: str = "kwok"


class Backend(Protocol):
    handle: ClusterHandle
    #: the cluster is removed when the run ends, so what the run deletes need not be seen gone first
    discards_cluster: bool

    def liveness(self) -> str | None:
        """The name of a dead component, or None while everything runs."""

    def close(self) -> None:
        """Stop and remove what this backend started (nothing, when it reused an environment)."""


def open_backend(options: BackendOptions) -> Backend:
    openers: dict[str, Callable[[BackendOptions], Backend]] = {}
    from .local import LocalBackend

    openers["local"] = LocalBackend
    if options.backend not in BACKENDS:
        raise HarnessError(f"unknown backend {options.backend!r}: choose one of {', '.join(BACKENDS)}",
                           ExitCode.USAGE)
    if options.backend == "kind":
        from .kind import KindBackend

        openers["kind"] = KindBackend
    if options.backend == "eks":
        from .eks import EksBackend

        openers["eks"] = EksBackend
    return openers[options.backend](options)
