"""Deleting a Fargate profile stops its pods; their replacements stay Pending unless another profile matches."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from fargatelab.scenario import conditions as cond
from fargatelab.scenario import wait
from fargatelab.local.environment import LocalEnvironment
from fargatelab.scenario.kube import Kube

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(local_environment: Callable[..., LocalEnvironment]) -> LocalEnvironment:
    return local_environment("deletion")


def test_deleted_profile_sends_pods_back_to_pending(env: LocalEnvironment,
                                                    aws: Callable[[str], Any], pod_execution_role: str) -> None:
    h = env.handle()
    eks = aws("eks")
    eks.create_fargate_profile(clusterName=h.cluster_name, fargateProfileName="doomed",
                               podExecutionRoleArn=pod_execution_role, selectors=[{"namespace": "doomed"}])
    wait.for_(cond.ProfileStatus(eks, h.cluster_name, "doomed", "ACTIVE"), 60, 0.3)
    kube = Kube(h.kubeconfig)
    kube.kubectl("create", "namespace", "doomed")
    kube.kubectl("-n", "doomed", "create", "deployment", "web", "--image=nginx", "--replicas=2")
    first = wait.until(lambda: (lambda pods: pods if len(pods) == 2 and all(
        p["status"].get("phase") == "Running" for p in pods) else None)(kube.pods("doomed")),
        60, "two pods Running", 0.3)
    first_uids = {p["metadata"]["uid"] for p in first}

    eks.delete_fargate_profile(clusterName=h.cluster_name, fargateProfileName="doomed")

    def replaced() -> Any:
        pods = [p for p in kube.pods("doomed") if not p["metadata"].get("deletionTimestamp")]
        fresh = [p for p in pods if p["metadata"]["uid"] not in first_uids]
        return fresh if len(fresh) == 2 and len(pods) == 2 else None

    fresh = wait.until(replaced, 60, "both pods replaced", 0.3)
    assert all(p["spec"]["schedulerName"] == "default-scheduler" for p in fresh)
    assert all(p["status"].get("phase") == "Pending" for p in fresh)
    # Their Fargate nodes went with them.
    wait.until(lambda: kube.fargate_nodes() == [], 30, "no Fargate node left", 0.3)
