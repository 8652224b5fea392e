"""junit.xml is staged in a directory named after the run's process; a run removes what killed runs left."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fargatelab.plugin import reporting


def test_staging_left_by_a_killed_run_goes_and_a_live_runs_stays(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    killed = tmp_path / f"{reporting.STAGING_PREFIX}{dead}-abc"
    older = tmp_path / f"{reporting.STAGING_PREFIX}0bhr_1oj"  # named without a process id
    live = tmp_path / f"{reporting.STAGING_PREFIX}{1}-def"  # init never exits
    unrelated = tmp_path / "fargate-labs-profiles-1.lock"
    for path in (killed, older, live):
        path.mkdir()
        (path / "junit.xml").write_text("<testsuites/>")
    unrelated.write_text("")
    reporting._remove_stale_staging()
    assert not killed.exists() and not older.exists()
    assert live.exists() and unrelated.exists()
