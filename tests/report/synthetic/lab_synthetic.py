"""A synthetic lab for the report tests (copied as test_synthetic_lab.py): no cluster needed."""

from __future__ import annotations

import os
import time

import pytest

from fargatelab.scenario import wait
from fargatelab.scenario.failures import KubectlFailed, Missing
from fargatelab.scenario.lab import Lab, expect

pytestmark = [pytest.mark.lab("Lab 9 — synthetic scaling", "000")]


def test_apply(lab: Lab) -> None:
    """The manifest applies."""
    lab.step("kubectl apply -f fargate_2048_full.yaml")


@pytest.mark.parametrize("replicas", [3], ids=["5->3"])
def test_scale(lab: Lab, replicas: int) -> None:
    """Scaling the Deployment changes the number of Fargate nodes."""
    lab.step("kubectl -n fargate-game-2048 deployment fargate-game-2048 --replicas=3",
             "kubectl -n fargate-game-2048 scale deployment deployment-2048 --replicas=3")
    lab.defect("000-1: the documented scale command has no verb and names the namespace as the Deployment")
    expect("Fargate nodes after scaling", 5, replicas)


def test_netshoot_present(lab: Lab) -> None:
    """Check mode: the netshoot Deployment exists."""
    raise Missing("Deployment study-aews/netshoot", "kubectl apply -f netshoot.yaml")


def test_kubectl_breaks(lab: Lab) -> None:
    """kubectl itself fails: an error of the harness, not a documented fact."""
    lab.step("kubectl -n fargate-game-2048 get pods")
    raise KubectlFailed("kubectl -n fargate-game-2048 get pods", 1,
                        "The connection to the server 127.0.0.1:6443 was refused\n")


def test_unreachable(lab: Lab, broken_cluster: None) -> None:
    """Its cluster fixture fails: an error in setup."""


def test_bare_assert(lab: Lab) -> None:
    """A bare assert: its message is the fact."""
    pods = ["deployment-2048-7d9c-x"]
    assert len(pods) == 2, "two pods of deployment-2048\nsecond line"


@pytest.mark.skip(reason="check mode never changes the cluster; this step only exists in replay mode")
def test_replay_only(lab: Lab) -> None:
    pass


def test_slow_wait(lab: Lab) -> None:
    """A wait that takes SYNTHETIC_WAIT seconds (0: no wait)."""
    seconds = float(os.environ.get("SYNTHETIC_WAIT", "0"))
    if not seconds:
        return
    until = time.monotonic() + seconds
    lab.wait(wait.condition("pod fargate-game-2048/slow Running",
                            lambda: (time.monotonic() >= until, "Running" if time.monotonic() >= until else "Pending")),
             timeout=seconds + 30, interval=0.2)


def test_sleep(lab: Lab) -> None:
    """Sleeps SYNTHETIC_SLEEP seconds (for interrupting a run); creates SYNTHETIC_STARTED first."""
    if os.environ.get("SYNTHETIC_STARTED"):
        open(os.environ["SYNTHETIC_STARTED"], "w").close()
    time.sleep(float(os.environ.get("SYNTHETIC_SLEEP", "0")))


def test_after_sleep(lab: Lab) -> None:
    """Runs after test_sleep (not run when the run is interrupted during it)."""
    lab.step("kubectl get nodes")
