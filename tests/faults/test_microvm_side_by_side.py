"""Runs side by side on one environment whose pods run in microVMs: two at once, and one started while
another's cleanup is taking its microVMs down, each end with nothing of either left."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import pytest

import injector as faults
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.scenario.kube import Kube

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="microVMs need root (network namespaces, cgroups): run as root"),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    before = os.environ.get("FARGATE_LABS_STATE")
    os.environ["FARGATE_LABS_STATE"] = str(tmp_path_factory.mktemp("side-by-side"))
    env = LocalEnvironment("microvm-sides")
    env.up(EnvironmentConfig(name=env.name, data_plane="microvm"), progress=lambda _: None)
    try:
        yield env
    finally:
        env.down(quiet=True)
        if before is None:
            os.environ.pop("FARGATE_LABS_STATE", None)
        else:
            os.environ["FARGATE_LABS_STATE"] = before


def _namespaces(env: LocalEnvironment, run_id: str) -> dict[str, str]:
    """The run's Kubernetes namespaces and their phase."""
    items = Kube(env.handle().kubeconfig).get("/api/v1/namespaces")["items"]
    return {n["metadata"]["name"]: n.get("status", {}).get("phase", "") for n in items
            if run_id in n["metadata"]["name"]}


def _ended_clean(env: LocalEnvironment, run_id: str, run: object, out: str) -> None:
    assert getattr(run, "returncode") == 0, out[-3000:]
    assert faults.leaks(run_id, env.name) == []
    assert _namespaces(env, run_id) == {}


def test_two_runs_at_once(shared: LocalEnvironment) -> None:
    tag = os.getpid() % 1000
    runs = {f"sidea{tag}": faults.start_run("test_netshoot.py", f"sidea{tag}", "--reuse", shared.name),
            f"sideb{tag}": faults.start_run("test_root_shell.py", f"sideb{tag}", "--reuse", shared.name)}
    outputs = {run_id: run.communicate(timeout=600)[0] for run_id, run in runs.items()}
    for run_id, run in runs.items():
        _ended_clean(shared, run_id, run, outputs[run_id])


def test_a_run_started_while_another_cleans_up(shared: LocalEnvironment) -> None:
    first, second = f"clean{os.getpid() % 1000}", f"after{os.getpid() % 1000}"
    run = faults.start_run("test_netshoot.py", first, "--reuse", shared.name)
    deadline = time.monotonic() + 300
    while "Terminating" not in _namespaces(shared, first).values():
        assert run.poll() is None and time.monotonic() < deadline, "the first run ended before its cleanup was seen"
        time.sleep(0.1)
    late = faults.start_run("test_netshoot.py", second, "--reuse", shared.name)
    outputs = {first: run.communicate(timeout=600)[0], second: late.communicate(timeout=600)[0]}
    _ended_clean(shared, first, run, outputs[first])
    _ended_clean(shared, second, late, outputs[second])
    assert Path(shared.dir).exists() and shared.is_up()
