"""docs/writing-a-lab.md's worked example is a lab that works: it compiles, uses only the public API,
pytest collects it, and (integration) it passes against a local environment."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

import fargatelab

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "writing-a-lab.md"
MODULE = "test_busybox_sleep.py"
MANIFEST = "busybox-sleep.yaml"
TEST_IDS = ["test_busybox_runs_on_fargate", "test_busybox_sleeps", "test_busybox_deleted"]


def worked_example() -> tuple[str, str]:
    """The first ```python and ```yaml blocks of the worked example section: (module, manifest)."""
    text = DOC.read_text()
    section = re.search(r"^## \d+\. Worked example.*?(?=^## |\Z)", text, re.M | re.S)
    assert section, "docs/writing-a-lab.md has no '## N. Worked example' section"
    body = section.group(0)
    assert f"labs/{MODULE}" in body and f"fixtures/manifests/{MANIFEST}" in body, (
        "the worked example names its module and manifest")

    def block(language: str) -> str:
        found = re.search(rf"^```{language}\n(.*?)^```$", body, re.M | re.S)
        assert found, f"the worked example has no ```{language} block"
        return found.group(1)

    return block("python"), block("yaml")


def write_example(directory: Path) -> tuple[Path, Path]:
    """The module and its manifest (in ``manifests/``) under ``directory``."""
    module, manifest = worked_example()
    manifests = directory / "manifests"
    manifests.mkdir()
    (manifests / MANIFEST).write_text(manifest)
    (directory / MODULE).write_text(module)
    return directory / MODULE, manifests


def test_example_compiles_and_imports_only_the_public_api() -> None:
    module, manifest = worked_example()
    tree = ast.parse(compile(module, MODULE, "exec", ast.PyCF_ONLY_AST))
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fargatelab":
            assert node.module == "fargatelab", f"import from {node.module}: only `from fargatelab import …`"
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] != "fargatelab", f"import {alias.name}: use `from fargatelab import …`"
    assert imported, "the example imports nothing from fargatelab"
    assert not set(imported) - set(fargatelab.__all__), (
        f"not in fargatelab.__all__: {sorted(set(imported) - set(fargatelab.__all__))}")
    for name in imported:
        getattr(fargatelab, name)
    import yaml

    docs = [d for d in yaml.safe_load_all(manifest) if d]
    assert [(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs] == [
        ("Pod", "study-aews", "busybox")]
    assert docs[0]["spec"]["containers"][0]["image"] == "busybox"
    assert docs[0]["spec"]["containers"][0]["command"] == ["sleep", "3600"]


def test_example_is_collected(tmp_path: Path) -> None:
    module, manifests = write_example(tmp_path)
    env = dict(os.environ, FARGATE_LABS_MANIFESTS=str(manifests))
    result = subprocess.run([sys.executable, "-m", "pytest", str(module), "--collect-only", "-q",  # noqa: S603
                             "-p", "fargatelab.plugin", "-p", "no:cacheprovider"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for test_id in TEST_IDS:
        assert f"{MODULE}::{test_id}" in result.stdout, result.stdout


@pytest.fixture(scope="module")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment

    shell = dict(os.environ, FARGATE_LABS_STATE=str(tmp_path_factory.mktemp("state")))
    os.environ["FARGATE_LABS_STATE"] = shell["FARGATE_LABS_STATE"]
    environment = LocalEnvironment("writinglab")
    try:
        environment.up(EnvironmentConfig(name="writinglab"), progress=lambda _: None)
        yield shell
    finally:
        environment.down(quiet=True)
        del os.environ["FARGATE_LABS_STATE"]


@pytest.mark.integration
def test_example_passes_on_a_local_environment(local_env: dict[str, str], tmp_path: Path) -> None:
    module, manifests = write_example(tmp_path)
    env = dict(local_env, FARGATE_LABS_MANIFESTS=str(manifests))
    result = subprocess.run([sys.executable, "-m", "pytest", str(module), "-p", "fargatelab.plugin",  # noqa: S603
                             "-p", "no:cacheprovider", "--reuse", "writinglab", "--run-id", "docexample",
                             "-rs", "-q"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert re.search(r"\b2 passed, 1 skipped\b", out), out
    assert "needs pod-network" in out, out  # the local backend has no pod network: skipped with the reason
