"""``--keep`` on the local backend: what the run made stays, and so does the environment it lives in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from fargatelab.local.environment import LocalEnvironment
from fargatelab.scenario.kube import Kube

pytestmark = pytest.mark.integration

LAB = '''
def test_makes_a_namespace(lab):
    lab.namespace("kept")


def test_makes_a_profile(lab):
    lab.create_profile("shared", [{"namespace": "shared"}])


def test_makes_the_same_profile_as_the_test_before(lab):
    # Two labs that share a profile name (as Lab 3's two kube-system modules do): the first one's is kept.
    lab.create_profile("shared", [{"namespace": "shared"}])
'''


def test_keep_leaves_the_run_and_its_environment_up(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (tmp_path / "test_kept.py").write_text(LAB)
    run_id = "keep0001"
    shell = dict(os.environ, FARGATE_LABS_STATE=str(state))
    os.environ["FARGATE_LABS_STATE"] = str(state)
    environment = LocalEnvironment(f"labs-{run_id}")
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "test_kept.py", "-p", "fargatelab.plugin",
                               "-p", "no:cacheprovider", "--run-id", run_id, "--keep", "-q"],
                              cwd=tmp_path, env=shell, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        assert environment.is_up(), "the run's environment was taken down despite --keep"
        kube = Kube(environment.handle().kubeconfig)
        assert kube.exists(f"/api/v1/namespaces/kept-{run_id}")
        handle = environment.handle()
        eks = boto3.client("eks", endpoint_url=handle.aws_endpoint, region_name=handle.region,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        shared = eks.describe_fargate_profile(clusterName=handle.cluster_name, fargateProfileName=f"shared-{run_id}")
        assert shared["fargateProfile"]["status"] == "ACTIVE"
        assert (f"kept environment labs-{run_id} of run {run_id} (--keep): look with "
                f"`eval \"$(fargate-lab env --name labs-{run_id})\"`, remove with "
                f"`fargate-lab down --name labs-{run_id}`") in " ".join(done.stdout.split())
    finally:
        environment.down(quiet=True)
        del os.environ["FARGATE_LABS_STATE"]
    assert not environment.is_up()
