"""Debian packages the harness installs itself when a command it needs is missing (a fresh machine has
none of them): one apt-get path for every room, waiting for another apt run's lock instead of failing."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Callable

from ..errors import ExitCode, HarnessError

__all__ = ["need"]


def need(command: str, packages: list[str], user: str, progress: Callable[[str], None]) -> None:
    """Install ``packages`` with apt-get when ``command`` is missing (again after an update if that fails);
    ``user`` says who needs it, for the progress line and the error."""
    if shutil.which(command) is not None:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise HarnessError(f"{user} needs the {command} command: install {' '.join(packages)} (Debian: apt-get "
                           f"install {' '.join(packages)})", ExitCode.MISSING_BINARY)
    progress(f"installing {' '.join(packages)} with apt-get, for {user}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Another apt run (a parallel worker's, a person's) holds dpkg's lock for a while: wait for it.
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "--no-install-recommends",
               *packages]
    proc = subprocess.run(install, env=env, capture_output=True, text=True)
    if proc.returncode != 0:  # a machine that never ran it has no package lists yet
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], env=env, capture_output=True)
        proc = subprocess.run(install, env=env, capture_output=True, text=True)
    if proc.returncode == 0 and shutil.which(command) is not None:
        return
    tail = (proc.stderr.strip() or proc.stdout.strip() or "(no output)").splitlines()[-1]
    raise HarnessError(f"apt-get install {' '.join(packages)} failed: {tail}; install it and run again",
                       ExitCode.MISSING_BINARY)
