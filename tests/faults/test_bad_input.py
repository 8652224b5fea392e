"""Malformed or hostile input: one clear line each, a distinct exit code, and nothing created."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.errors import ExitCode
from fargatelab.scenario.kube import Kube

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SYNTHETIC_LAB = '''
def test_apply(lab):
    lab.apply("{manifest}")
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalEnvironment, dict[str, str]]]:
    shell = dict(os.environ, FARGATE_LABS_STATE=str(tmp_path_factory.mktemp("state")))
    os.environ["FARGATE_LABS_STATE"] = shell["FARGATE_LABS_STATE"]
    environment = LocalEnvironment("badinput")
    try:
        environment.up(EnvironmentConfig(name="badinput"), progress=lambda _: None)
        yield environment, shell
    finally:
        environment.down(quiet=True)
        del os.environ["FARGATE_LABS_STATE"]


def run_synthetic_lab(tmp_path: Path, shell: dict[str, str], manifest: str, body: str,
                      run_id: str) -> subprocess.CompletedProcess[str]:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / manifest).write_text(body)
    (tmp_path / "test_synthetic.py").write_text(SYNTHETIC_LAB.format(manifest=manifest))
    env = dict(shell, FARGATE_LABS_MANIFESTS=str(manifests))
    return subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_synthetic.py"), "-p",
                           "fargatelab.plugin", "-p", "no:cacheprovider", "--reuse", "badinput",
                           "--run-id", run_id, "-q"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)


def created_by(kube: Kube, run_id: str) -> list[str]:
    found = [n["metadata"]["name"] for n in kube.get("/api/v1/namespaces", labelSelector=f"fargate-labs/run-id={run_id}")["items"]]
    found += [d["metadata"]["name"] for d in kube.get("/apis/apps/v1/deployments",
                                                        labelSelector=f"fargate-labs/run-id={run_id}")["items"]]
    return found


def test_manifest_that_is_not_yaml(env: tuple[LocalEnvironment, dict[str, str]], tmp_path: Path) -> None:
    environment, shell = env
    result = run_synthetic_lab(tmp_path, shell, "broken.yaml", "kind: Deployment\nmetadata: {name: [unclosed\n",
                               "notyaml")
    assert result.returncode == 1, result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("fargate-labs: manifest")]
    assert len(lines) == 1 and "is not valid YAML" in lines[0], result.stdout
    assert "Traceback" not in result.stdout
    assert created_by(Kube(environment.handle().kubeconfig), "notyaml") == []


def test_manifest_in_a_namespace_the_run_does_not_own(env: tuple[LocalEnvironment, dict[str, str]],
                                                      tmp_path: Path) -> None:
    environment, shell = env
    hostile = textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: intruder, namespace: kube-system}
        spec:
          selector: {matchLabels: {app: intruder}}
          template:
            metadata: {labels: {app: intruder}}
            spec: {containers: [{name: c, image: busybox}]}
        """)
    result = run_synthetic_lab(tmp_path, shell, "hostile.yaml", hostile, "hostile")
    assert result.returncode == 1, result.stdout
    lines = [line for line in result.stdout.splitlines()
             if line.startswith("fargate-labs: manifest") and "which this run does not own" in line]
    assert len(lines) == 1 and "'kube-system'" in lines[0], result.stdout
    kube = Kube(environment.handle().kubeconfig)
    assert created_by(kube, "hostile") == []
    assert not kube.exists("/apis/apps/v1/namespaces/kube-system/deployments/intruder")


@pytest.mark.parametrize("cluster", ["eks;rm -rf ~", "$(id)", "a b", "`reboot`"],
                         ids=["semicolon", "command substitution", "space", "backticks"])
def test_cluster_name_with_shell_metacharacters(cluster: str, tmp_path: Path) -> None:
    shell = dict(os.environ, FARGATE_LABS_STATE=str(tmp_path))
    up = subprocess.run([sys.executable, "-m", "fargatelab.cli.main", "up", "--cluster", cluster], capture_output=True,
                        text=True, env=shell, timeout=60)
    assert up.returncode == ExitCode.USAGE
    assert up.stderr.strip().splitlines()[-1].endswith("is not a valid EKS cluster name (letters, digits, '-' and "
                                                        "'_', up to 100)")
    assert not any(tmp_path.iterdir()), "nothing may be created for a refused cluster name"
    labs = subprocess.run([sys.executable, "-m", "pytest", "labs/test_fargate_profile.py", "--cluster", cluster,
                           "-p", "no:cacheprovider", "-q"], cwd=ROOT, capture_output=True, text=True, env=shell,
                          timeout=60)
    assert labs.returncode == pytest.ExitCode.USAGE_ERROR
    assert "is not a valid EKS cluster name" in labs.stderr


def test_absent_kubeconfig(tmp_path: Path) -> None:
    shell = dict(os.environ, KUBECONFIG=str(tmp_path / "missing"), FARGATE_LABS_STATE=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "pytest", "labs/test_fargate_profile.py", "--backend", "eks",
                             "--kube-context", "-p", "no:cacheprovider", "-q"], cwd=ROOT, capture_output=True,
                            text=True, env=shell, timeout=60)
    assert result.returncode == ExitCode.BAD_INPUT
    out = result.stdout + result.stderr
    assert [line for line in out.splitlines() if "no kubeconfig found" in line], out
    assert "Traceback" not in out
