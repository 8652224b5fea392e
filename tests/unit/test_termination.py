"""A run stopped with SIGTERM (a CI job's timeout, a supervisor) cleans up as after Ctrl-C; a run that ends
early does not wait for an environment that is still being built."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fargatelab.backends import BackendOptions
from fargatelab.backends.local import start_in_background

ROOT = Path(__file__).resolve().parents[2]

_STOPPED = textwrap.dedent("""
    import sys, time
    from fargatelab.scenario.cleaner import Cleaner, terminate_as_interrupt
    terminate_as_interrupt()
    cleaner = Cleaner()
    cleaner.add("slow", lambda: (print("cleanup started", flush=True), time.sleep(1), print("cleanup ended")))
    try:
        print("ready", flush=True)
        time.sleep(30)
    except KeyboardInterrupt as exc:
        print("interrupted:", exc, flush=True)
        try:
            cleaner.run()
        except KeyboardInterrupt as again:
            print("after cleanup:", again)
""")


def _started(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_sigterm_interrupts_like_ctrl_c_and_cleanup_runs_to_its_end() -> None:
    proc = _started(_STOPPED)
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "interrupted: stopped by SIGTERM"
    assert proc.stdout.readline().strip() == "cleanup started"
    proc.send_signal(signal.SIGTERM)  # a second one while cleanup runs is held back, as Ctrl-C is
    out, _ = proc.communicate(timeout=30)
    assert out.splitlines() == ["cleanup ended",
                                "after cleanup: interrupted during cleanup; every cleanup action ran to its end"]
    assert proc.returncode == 0


def test_a_sigterm_handler_someone_installed_is_kept() -> None:
    code = textwrap.dedent("""
        import signal, sys, time
        from fargatelab.scenario.cleaner import terminate_as_interrupt
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
        terminate_as_interrupt()
        print("ready", flush=True)
        time.sleep(30)
    """)
    proc = _started(code)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 7


@pytest.mark.parametrize("data_plane", ["kwok", "microvm"])
def test_nothing_starts_early_while_the_binaries_are_still_to_be_built(
        data_plane: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARGATE_LABS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path / "state"))
    started = time.monotonic()
    assert start_in_background(BackendOptions(run_id="early1", data_plane=data_plane)) is None
    assert time.monotonic() - started < 5
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_kwok_nodes_start_nothing_early_while_kwok_is_still_to_be_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Kubernetes binaries alone are not enough for an environment on KWOK nodes: kwok is built on its own,
    and an early start would build it unseen."""
    from fargatelab.local.binaries import COMPONENTS, cached_bin_dir

    monkeypatch.setenv("FARGATE_LABS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path / "state"))
    kubernetes = cached_bin_dir()
    kubernetes.mkdir(parents=True)
    for name in COMPONENTS:
        (kubernetes / name).write_text("#!/bin/sh\n")
        (kubernetes / name).chmod(0o755)
    assert start_in_background(BackendOptions(run_id="early2", data_plane="kwok")) is None
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())
