"""Deleting a Fargate profile stops its pods; their replacements stay Pending unless another profile matches."""

from __future__ import annotations

import os
import time
from typing import Any, Iterator

import boto3
import pytest

from fargatelab.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.kube import Kube


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    os.environ["FARGATE_LABS_STATE"] = str(tmp_path_factory.mktemp("state"))
    environment = LocalEnvironment("deletion")
    try:
        environment.up(EnvironmentConfig(name="deletion"), progress=lambda _: None)
        yield environment
    finally:
        environment.down(quiet=True)
        del os.environ["FARGATE_LABS_STATE"]


def wait_for(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out; last seen: {last!r}")


def test_deleted_profile_sends_pods_back_to_pending(env: LocalEnvironment) -> None:
    h = env.handle()
    aws = dict(endpoint_url=h.aws_endpoint, region_name=h.region, aws_access_key_id="testing",
               aws_secret_access_key="testing")
    eks, iam = boto3.client("eks", **aws), boto3.client("iam", **aws)
    role = next(r["Arn"] for r in iam.list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"])
    eks.create_fargate_profile(clusterName=h.cluster_name, fargateProfileName="doomed", podExecutionRoleArn=role,
                               selectors=[{"namespace": "doomed"}])
    wait_for(lambda: eks.describe_fargate_profile(clusterName=h.cluster_name, fargateProfileName="doomed")[
        "fargateProfile"]["status"] == "ACTIVE")
    kube = Kube(h.kubeconfig)
    kube.kubectl("create", "namespace", "doomed")
    kube.kubectl("-n", "doomed", "create", "deployment", "web", "--image=nginx", "--replicas=2")
    first = wait_for(lambda: (lambda pods: pods if len(pods) == 2 and all(
        p["status"].get("phase") == "Running" for p in pods) else None)(kube.pods("doomed")))
    first_uids = {p["metadata"]["uid"] for p in first}

    eks.delete_fargate_profile(clusterName=h.cluster_name, fargateProfileName="doomed")

    def replaced() -> Any:
        pods = [p for p in kube.pods("doomed") if not p["metadata"].get("deletionTimestamp")]
        fresh = [p for p in pods if p["metadata"]["uid"] not in first_uids]
        return fresh if len(fresh) == 2 and len(pods) == 2 else None

    fresh = wait_for(replaced, 60)
    assert all(p["spec"]["schedulerName"] == "default-scheduler" for p in fresh)
    assert all(p["status"].get("phase") == "Pending" for p in fresh)
    # Their Fargate nodes went with them.
    wait_for(lambda: kube.fargate_nodes() == [], 30)
