"""kill -9 of everything (the harness, the control plane, moto, the emulation, the microVMs): ``fargate-lab
cleanup --orphans`` finds what was left without a run id and removes it, and ``fargate-lab up`` of another
environment starts clean, with real pods, past what was left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

import injector as faults
from fargatelab.local import process
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.local.vpc_network import namespaces_of_run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="microVMs need root (network namespaces, cgroups): run as root"),
]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fargatelab.cli.main", *args], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ))


@pytest.fixture
def killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An environment with a lab's pods in microVMs, then every process of it and of the run killed with -9;
    yields the environment's run id."""
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path))
    env = LocalEnvironment("everything")
    run_id = env.up(EnvironmentConfig(name=env.name, data_plane="microvm"), progress=lambda _: None).run_id
    lab_run = f"all{os.getpid() % 1000}"
    run = faults.start_run("test_netshoot.py", lab_run, "--reuse", env.name)
    try:
        # The VPC's router, CoreDNS's two microVMs, then at least one of the lab's pods.
        deadline = time.monotonic() + 180
        while len(namespaces_of_run(run_id)) < 4 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(namespaces_of_run(run_id)) >= 4, "no pod of the lab got a microVM before the run ended"
        os.killpg(run.pid, signal.SIGKILL)
        # Until none is left: a process being started as the others die (a shim containerd forks) is the
        # run's too, and would keep the run alive in the orphan search.
        deadline = time.monotonic() + 10
        while (left := process.tagged_pids(run_id) + process.tagged_pids(lab_run)) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:  # gone with its process group a moment ago
                    pass
            time.sleep(0.2)
        run.communicate()
        yield run_id
    finally:
        for name in ("everything", "after-everything"):
            LocalEnvironment(name).down(quiet=True)
        _cli("cleanup", "--orphans")


def test_cleanup_finds_and_removes_the_orphans(killed: str) -> None:
    listed = _cli("leaks", "--orphans")
    assert listed.returncode == 17, listed.stdout + listed.stderr
    assert f"run {killed}:" in listed.stdout and "network namespace" in listed.stdout, listed.stdout

    cleaned = _cli("cleanup", "--orphans")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert f"removed what killed run {killed} left" in cleaned.stdout
    assert faults.data_plane_leaks(killed) == []
    assert process.tagged_pids(killed) == []
    assert not LocalEnvironment("everything").dir.exists()
    assert _cli("leaks", "--orphans").returncode == 0


def test_up_after_kill_9_of_everything_starts_clean(killed: str) -> None:
    # Another environment's up: the killed one's VPC route would have sent it to KWOK nodes.
    up = _cli("up", "--name", "after-everything", "--data-plane", "auto")
    assert up.returncode == 0, up.stderr
    assert f"removed what killed run {killed} left" in up.stderr
    assert "KWOK" not in up.stderr, up.stderr
    assert LocalEnvironment("after-everything").state()["data_plane"] == "microvm"  # type: ignore[index]
    assert faults.data_plane_leaks(killed) == []
    assert not LocalEnvironment("everything").dir.exists()
