"""Breaking a fact the documents record, in a lab manifest, fails the matching step with a message naming it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.scenario.lab import MANIFESTS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _doc(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name)


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["template"]["spec"] if "template" in doc["spec"] else doc["spec"]
    container: dict[str, Any] = spec["containers"][0]
    return container


# fact broken: (manifest, how to break it, lab module, -k selection, words the failure must name)
BREAKS: dict[str, tuple[str, Callable[[list[dict[str, Any]]], None], str, str, str]] = {
    "2048 replicas 5->4": (
        "fargate_2048_full.yaml",
        lambda d: _doc(d, "Deployment", "deployment-2048")["spec"].update(replicas=4),
        "labs/test_game_2048_ingress.py", "test_manifest and fargate-game-2048", "replicas of deployment-2048"),
    "scheme annotation internal": (
        "fargate_2048_full.yaml",
        lambda d: _doc(d, "Ingress", "ingress-2048")["metadata"]["annotations"].update(
            {"alb.ingress.kubernetes.io/scheme": "internal"}),
        "labs/test_game_2048_ingress.py", "test_manifest and fargate-game-2048",
        "annotation alb.ingress.kubernetes.io/scheme"),
    "netshoot cpu request 1": (
        "netshoot.yaml",
        lambda d: _container(_doc(d, "Deployment", "netshoot"))["resources"]["requests"].update(cpu="1"),
        "labs/test_netshoot.py", "test_netshoot_pod", "netshoot requests"),
    "busybox1 TTL 30": (
        "jobs-ttl.yaml",
        lambda d: _doc(d, "Job", "busybox1")["spec"].update(ttlSecondsAfterFinished=30),
        "labs/test_job_ttl.py", "test_job_completes and busybox1", "busybox1 ttlSecondsAfterFinished"),
    "root-shell not privileged": (
        "root-shell.yaml",
        lambda d: _container(_doc(d, "Pod", "root-shell"))["securityContext"].update(privileged=False),
        "labs/test_root_shell.py", "test_root_shell_stays_pending", "FailedScheduling event of root-shell"),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    shell = dict(os.environ, FARGATE_LABS_STATE=str(tmp_path_factory.mktemp("state")))
    os.environ["FARGATE_LABS_STATE"] = shell["FARGATE_LABS_STATE"]
    environment = LocalEnvironment("facts")
    try:
        environment.up(EnvironmentConfig(name="facts"), progress=lambda _: None)
        yield shell
    finally:
        environment.down(quiet=True)
        del os.environ["FARGATE_LABS_STATE"]


@pytest.mark.parametrize("fact", list(BREAKS), ids=list(BREAKS))
def test_broken_fact_is_named(env: dict[str, str], tmp_path: Path, fact: str) -> None:
    manifest, breaks, module, selection, named = BREAKS[fact]
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    docs = [d for d in yaml.safe_load_all((copy / manifest).read_text()) if d]
    breaks(docs)
    (copy / manifest).write_text(yaml.safe_dump_all(docs))
    result = subprocess.run([sys.executable, "-m", "pytest", module, "-k", selection, "--reuse", "facts",
                             "-p", "no:cacheprovider", "-q", "--no-reports"],
                            cwd=ROOT, env=dict(env, FARGATE_LABS_MANIFESTS=str(copy)), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 1, result.stdout[-3000:]
    assert named in result.stdout, f"no failure names {named!r}:\n{result.stdout[-3000:]}"


def test_unbroken_manifests_pass_the_same_steps(env: dict[str, str]) -> None:
    """The control: with the manifests as written, every selection above passes."""
    selection = " or ".join(f"({s})" for *_, s, _ in BREAKS.values())
    modules = sorted({m for _, _, m, _, _ in BREAKS.values()})
    result = subprocess.run([sys.executable, "-m", "pytest", *modules, "-k", selection, "--reuse", "facts",
                             "-p", "no:cacheprovider", "-q", "--no-reports"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
