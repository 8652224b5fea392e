"""An ENI address whose Fargate node went is held before the fargate-scheduler gives it out again."""

from __future__ import annotations

import pytest

from fargatelab.emulator import scheduler
from fargatelab.emulator.scheduler import FargateScheduler


def test_a_released_address_is_held_then_free_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(scheduler.time, "monotonic", lambda: clock[0])
    s = object.__new__(FargateScheduler)
    s._last_taken = {}
    assert s._recently_released({"10.11.104.117", "10.11.64.5"}) == set()
    clock[0] += 5  # the pod on .117 was deleted, and its node with it
    assert s._recently_released({"10.11.64.5"}) == {"10.11.104.117"}
    clock[0] += scheduler.RELEASE_HOLD
    assert s._recently_released({"10.11.64.5"}) == set()


def test_an_address_taken_again_is_simply_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(scheduler.time, "monotonic", lambda: clock[0])
    s = object.__new__(FargateScheduler)
    s._last_taken = {}
    s._recently_released({"10.11.80.7"})
    clock[0] += 1
    assert s._recently_released({"10.11.80.7"}) == set()
