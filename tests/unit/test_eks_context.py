"""--kube-context: the cluster name and region behind a kubeconfig context, as aws-cli and eksctl write them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fargatelab.backends.eks_connection import target_from_context
from fargatelab.rules.naming import validate_run_id
from fargatelab.errors import ExitCode, HarnessError

ARN = "arn:aws:eks:ap-northeast-2:123456789012:cluster/eksworkshop"


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": ARN,
        "clusters": [{"name": ARN, "cluster": {"server": "https://x"}},
                     {"name": "eksworkshop.us-west-2.eksctl.io", "cluster": {"server": "https://y"}},
                     {"name": "plain", "cluster": {"server": "https://z"}}],
        "users": [{"name": "u", "user": {}},
                  {"name": "exec", "user": {"exec": {"command": "aws", "args": [
                      "--region", "eu-west-1", "eks", "get-token", "--cluster-name", "lab"]}}}],
        "contexts": [{"name": ARN, "context": {"cluster": ARN, "user": "u"}},
                     {"name": "eksctl", "context": {"cluster": "eksworkshop.us-west-2.eksctl.io", "user": "u"}},
                     {"name": "exec", "context": {"cluster": "plain", "user": "exec"}},
                     {"name": "kind", "context": {"cluster": "plain", "user": "u"}}],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def test_current_context_written_by_aws_cli(kubeconfig: Path) -> None:
    assert target_from_context(None) == ("eksworkshop", "ap-northeast-2")


def test_eksctl_context(kubeconfig: Path) -> None:
    assert target_from_context("eksctl") == ("eksworkshop", "us-west-2")


def test_exec_arguments(kubeconfig: Path) -> None:
    assert target_from_context("exec") == ("lab", "eu-west-1")


@pytest.mark.parametrize("context,message", [("kind", "does not name an EKS cluster"), ("nope", "does not exist")])
def test_not_an_eks_context(kubeconfig: Path, context: str, message: str) -> None:
    with pytest.raises(HarnessError) as failed:
        target_from_context(context)
    assert failed.value.code == ExitCode.BAD_INPUT and message in str(failed.value)


def test_run_ids() -> None:
    assert validate_run_id("nightly-202611212300") == "nightly-202611212300"
    for bad in ("", "UPPER", "a" * 33, "-x", "x_y"):
        with pytest.raises(HarnessError):
            validate_run_id(bad)
