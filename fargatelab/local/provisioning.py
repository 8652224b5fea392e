"""Everything a run starts from, provisioned in one go: ``fargate-lab provision`` and the nox sessions.

Go builds keep every core busy, so they run one after another; what waits on the network or the disk
instead (Debian packages, the AWS CLI from PyPI, the stand-in images' root file systems) runs beside them.
The images need three of the data plane's tools (coredns, registry, crane): those are built first, so the
images are ready long before the last Go build is. Each piece keeps its own cache, lock and checks, so a
second provisioning finds everything done in seconds, and one running at the same time waits for the other.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable

from ..errors import ExitCode, HarnessError

__all__ = ["provision_all"]

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def provision_all(data_plane: str = "auto", clis: bool = True, progress: Progress = _stderr) -> str:
    """Provision what an environment with ``data_plane`` (auto, microvm or kwok) and, with ``clis``, the
    documents' command lines need; return the data plane a run would get (auto resolved)."""
    from .microvm_host import choose_data_plane

    started = time.monotonic()
    chosen = choose_data_plane(data_plane, progress)
    beside = _Beside(progress)
    tools_ready = threading.Event()
    if chosen == "microvm":
        beside.add("the microVMs' host tools", _host_tools)
        beside.add("the stand-in images", lambda p: _images(p, tools_ready))
    if clis:
        from .cli_tools import provision_awscli

        beside.add("the AWS CLI", provision_awscli)
    beside.start()
    try:
        from .binaries import provision

        if chosen == "microvm":
            from .dataplane_binaries import IMAGE_TOOLS, provision_dataplane

            try:
                provision_dataplane(progress, only=IMAGE_TOOLS)
            finally:
                tools_ready.set()  # the images see for themselves whether the tools are there
        provision(progress=progress)
        if chosen == "microvm":
            provision_dataplane(progress)
        else:
            from .dataplane_binaries import provision_kwok

            provision_kwok(progress)
        if clis:
            from .cli_tools import provision_clis

            provision_clis(progress, aws=False)
    except BaseException:
        # Interrupted or failed here: what runs beside stops too (Ctrl-C reaches its commands as well), and
        # this error, not one of theirs, is the one to tell.
        tools_ready.set()
        beside.join(raise_errors=False)
        raise
    tools_ready.set()
    beside.join()
    progress(f"provisioned for the {chosen} data plane{' and the workshop tools' if clis else ''} in "
             f"{time.monotonic() - started:.0f}s")
    return chosen


def _host_tools(progress: Progress) -> None:
    from .microvm_host import ensure_host_tools

    ensure_host_tools(progress)


def _images(progress: Progress, tools_ready: threading.Event) -> None:
    from .apt import need
    from .images import provision_images

    need("mmdebstrap", ["mmdebstrap"], "the offline stand-in images", progress)  # while the tools build
    tools_ready.wait()  # then provision_images finds its three tools built
    images = provision_images(progress)
    progress(f"stand-in images ready: {len(images.records)} names")


class _Beside:
    """Work that runs in threads beside the Go builds; the first failure among them is raised at ``join``."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.threads: list[threading.Thread] = []
        self.errors: list[tuple[str, BaseException]] = []

    def add(self, what: str, work: Callable[[Progress], None]) -> None:
        def run() -> None:
            try:
                work(self.progress)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread at join
                self.errors.append((what, exc))

        self.threads.append(threading.Thread(target=run, name=f"provision {what}", daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, raise_errors: bool = True) -> None:
        for thread in self.threads:
            thread.join()
        if self.errors and raise_errors:
            what, exc = self.errors[0]
            if isinstance(exc, HarnessError):
                raise exc
            raise HarnessError(f"provisioning {what} failed: {exc}", ExitCode.MISSING_BINARY) from exc
