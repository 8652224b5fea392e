"""Cluster-wide locks, held across every process of every run on this machine."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from pathlib import Path
from typing import Iterator

from .handle import ClusterHandle

__all__ = ["cluster_lock"]


@contextlib.contextmanager
def cluster_lock(cluster: ClusterHandle, topic: str, shared: bool = False) -> Iterator[None]:
    """Hold the lock ``topic`` of ``cluster``.

    One lock per cluster: environments side by side do not wait for each other. ``profiles`` keeps
    EKS's one-profile-in-transition rule (it is EKS's, per cluster, whoever asks); a lab module that
    changes something cluster-wide (kube-system's profile, aws-observability) takes one of its own,
    and ``shared=True`` holds it beside other shared holders, only apart from an exclusive one.

    The lock file lives in the environment's directory when the cluster is an environment's (it goes with
    it; each environment's endpoint differs, so files named in the shared temporary directory would pile
    up, three a run), else in the temporary directory, where every run on that cluster finds it.
    """
    where = hashlib.sha256(f"{cluster.aws_endpoint}|{cluster.region}|{cluster.cluster_name}"
                           .encode()).hexdigest()[:12]
    directory = Path(cluster.extra.get("state_dir") or tempfile.gettempdir())
    path = directory / f"fargate-labs-{topic}-{where}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
