"""The `eks` timing profile reproduces documented latencies (scaled), so waits meet realistic delays."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from fargatelab.scenario import conditions as cond
from fargatelab.scenario import wait
from fargatelab.local.environment import LocalEnvironment
from fargatelab.scenario.kube import Kube
from fargatelab.rules.timing import profile

pytestmark = pytest.mark.integration

SCALE = 0.05  # profile creation 240 s -> 12 s, pod start-up 52 s -> 2.6 s


@pytest.fixture(scope="module")
def env(local_environment: Callable[..., LocalEnvironment]) -> LocalEnvironment:
    return local_environment("timing", timing="eks", timing_scale=SCALE)


def test_profile_and_pod_take_the_documented_time(env: LocalEnvironment,
                                                  aws: Callable[[str], Any], pod_execution_role: str) -> None:
    t = profile("eks", SCALE)
    h = env.handle()
    eks = aws("eks")
    created = time.monotonic()
    eks.create_fargate_profile(clusterName=h.cluster_name, fargateProfileName="slow",
                               podExecutionRoleArn=pod_execution_role, selectors=[{"namespace": "slow"}])
    wait.for_(cond.ProfileStatus(eks, h.cluster_name, "slow", "ACTIVE"), t.profile_active_timeout, 0.2)
    assert time.monotonic() - created >= t.profile_create - 0.5

    kube = Kube(h.kubeconfig)
    kube.kubectl("create", "namespace", "slow")
    kube.kubectl("-n", "slow", "run", "p", "--image=nginx")
    started = time.monotonic()
    wait.for_(cond.PodRunning(kube, "slow", "p"), t.pod_ready_timeout, 0.2)
    assert time.monotonic() - started >= t.pod_start + t.node_provision - 0.5
