"""The local backend: the local EKS-on-Fargate environment, brought up for the run or reused."""

from __future__ import annotations

import dataclasses
import fcntl
import os
from typing import TYPE_CHECKING

from ..environment import EnvironmentConfig, LocalEnvironment, state_root
from ..handle import ClusterHandle

if TYPE_CHECKING:
    from . import BackendOptions

__all__ = ["LocalBackend"]


class LocalBackend:
    """Brings up environment ``labs-<run id>`` unless told to reuse one.

    Several pytest-xdist workers share one environment: the first to arrive starts it under a file
    lock and the others find it up; whoever owns the run (the xdist controller) takes it down.
    """

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.owned = options.reuse is None
        self.env = LocalEnvironment(options.reuse or options.env_name or f"labs-{options.run_id}")
        root = state_root()
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f".{self.env.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.env.is_up():
                self.env.up(EnvironmentConfig(
                    name=self.env.name, cluster_name=options.cluster, region=options.region,
                    timing=options.timing, timing_scale=options.timing_scale, run_id=options.run_id,
                ))
        handle = self.env.handle()
        # The local backend emulates Fargate: no container runs, so nothing can be probed in a pod.
        self.handle: ClusterHandle = dataclasses.replace(
            handle,
            run_id=options.run_id or handle.run_id,
            capabilities=frozenset({"write"}) if options.mode == "replay" else frozenset(),
        )

    def liveness(self) -> str | None:
        dead = self.env.dead_components()
        return f"{dead[0]} (see `fargate-lab status --name {self.env.name}`)" if dead else None

    def close(self) -> None:
        if self.owned and os.environ.get("PYTEST_XDIST_WORKER") is None:
            self.env.down(quiet=True)

