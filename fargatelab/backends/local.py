"""The local backend: the local EKS-on-Fargate environment, brought up for the run or reused."""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING

from ..local.environment import EnvironmentConfig, LocalEnvironment
from ..scenario.handle import ClusterHandle
from .capabilities import declared

if TYPE_CHECKING:
    from . import BackendOptions

__all__ = ["LocalBackend", "start_in_background"]


def _environment(options: BackendOptions) -> LocalEnvironment:
    return LocalEnvironment(options.reuse or options.env_name or f"labs-{options.run_id}")


def _config(options: BackendOptions, env: LocalEnvironment) -> EnvironmentConfig:
    return EnvironmentConfig(name=env.name, cluster_name=options.cluster, region=options.region,
                             timing=options.timing, timing_scale=options.timing_scale, run_id=options.run_id,
                             data_plane=options.data_plane)


def _built(data_plane: str) -> bool:
    """Whether what an environment starts from is already built: the Kubernetes binaries and kwok where its
    pods run on KWOK nodes, else the data plane's binaries and images."""
    from ..local.binaries import cached_bin_dir, verify

    kubernetes = cached_bin_dir()
    if not kubernetes.is_dir() or verify(kubernetes):
        return False
    if data_plane == "kwok":
        from ..local.dataplane_binaries import kwok_built

        return kwok_built()
    from ..local.dataplane_binaries import dataplane_dir, verify_dataplane
    from ..local.images import images_dir

    dataplane = dataplane_dir()  # hashes the pins, the node program's source among them: once
    return dataplane.is_dir() and not verify_dataplane(dataplane) and (images_dir() / "images.json").is_file()


def start_in_background(options: BackendOptions) -> threading.Thread | None:
    """Start the run's environment while pytest-xdist's workers start and collect (the xdist controller).

    The start lock is taken before this returns, so a worker that needs the cluster sooner waits for
    this start instead of making its own. A start that fails is left to the workers: they try again and
    report the error as always. Nothing starts early (None) while something is still to be built: a
    build takes many minutes, unseen here, and a run that ends early (a usage error found as the workers
    collect) would wait for all of it.
    """
    if not _built(options.data_plane):
        return None
    env = _environment(options)
    lock = env.start_lock()

    def start() -> None:
        try:
            if not env.is_up():
                env.up(_config(options, env), progress=lambda _line: None)
        except Exception:  # noqa: BLE001 - reported by the workers' own attempt
            pass
        finally:
            lock.close()

    thread = threading.Thread(target=start, name=f"start {env.name}", daemon=True)
    thread.start()
    return thread


class LocalBackend:
    """Brings up environment ``labs-<run id>`` unless told to reuse one.

    Several pytest-xdist workers share one environment: the first to arrive starts it under a file
    lock and the others find it up; whoever owns the run (the xdist controller) takes it down.
    """

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.made_for_run = options.reuse is None
        self.env = _environment(options)
        self.discards_cluster = self.made_for_run and not options.keep
        with self.env.start_lock():
            if not self.env.is_up():
                self.env.up(_config(options, self.env))
        handle = self.env.handle()
        # A reused environment says which data plane it runs.
        data_plane = handle.extra.get("data_plane", "kwok")
        self.handle: ClusterHandle = dataclasses.replace(
            handle, run_id=options.run_id or handle.run_id,
            capabilities=declared("local", options.mode, data_plane))

    def liveness(self) -> str | None:
        dead = self.env.dead_components()
        return f"{dead[0]} (see `fargate-lab status --name {self.env.name}`)" if dead else None

    def close(self) -> None:
        # --keep leaves the run's environment up too: what it kept can only be looked at there.
        if self.made_for_run and not self.options.keep and self.options.owner:
            self.env.down(quiet=True)

