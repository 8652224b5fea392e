"""``lab.run``: a documented line runs as written through the tools on PATH, with the run's names put in; the
report gets the line, what ran, its exit code and output; a failing line fails the step."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from fargatelab import CommandFailed, Tools
from fargatelab.rules.timing import profile
from fargatelab.scenario.handle import ClusterHandle
from fargatelab.scenario.lab import Lab
from stand_ins import script


def _lab(tmp_path: Path, tools: Tools) -> Lab:
    cluster = ClusterHandle(kubeconfig=str(tmp_path / "kubeconfig"), cluster_name="eksworkshop",
                            region="ap-northeast-2", run_id="r1234567", aws_endpoint="http://127.0.0.1:1")
    kube = SimpleNamespace(kubectl_path="kubectl")
    return Lab(cluster, kube, lambda _s: None, profile("fast"), tools=lambda: tools)  # type: ignore[arg-type]


def test_a_documented_line_runs_with_the_runs_names(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    # A stand-in eksctl that prints its arguments and what it was given of the environment.
    script(bin_dir / "eksctl", 'echo "args: $*"; echo "kubeconfig: $KUBECONFIG endpoint: $AWS_ENDPOINT_URL"; '
                               'echo "a warning" >&2')
    lab = _lab(tmp_path, Tools(bin_dir, {"eksctl": "v0"}))
    ran = lab.run("eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048",
                  {"fargate-game-2048": "fargate-game-2048-r1234567"}, added="--tags fargate-labs/run-id=r1234567")
    assert ran.command == ("eksctl create fargateprofile --cluster eksworkshop --name fargate-game-2048-r1234567 "
                           "--tags fargate-labs/run-id=r1234567")
    assert ran.stdout.splitlines() == [
        "args: create fargateprofile --cluster eksworkshop --name fargate-game-2048-r1234567 "
        "--tags fargate-labs/run-id=r1234567",
        f"kubeconfig: {tmp_path / 'kubeconfig'} endpoint: http://127.0.0.1:1"]
    assert ran.output.endswith("a warning\n")
    (step,), (recorded,) = ([v for k, v in lab.record if k == kind] for kind in ("step", "ran"))
    assert step == ("eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048  =>  "
                    + ran.command)
    assert json.loads(str(recorded))["exit_code"] == 0


def test_a_failing_line_fails_the_step_with_its_output(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    script(bin_dir / "helm", 'echo "Error: INSTALLATION FAILED: cannot re-use a name" >&2; exit 1')
    lab = _lab(tmp_path, Tools(bin_dir, {}))
    with pytest.raises(CommandFailed, match="cannot re-use a name") as failed:
        lab.run("helm install kube-ops-view geek-cookbook/kube-ops-view")
    assert (failed.value.expected, failed.value.actual) == (0, 1)
    assert json.loads(str(lab.record[-1][1]))["exit_code"] == 1  # in the report too


def test_compared_fields_are_noted_beside_what_ran(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    script(bin_dir / "eksctl", "echo '- status: ACTIVE'")
    lab = _lab(tmp_path, Tools(bin_dir, {}))
    ran = lab.run("eksctl get fargateprofile -o yaml")
    lab.compared(ran, "status", "ACTIVE", "ACTIVE")
    with pytest.raises(AssertionError, match="subnets"):
        lab.compared(ran, "subnets", ["a"], ["a", "b"])
    assert json.loads(str(lab.record[-1][1]))["compared"] == [
        "status: 'ACTIVE' (as documented)", "subnets: ['a'], documented ['a', 'b']"]


def test_without_tools_a_lab_says_why() -> None:
    missing = Tools(Path(), {}, "building eksctl needs Go")
    assert not missing.has("eksctl") and missing.why_not("eksctl") == "building eksctl needs Go"
    assert Tools(None, {}).has("sh") and not Tools(None, {}).has("no-such-tool-here")
