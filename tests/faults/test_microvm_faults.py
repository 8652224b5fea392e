"""Faults in the microVM data plane: a microVM's kubelet killed mid-lab fails the step naming it; Ctrl-C while
the run's pods roll out, and kill -9 of the harness followed by `fargate-lab cleanup`, leave no process,
network namespace, cgroup or mount behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

import injector as faults
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.local.vpc_network import namespaces_of_run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="microVMs need root (network namespaces, cgroups): run as root"),
]


@pytest.fixture
def microvms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalEnvironment]:
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path))
    env = LocalEnvironment("microvm-faults")
    env.up(EnvironmentConfig(name="microvm-faults", data_plane="microvm"), progress=lambda _: None)
    try:
        yield env
    finally:
        env.down(quiet=True)


def test_a_kubelet_killed_mid_lab_fails_the_step_naming_it(microvms: LocalEnvironment) -> None:
    # netshoot and sample-app must all run before any step: a pod whose kubelet died never does.
    outcome = faults.kill_component_run("test_netshoot.py", f"kubelet{os.getpid() % 1000}", microvms.name,
                                        "kubelet-")
    assert "ended before the fault" not in outcome.notes, "no pod of the run got a microVM: nothing was tested"
    assert outcome.ended and outcome.notes == [], outcome.notes
    assert outcome.time_to_end < 60, f"{outcome.time_to_end:.0f}s to notice a dead kubelet"
    dead = [row["name"] for row in microvms.status() if row["state"] == "DEAD"]
    assert dead and dead[0] == outcome.fault.removesuffix(" killed"), dead


def test_ctrl_c_mid_rollout_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path))
    run_id = f"rollout{os.getpid() % 1000}"
    # The VPC's router and CoreDNS's two microVMs, then at least one of the lab's own pods.
    outcome = faults.interrupt_when("test_scaling.py", run_id, lambda: len(namespaces_of_run(run_id)) >= 4,
                                    "--data-plane", "microvm")
    assert "ended before the fault" not in outcome.notes, "the run ended before its pods had microVMs"
    assert outcome.ended, "the interrupted run did not stop"
    assert outcome.leaked == [], outcome.leaked
    assert faults.data_plane_leaks(run_id) == []


def test_kill_9_of_a_run_with_microvms_then_cleanup_leaves_nothing(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness killed with -9 while its pods run in microVMs: `fargate-lab cleanup --run-id` finds and
    removes every process, network namespace, cgroup, mount and short link the run left."""
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path))
    run_id = f"kill9vm{os.getpid() % 1000}"
    outcome = faults.kill_run("test_netshoot.py", run_id, 12.0, "--data-plane", "microvm")
    assert "killed before its environment existed" not in outcome.notes, "the kill came too early to test cleanup"
    assert not [n for n in outcome.notes if n.startswith("cleanup exited")], outcome.notes
    assert outcome.leaked == [], outcome.leaked
    assert faults.data_plane_leaks(run_id) == []
