"""Background processes of an environment, each tagged with the run id so none can be lost.

Every process the harness starts gets ``FARGATE_LABS_RUN_ID`` in its environment and its own
session; ``tagged_pids(run_id)`` finds them again from ``/proc`` even when the state file is gone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

__all__ = [
    "RUN_ID_VARIABLE",
    "Component",
    "free_port",
    "port_is_free",
    "start",
    "alive",
    "stop",
    "tagged_pids",
]

RUN_ID_VARIABLE = "FARGATE_LABS_RUN_ID"


@dataclass
class Component:
    """One running process of an environment, as written to the state file."""

    name: str
    pid: int
    port: int
    log: str
    command: list[str]
    #: variables set on top of the caller's environment (kept so a restart gets the same)
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def start(
    name: str,
    command: list[str],
    log_dir: Path,
    run_id: str,
    port: int = 0,
    env: dict[str, str] | None = None,
) -> Component:
    """Start ``command`` detached from the caller (it outlives ``fargate-lab up``), logging to a file."""
    log = log_dir / f"{name}.log"
    full_env = dict(os.environ, **(env or {}))
    full_env[RUN_ID_VARIABLE] = run_id
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - commands are built by the harness
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,
        )
    return Component(name, proc.pid, port, str(log), command, dict(env or {}))


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def alive(pid: int, run_id: str | None = None) -> bool:
    """Whether ``pid`` runs, and (given ``run_id``) is still ours rather than a reused pid."""
    if pid <= 0 or _is_zombie(pid):
        return False
    if run_id is None:
        return True
    for _ in range(5):
        environ = _environ(pid)
        if environ:
            return f"{RUN_ID_VARIABLE}={run_id}".encode() in environ.split(b"\0")
        if not os.path.exists(f"/proc/{pid}"):
            return False
        # A process in the middle of execve (nsenter starting a kubelet, say) shows an empty environment
        # for a moment: that is not a pid taken by someone else.
        time.sleep(0.02)
    return False


def tagged_pids(run_id: str) -> list[int]:
    """Every live process carrying ``run_id``, found from /proc."""
    tag = f"{RUN_ID_VARIABLE}={run_id}".encode()
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and tag in _environ(int(entry)).split(b"\0"):
            if not _is_zombie(int(entry)):
                found.append(int(entry))
    return found


def stop(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM each process group, then SIGKILL whatever is left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            _reap()
            time.sleep(0.05)
        if not any(alive(p) for p in pids):
            return


def _reap() -> None:
    # Children of this very process (tests start environments in-process) must be waited for,
    # otherwise they linger as zombies.
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


class Reconciler(Protocol):
    def run(self, stop: threading.Event) -> None: ...

    def stop_all(self) -> None: ...


def serve_state_dir(module: str, make: Callable[[Path], Reconciler], argv: list[str] | None = None) -> int:
    """The ``main`` of an environment's own controller process (``python -m <module> --state-dir DIR``): it
    logs to stdout, runs until SIGTERM or SIGINT, and stops what it started on the way out."""
    import argparse
    import logging
    import sys

    p = argparse.ArgumentParser(prog=f"python -m {module}")
    p.add_argument("--state-dir", required=True, type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reconciler = make(args.state_dir)
    try:
        reconciler.run(stop)
    finally:
        reconciler.stop_all()
    return 0
