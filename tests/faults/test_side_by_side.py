"""Two runs on one machine never see or delete each other's resources."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path))
    yield tmp_path


def test_two_environments_side_by_side(state: Path) -> None:
    a, b = LocalEnvironment("side-a"), LocalEnvironment("side-b")
    try:
        ha = a.up(EnvironmentConfig(name="side-a"), progress=lambda _: None)
        hb = b.up(EnvironmentConfig(name="side-b"), progress=lambda _: None)
        assert ha.kubeconfig != hb.kubeconfig and ha.aws_endpoint != hb.aws_endpoint
        a.down(quiet=True)
        assert b.is_up(), f"taking side-a down hurt side-b: {b.dead_components()}"
    finally:
        a.down(quiet=True)
        b.down(quiet=True)


def test_two_run_ids_on_one_environment(state: Path) -> None:
    env = LocalEnvironment("shared")
    env.up(EnvironmentConfig(name="shared"), progress=lambda _: None)
    try:
        runs = [subprocess.Popen([sys.executable, "-m", "pytest", "labs/test_fargate_profile.py", "--reuse", "shared",
                                  "--run-id", run_id, "-p", "no:cacheprovider", "-q",
                                  "-k", "create_profile or wildcard or precedence"],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env=dict(os.environ))
                for run_id in ("sidea111", "sideb222")]
        outputs = [r.communicate(timeout=600)[0] for r in runs]
        for run, out in zip(runs, outputs):
            assert run.returncode == 0, out[-3000:]
        from fargatelab.scenario.kube import Kube

        kube = Kube(env.handle().kubeconfig)
        left = [n["metadata"]["name"] for n in kube.get("/api/v1/namespaces")["items"]
                if "sidea111" in n["metadata"]["name"] or "sideb222" in n["metadata"]["name"]]
        assert left == []
    finally:
        env.down(quiet=True)
