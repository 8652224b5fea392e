"""The Docker engine kind runs its nodes in: found, or installed (Debian's ``docker.io``) and started.

``require_docker`` is what a run does: fail fast, in one line, when there is no engine. ``start_engine`` is
what CI and ``fargate-lab kind-engine`` do on a machine that may have none: install the package, start
``dockerd`` (there may be no systemd to do it) and wait until it answers.

Two things this engine is given, and why:

- **No private address on the host, no NAT.** Docker's default bridge and networks come from 172.17.0.0/16
  and up, each with its gateway on the host and NAT to the host's uplink. Here they come from the shared
  address space 100.64.240.0/21 (no private range, so the host's own namespace holds none, and nothing meets
  the VPC's 10.11.0.0/16 or the service network 172.20.0.0/16), and dockerd masquerades nothing.
- **Capabilities the host can grant.** A kind node is a privileged container, and dockerd 20.10 asks runc
  for every capability it knows. Where the host's bounding set lacks some (a machine that is itself a
  container or a restricted VM), runc fails with "unable to apply caps: operation not permitted". The
  engine then runs containers through ``runc-caps``, the real runc after the capabilities the host cannot
  grant are taken out of the container's spec (they could never be granted anyway).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from ..errors import ExitCode, HarnessError
from ..local.apt import need
from ..local.binaries import cache_root
from .runc_caps import CAPABILITY_NAMES

__all__ = ["BRIDGE_IP", "ADDRESS_POOL", "KIND_SUBNET", "KIND_GATEWAY", "DOCKER_RANGE", "require_docker", "start_engine",
           "missing_capabilities", "engine_command"]

Progress = Callable[[str], None]
BRIDGE_IP = "100.64.240.1/24"
ADDRESS_POOL = "base=100.64.242.0/23,size=24"
#: kind's network, made before kind would make it (kind takes an existing network named ``kind`` as it is)
KIND_SUBNET = "100.64.244.0/24"
KIND_GATEWAY = "100.64.244.1"
#: the part of it Docker gives containers (--ip-range); the upper half is the runs' (fargatelab.kind.access)
DOCKER_RANGE = "100.64.244.0/25"


def require_docker() -> None:
    """Fail fast, in one line, when kind cannot work here."""
    docker = shutil.which("docker")
    if docker is None:
        raise HarnessError("the kind backend needs Docker, and no `docker` command is installed: install Docker "
                           "(`fargate-lab kind-engine` installs and starts Debian's), or run with --backend local",
                           ExitCode.BACKEND_UNAVAILABLE)
    probe = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=20)
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no answer"])[-1]
        raise HarnessError(f"the kind backend needs a running Docker engine ({reason}): start Docker "
                           "(`fargate-lab kind-engine`), or run with --backend local", ExitCode.BACKEND_UNAVAILABLE)


def missing_capabilities(status: str | None = None) -> list[str]:
    """The capabilities this process's bounding set lacks (``CapBnd`` in /proc/self/status).

    >>> missing_capabilities("CapBnd:\\t000001fffeffffff\\n")
    ['SYS_RESOURCE']
    """
    text = status if status is not None else Path("/proc/self/status").read_text()
    bounding = next(int(line.split()[1], 16) for line in text.splitlines() if line.startswith("CapBnd:"))
    return [name.removeprefix("CAP_") for bit, name in enumerate(CAPABILITY_NAMES) if not bounding >> bit & 1]


def _engine_answers() -> bool:
    docker = shutil.which("docker")
    return docker is not None and subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0


def engine_command(runtime: Path | None) -> list[str]:
    """dockerd's command line: its address pools, and the capability-filtering runtime where one is needed."""
    command = ["dockerd", f"--bip={BRIDGE_IP}", f"--default-address-pool={ADDRESS_POOL}", "--ip-masq=false"]
    if runtime is not None:
        command += [f"--add-runtime=runc-caps={runtime}", "--default-runtime=runc-caps"]
    return command


def start_engine(progress: Progress) -> None:
    """Make sure a Docker engine answers: install Debian's docker.io where it is missing, start dockerd."""
    if _engine_answers():
        return
    if os.geteuid() != 0:
        raise HarnessError("starting a Docker engine needs root: run `fargate-lab kind-engine` as root, or start "
                           "Docker yourself", ExitCode.BACKEND_UNAVAILABLE)
    need("dockerd", ["docker.io"], "the kind backend", progress)
    home = cache_root() / "kind-engine"
    home.mkdir(parents=True, exist_ok=True)
    runtime = None
    missing = missing_capabilities()
    if missing:
        runtime = _write_runtime(home)
        progress(f"this host cannot grant {', '.join(missing)}: Docker runs containers without them ({runtime})")
    log = home / "dockerd.log"
    progress(f"starting dockerd (log {log})")
    with open(log, "ab") as out:
        subprocess.Popen(engine_command(runtime), stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _engine_answers():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise HarnessError(f"dockerd did not answer within 60 s ({tail[0][:300]}; log {log})",
                               ExitCode.BACKEND_UNAVAILABLE)
        time.sleep(0.5)
    progress("Docker engine ready")


def _write_runtime(home: Path) -> Path:
    """``runc-caps``: the real runc, given only capabilities the host can grant (a standalone script, so that
    dockerd keeps working whichever Python environment started it)."""
    runc = shutil.which("runc") or "/usr/sbin/runc"
    script = home / "runc-caps"
    source = Path(__file__).with_name("runc_caps.py").read_text()
    script.write_text(f"#!/usr/bin/python3\nREAL_RUNC = {runc!r}\n" + source)
    script.chmod(0o755)
    return script
