"""Stand-in commands for the provisioning tests: a fake go, apt-get, crane or registry on a PATH of their own."""

from __future__ import annotations

import stat
from pathlib import Path


def script(path: Path, body: str) -> Path:
    """An executable shell script at ``path`` running ``body``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
