"""Ctrl-C and kill -9 of a lab run leave nothing behind; a dead component ends a run promptly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

import injector as faults
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment

pytestmark = pytest.mark.integration


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalEnvironment]:
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path))
    env = LocalEnvironment("interrupts")
    env.up(EnvironmentConfig(name="interrupts"), progress=lambda _: None)
    try:
        yield env
    finally:
        env.down(quiet=True)


@pytest.mark.parametrize("after", [2.0, 4.0, 6.0], ids=["in setup", "in the step", "in cleanup"])
def test_ctrl_c_leaves_nothing_and_the_report_says_so(shared: LocalEnvironment, after: float) -> None:
    run_id = f"ctrlc{int(after)}{os.getpid() % 1000}"
    outcome = faults.interrupt_run("test_fargate_profile.py", run_id, shared.name, after)
    assert "ended before the fault" not in outcome.notes, "the run finished before its Ctrl-C: nothing was tested"
    assert outcome.ended, "the interrupted run did not stop"
    assert outcome.leaked == [], outcome.leaked
    assert "report does not say the run was interrupted" not in outcome.notes, outcome.notes


def test_kill_9_then_cleanup_removes_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path))
    outcome = faults.kill_run("test_root_shell.py", f"kill9{os.getpid() % 1000}", after=15.0)
    assert "killed before its environment existed" not in outcome.notes, "the kill came too early to test cleanup"
    assert outcome.leaked == [], outcome.leaked
    assert not [n for n in outcome.notes if n.startswith("cleanup exited")], outcome.notes


def test_kwok_killed_mid_rollout_ends_the_run_promptly(shared: LocalEnvironment) -> None:
    outcome = faults.kill_component_run("test_scaling.py", f"dead{os.getpid() % 1000}", shared.name, "kwok", 8.0)
    assert outcome.ended
    assert outcome.notes == [], outcome.notes
    assert outcome.time_to_end < 60, f"{outcome.time_to_end:.0f}s to notice a dead kwok"
