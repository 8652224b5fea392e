"""Start locks and state-less directories that runs leave: which go, and which stay."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from fargatelab.local.orphans import stale_leftovers


def _old(path: Path, directory: bool = False) -> Path:
    """``path`` made (a directory or an empty file) and aged an hour."""
    if directory:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.touch()
    past = time.time() - 3600
    os.utime(path, (past, past))
    return path


def test_only_unheld_old_leftovers_of_environments_without_state_go(tmp_path: Path) -> None:
    root = tmp_path
    # a kind run whose cluster creation failed: its lock, and a directory with only its registry hosts
    (root / "kind-a" / "certs.d").mkdir(parents=True)
    _old(root / "kind-a", directory=True)
    _old(root / ".kind-a.lock")
    # a finished run's lock, alone
    _old(root / ".labs-b.lock")
    # a directory with no lock at all
    _old(root / "labs-e", directory=True)
    # an environment that is up: its state stays, whatever its age
    (root / "dev").mkdir()
    (root / "dev" / "state.json").write_text("{}")
    _old(root / ".dev.lock")
    # a lock someone holds (a start under way)
    held = _old(root / ".labs-c.lock")
    # a lock just made
    root.joinpath(".labs-d.lock").touch()

    with open(held, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        stale = stale_leftovers(root)
    assert sorted(p.name for p in stale) == [".kind-a.lock", ".labs-b.lock", ".labs-e.lock", "kind-a", "labs-e"]
