"""The emulation rebuilds its view from the API after a crash and never binds a pod twice."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

import pytest

from fargatelab.scenario import conditions as cond
from fargatelab.scenario import wait
from fargatelab.local.environment import LocalEnvironment
from fargatelab.scenario.kube import Kube

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(local_environment: Callable[..., LocalEnvironment]) -> LocalEnvironment:
    return local_environment("restart", timing_scale=4)  # placement takes 2 s


def test_restart_mid_rollout_binds_each_pod_once(env: LocalEnvironment,
                                                 aws: Callable[[str], Any], pod_execution_role: str) -> None:
    h = env.handle()
    eks = aws("eks")
    eks.create_fargate_profile(clusterName=h.cluster_name, fargateProfileName="restart",
                               podExecutionRoleArn=pod_execution_role, selectors=[{"namespace": "restart"}])
    wait.for_(cond.ProfileStatus(eks, h.cluster_name, "restart", "ACTIVE"), 60, 0.3)
    kube = Kube(h.kubeconfig)
    kube.kubectl("create", "namespace", "restart")
    kube.kubectl("-n", "restart", "create", "deployment", "web", "--image=nginx", "--replicas=6")

    emulator = next(c for c in env.state()["components"] if c["name"] == "emulator")  # type: ignore[index]
    # Killed once all six pods went through the webhook (pods created while it is down would go to the
    # default scheduler, as on EKS) but before all are placed.
    wait.until(lambda: len([p for p in kube.pods("restart") if p["spec"]["schedulerName"] == "fargate-scheduler"]) == 6,
               30, "all six pods admitted by the webhook", 0.3)
    bound_before = sum(1 for p in kube.pods("restart") if p["spec"].get("nodeName"))
    os.kill(emulator["pid"], signal.SIGKILL)
    assert "emulator" in wait.until(lambda: env.dead_components(), 10, "the emulator's death noticed", 0.3)
    env.restart("emulator")
    wait.until(lambda: Path(emulator["log"]).read_text().count("READY") >= 2, 30, "the emulator ready again", 0.3)

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
        pods, nodes = wait.until(settled, 60, "six pods Running on six Fargate nodes", 0.3)
    except AssertionError:
        log = Path(emulator["log"]).read_text()[-4000:]
        raise AssertionError(f"did not settle: {last_seen}\nemulator log:\n{log}") from None
    assert bound_before < 6, "the emulation was killed after the rollout, not during it"
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(n["metadata"]["name"] for n in nodes)
    for pod in pods:
        scheduled = [e for e in kube.events("restart", uid=pod["metadata"]["uid"]) if e["reason"] == "Scheduled"]
        assert len(scheduled) == 1, (pod["metadata"]["name"], [e["message"] for e in scheduled])
