"""A component dying while a step waits fails that step at once, naming the component — no hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest

from fargatelab.scenario import conditions as cond
from fargatelab.scenario import wait
from fargatelab.backends import BackendOptions
from fargatelab.backends.local import LocalBackend
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.errors import ExitCode
from fargatelab.scenario.kube import Kube

pytestmark = pytest.mark.integration

TIMEOUT = 120.0


@pytest.fixture
def env(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalEnvironment]:
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path))
    environment = LocalEnvironment("dying")
    environment.up(EnvironmentConfig(name="dying"), progress=lambda _: None)
    try:
        yield environment
    finally:
        environment.down(quiet=True)


@pytest.mark.parametrize("component", ["emulator", "moto", "kube-apiserver", "kwok"])
def test_wait_fails_fast_naming_the_dead_component(env: LocalEnvironment, component: str) -> None:
    backend = LocalBackend(BackendOptions(reuse="dying", run_id="dying"))
    kube = Kube(backend.handle.kubeconfig)
    pid = next(c["pid"] for c in env.state()["components"] if c["name"] == component)  # type: ignore[index]
    threading.Timer(1.0, lambda: os.kill(pid, signal.SIGKILL)).start()
    started = time.monotonic()
    with pytest.raises(wait.ComponentDied) as died:
        wait.for_(cond.PodRunning(kube, "default", "never-created"), TIMEOUT, 0.2, backend.liveness)
    elapsed = time.monotonic() - started
    assert component in str(died.value) and "pod default/never-created Running" in str(died.value)
    assert elapsed < TIMEOUT / 4, f"took {elapsed:.1f}s of a {TIMEOUT:.0f}s timeout to notice"

    status = subprocess.run([sys.executable, "-m", "fargatelab.cli.main", "status", "--name", "dying"],
                            capture_output=True, text=True, env=dict(os.environ))
    assert status.returncode == ExitCode.START_FAILED
    dead_rows = [line.split()[0] for line in status.stdout.splitlines() if " DEAD " in line]
    assert dead_rows == [component]
    assert f"{component} died" in status.stderr
