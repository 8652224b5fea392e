"""The nightly workflow example (.github/workflows/nightly.yml): what docs/nightly.md says it does, and valid
for actionlint."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
ACTIONLINT_MODULE = "github.com/rhysd/actionlint/cmd/actionlint@latest"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return doc


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    [job] = workflow["jobs"].values()
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def test_oidc_credentials_from_a_role(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"]["id-token"] == "write"
    [creds] = [s for s in _steps(workflow) if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")]
    assert "role-to-assume" in creds["with"] and "aws-access-key-id" not in creds["with"]


def test_one_run_at_a_time_per_cluster(workflow: dict[str, Any]) -> None:
    [job] = workflow["jobs"].values()
    assert "EKS_CLUSTER" in workflow["concurrency"]["group"]
    assert job["env"]["EKS_CLUSTER"].split("||")[0] in workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_runs_the_nightly_session_and_always_keeps_its_reports(workflow: dict[str, Any]) -> None:
    steps = _steps(workflow)
    assert any(s.get("run", "").strip() == "nox -s nightly" for s in steps)
    [upload] = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()" and upload["with"]["path"].startswith("reports/")
    [summary] = [s for s in steps if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary["if"] == "always()" and "summary.md" in summary["run"]
    assert ".github/workflows/nightly.yml" in (ROOT / "docs" / "nightly.md").read_text()


def _actionlint() -> Path:
    """actionlint, built once from its Go module into the harness's cache (nothing prebuilt is downloaded)."""
    from fargatelab.local.binaries import cache_root

    tools = Path(cache_root()) / "tools"
    binary = tools / "actionlint"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed: actionlint is built from its Go module "
                    f"(GOTOOLCHAIN=local go install {ACTIONLINT_MODULE})")
    tools.mkdir(parents=True, exist_ok=True)
    build = subprocess.run([go, "install", ACTIONLINT_MODULE], capture_output=True, text=True, timeout=900,
                           env={**os.environ, "GOTOOLCHAIN": "local", "GOBIN": str(tools)})
    assert build.returncode == 0 and binary.exists(), build.stderr[-3000:]
    return binary


@pytest.mark.integration
def test_actionlint_finds_nothing() -> None:
    result = subprocess.run([str(_actionlint()), str(WORKFLOW)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
