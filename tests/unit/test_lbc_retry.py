"""The load balancer controller passes only when something changed, except after a failure: then it tries
again at once, as the real controller requeues a failed reconcile."""

from __future__ import annotations

from typing import Any

import pytest

from fargatelab.emulator import lbc


@pytest.fixture
def controller(monkeypatch: pytest.MonkeyPatch) -> lbc.LoadBalancerController:
    monkeypatch.setattr(lbc, "emit_event", lambda *args: None)
    c = object.__new__(lbc.LoadBalancerController)
    c._reported, c._retry = {}, False
    return c


INGRESS: dict[str, Any] = {"metadata": {"uid": "u1", "name": "ingress-2048", "namespace": "game"}}


def test_a_warning_asks_for_another_pass_and_a_success_does_not(controller: lbc.LoadBalancerController) -> None:
    controller._report(INGRESS, "Normal", "SuccessfullyReconciled", "Successfully reconciled", "ingress")
    assert not controller._retry
    controller._report(INGRESS, "Warning", "FailedDeployModel", "Failed deploy model due to x", "ingress")
    assert controller._retry
    controller._retry = False
    # Reported once, but still failing: the next pass comes as soon, though no second event is recorded.
    controller._report(INGRESS, "Warning", "FailedDeployModel", "Failed deploy model due to x", "ingress")
    assert controller._retry


def test_a_cleanup_still_under_way_asks_for_another_pass(controller: lbc.LoadBalancerController,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    class Deployer:
        def delete(self, stack: str, inventory: Any) -> bool:
            return False  # the load balancer is not gone yet

    controller.deployer = Deployer()  # type: ignore[assignment]
    controller.c = None  # type: ignore[assignment]
    monkeypatch.setattr(lbc, "delete_tgbs", lambda *args: None)
    controller._cleanup(INGRESS, None)  # type: ignore[arg-type]
    assert controller._retry
