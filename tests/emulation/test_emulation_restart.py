"""The emulation rebuilds its view from the API after a crash and never binds a pod twice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from fargatelab.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.kube import Kube


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    os.environ["FARGATE_LABS_STATE"] = str(tmp_path_factory.mktemp("state"))
    environment = LocalEnvironment("restart")
    try:
        environment.up(EnvironmentConfig(name="restart", timing_scale=4), progress=lambda _: None)  # placement takes 2 s
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


def test_restart_mid_rollout_binds_each_pod_once(env: LocalEnvironment) -> None:
    h = env.handle()
    aws = dict(endpoint_url=h.aws_endpoint, region_name=h.region, aws_access_key_id="testing",
               aws_secret_access_key="testing")
    eks, iam = boto3.client("eks", **aws), boto3.client("iam", **aws)
    role = next(r["Arn"] for r in iam.list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"])
    eks.create_fargate_profile(clusterName=h.cluster_name, fargateProfileName="restart", podExecutionRoleArn=role,
                               selectors=[{"namespace": "restart"}])
    wait_for(lambda: eks.describe_fargate_profile(clusterName=h.cluster_name, fargateProfileName="restart")[
        "fargateProfile"]["status"] == "ACTIVE")
    kube = Kube(h.kubeconfig)
    kube.kubectl("create", "namespace", "restart")
    kube.kubectl("-n", "restart", "create", "deployment", "web", "--image=nginx", "--replicas=6")

    emulator = next(c for c in env.state()["components"] if c["name"] == "emulator")  # type: ignore[index]
    # Killed once all six pods went through the webhook (pods created while it is down would go to the
    # default scheduler, as on EKS) but before all are placed.
    wait_for(lambda: len([p for p in kube.pods("restart") if p["spec"]["schedulerName"] == "fargate-scheduler"]) == 6,
             30)
    bound_before = sum(1 for p in kube.pods("restart") if p["spec"].get("nodeName"))
    os.kill(emulator["pid"], signal.SIGKILL)
    assert "emulator" in wait_for(lambda: env.dead_components(), 10)
    env.restart("emulator")
    wait_for(lambda: Path(emulator["log"]).read_text().count("READY") >= 2, 30)

    last_seen: dict[str, Any] = {}

    def settled() -> Any:
        pods = kube.pods("restart")
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        fargate = kube.fargate_nodes()
        if len(running) == 6 and len(fargate) == 6:
            return pods, fargate
        last_seen.update(running=len(running), nodes=sorted(n["metadata"]["name"] for n in fargate),
                         pods={p["metadata"]["name"]: (p["status"].get("phase"), p["spec"].get("nodeName"))
                               for p in pods})
        return None

    try:
        pods, nodes = wait_for(settled, 60)
    except AssertionError:
        log = Path(emulator["log"]).read_text()[-4000:]
        raise AssertionError(f"did not settle: {last_seen}\nemulator log:\n{log}") from None
    assert bound_before < 6, "the emulation was killed after the rollout, not during it"
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(n["metadata"]["name"] for n in nodes)
    for pod in pods:
        scheduled = [e for e in kube.events("restart", uid=pod["metadata"]["uid"]) if e["reason"] == "Scheduled"]
        assert len(scheduled) == 1, (pod["metadata"]["name"], [e["message"] for e in scheduled])
