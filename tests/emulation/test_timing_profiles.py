"""The `eks` timing profile reproduces documented latencies (scaled), so waits meet realistic delays."""

from __future__ import annotations

import os
import time
from typing import Iterator

import boto3
import pytest

from fargatelab import conditions as cond
from fargatelab import wait
from fargatelab.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.kube import Kube
from fargatelab.timing import profile

SCALE = 0.05  # profile creation 240 s -> 12 s, pod start-up 52 s -> 2.6 s


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    os.environ["FARGATE_LABS_STATE"] = str(tmp_path_factory.mktemp("state"))
    environment = LocalEnvironment("timing")
    try:
        environment.up(EnvironmentConfig(name="timing", timing="eks", timing_scale=SCALE), progress=lambda _: None)
        yield environment
    finally:
        environment.down(quiet=True)
        del os.environ["FARGATE_LABS_STATE"]


def test_profile_and_pod_take_the_documented_time(env: LocalEnvironment) -> None:
    t = profile("eks", SCALE)
    h = env.handle()
    aws = dict(endpoint_url=h.aws_endpoint, region_name=h.region, aws_access_key_id="testing",
               aws_secret_access_key="testing")
    eks, iam = boto3.client("eks", **aws), boto3.client("iam", **aws)
    role = next(r["Arn"] for r in iam.list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"])
    created = time.monotonic()
    eks.create_fargate_profile(clusterName=h.cluster_name, fargateProfileName="slow", podExecutionRoleArn=role,
                               selectors=[{"namespace": "slow"}])
    wait.for_(cond.ProfileStatus(eks, h.cluster_name, "slow", "ACTIVE"), t.profile_active_timeout, 0.2)
    assert time.monotonic() - created >= t.profile_create - 0.5

    kube = Kube(h.kubeconfig)
    kube.kubectl("create", "namespace", "slow")
    kube.kubectl("-n", "slow", "run", "p", "--image=nginx")
    started = time.monotonic()
    wait.for_(cond.PodRunning(kube, "slow", "p"), t.pod_ready_timeout, 0.2)
    assert time.monotonic() - started >= t.pod_start + t.node_provision - 0.5
