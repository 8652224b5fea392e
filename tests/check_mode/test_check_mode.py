"""Check mode as a student runs it: read-only credentials, documented names, nothing written.

The student follows the documents by hand (the profile of Lab 1, the manifest of Lab 2), then runs the
self-check with an identity that can only read (an IAM user named ``…ReadOnly``: the local environment's
stand-in for an EKS access entry with AmazonEKSViewPolicy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from fargatelab.scenario import wait
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.scenario.kube import Kube
from fargatelab.scenario.lab import MANIFESTS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["labs/test_fargate_profile.py", "labs/test_game_2048_ingress.py"]


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An environment where a student did Labs 1 and 2, and that student's read-only shell."""
    import boto3

    state = tmp_path_factory.mktemp("state")
    os.environ["FARGATE_LABS_STATE"] = str(state)
    env = LocalEnvironment("student")
    try:
        handle = env.up(EnvironmentConfig(name="student"), progress=lambda _: None)
        admin = dict(endpoint_url=handle.aws_endpoint, region_name=handle.region, aws_access_key_id="testing",
                     aws_secret_access_key="testing")
        eks, iam = boto3.client("eks", **admin), boto3.client("iam", **admin)
        role = next(r["Arn"] for r in iam.list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"])
        eks.create_fargate_profile(clusterName=handle.cluster_name, fargateProfileName="fargate-game-2048",
                                   podExecutionRoleArn=role, selectors=[{"namespace": "fargate-game-2048"}])
        wait.until(lambda: eks.describe_fargate_profile(clusterName=handle.cluster_name,
                                                        fargateProfileName="fargate-game-2048")
                   ["fargateProfile"]["status"] == "ACTIVE", 60, "the student's profile")
        kube = Kube(handle.kubeconfig)
        kube.kubectl("apply", "-f", str(MANIFESTS / "fargate_2048_full.yaml"))
        kube.kubectl("-n", "fargate-game-2048", "rollout", "status", "deployment", "deployment-2048", "--timeout=120s")
        iam.create_user(UserName="StudentReadOnly")
        key = iam.create_access_key(UserName="StudentReadOnly")["AccessKey"]
        shell = dict(os.environ, AWS_ENDPOINT_URL=handle.aws_endpoint, AWS_REGION=handle.region,
                     AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
        shell.pop("KUBECONFIG", None)
        yield {"shell": shell, "kube": kube, "handle": handle}
    finally:
        env.down(quiet=True)
        del os.environ["FARGATE_LABS_STATE"]


def self_check(shell: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # The student did the fargate-game-2048 variant of Lab 2, not the study-aews one; the game page needs a
    # real ALB, which the local environment behind the eks backend does not serve.
    return subprocess.run([sys.executable, "-m", "pytest", *MODULES, "--backend", "eks", "--mode", "check",
                           "--cluster", "eksworkshop", "--region", "ap-northeast-2", "-p", "no:cacheprovider", "-q",
                           "-k", "not study-aews and not game_page and not game_in_a_browser",
                           "--reports-dir", str(tmp_path / "reports")],
                          cwd=ROOT, env=shell, capture_output=True, text=True, timeout=600)


def test_done_steps_pass_with_a_read_only_identity(student: dict[str, Any], tmp_path: Path) -> None:
    before = student["kube"].get("/api/v1/namespaces")["items"]
    result = self_check(student["shell"], tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.splitlines()[-1]
    after = student["kube"].get("/api/v1/namespaces")["items"]
    assert [n["metadata"]["name"] for n in after] == [n["metadata"]["name"] for n in before], "check mode wrote"


def test_the_identity_really_is_read_only(student: dict[str, Any], tmp_path: Path) -> None:
    from fargatelab.backends.eks_connection import connect

    os.environ.update({k: student["shell"][k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    try:
        _conn, _desc, kubeconfig = connect("eksworkshop", "ap-northeast-2", "readonly")
        kube = Kube(str(kubeconfig))
        assert kube.kubectl("auth", "can-i", "list", "pods", "-A", check=False).stdout.strip() == "yes"
        assert not kube.can_i("create", "pods", "fargate-game-2048")
        assert not kube.can_i("create", "pods/exec", "study-aews")
        assert student["kube"].can_i("create", "pods/exec", "study-aews")  # the admin's kubeconfig may
    finally:
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.pop(k, None)


def test_in_pod_probes_are_skipped_without_exec_and_say_why(student: dict[str, Any], tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "labs/test_netshoot.py", "--backend", "eks",
                             "--mode", "check", "--cluster", "eksworkshop", "--region", "ap-northeast-2",
                             "-p", "no:cacheprovider", "-q", "-rs", "-k", "in_pod",
                             "--reports-dir", str(tmp_path / "reports")],
                            cwd=ROOT, env=student["shell"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stdout.splitlines()[-1].startswith("8 skipped"), result.stdout[-4000:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED [8] ")]
    assert skipped and "needs create on pods/exec in study-aews, which this identity lacks" in skipped[0], \
        result.stdout[-4000:]


def test_fargate_lab_check_from_a_kubeconfig_context(student: dict[str, Any], tmp_path: Path) -> None:
    """The student's command: cluster and region from their kubeconfig's context, one line per lab."""
    arn = "arn:aws:eks:ap-northeast-2:123456789012:cluster/eksworkshop"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({  # as `aws eks update-kubeconfig` names it; only the context is read
        "apiVersion": "v1", "kind": "Config", "current-context": arn,
        "clusters": [{"name": arn, "cluster": {"server": "https://unused"}}], "users": [{"name": arn, "user": {}}],
        "contexts": [{"name": arn, "context": {"cluster": arn, "user": arn}}]}))
    shell = dict(student["shell"], KUBECONFIG=str(kubeconfig))

    def check(*lab: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fargatelab.cli", "check", "--reports-dir",
                               str(tmp_path / "reports"), *lab], cwd=ROOT, env=shell, capture_output=True,
                              text=True, timeout=600)

    done = check("--lab", "1")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "fargate-lab check: cluster eksworkshop in ap-northeast-2 (the current context)" in done.stdout
    assert "✔ Lab 1 — Fargate profile: done" in done.stdout
    not_yet = check("--lab", "root-shell")  # the student has not made the root-shell pod
    assert not_yet.returncode == 1, not_yet.stdout[-4000:] + not_yet.stderr[-2000:]
    assert "✘ Lab 5 — the root-shell pod is rejected: not yet" in not_yet.stdout
    assert "      run: kubectl apply" in not_yet.stdout, not_yet.stdout[-4000:]


def test_an_undone_step_is_named_with_its_command(student: dict[str, Any], tmp_path: Path) -> None:
    student["kube"].kubectl("-n", "fargate-game-2048", "delete", "ingress", "ingress-2048", "--wait=true")
    result = self_check(student["shell"], tmp_path)
    assert result.returncode == 1, result.stdout[-4000:]
    assert "missing: Ingress fargate-game-2048/ingress-2048; run: kubectl apply -f" in result.stdout, result.stdout[-4000:]
