"""Which of an environment's processes count as dead: a microVM stopped on purpose is not a death."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fargatelab.local import process, startup
from fargatelab.local.microvm import COMPONENTS_FILE


def _environment(tmp_path: Path, pids: dict[str, int]) -> tuple[dict, Path]:
    vm = tmp_path / "microvms" / "10-11-94-248"
    vm.mkdir(parents=True)
    listing = vm / COMPONENTS_FILE
    listing.write_text(json.dumps([{"name": f"{n}-10-11-94-248", "pid": p} for n, p in pids.items()]))
    return {"run_id": "r1", "components": [], "microvms_dir": str(tmp_path / "microvms")}, listing


def test_a_process_of_a_running_microvm_that_died_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, _ = _environment(tmp_path, {"mounts": 101, "kubelet": 102})
    monkeypatch.setattr(process, "alive", lambda pid, run_id=None: pid != 101)
    assert startup.dead_components(state) == ["mounts-10-11-94-248"]


def test_a_microvm_stopped_between_the_listing_and_the_look_is_no_death(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, listing = _environment(tmp_path, {"mounts": 101, "kubelet": 102})

    def stopped_meanwhile(pid: int, run_id: str | None = None) -> bool:
        # The controller stops the microVM as the look runs: listing first, then its processes.
        listing.unlink(missing_ok=True)
        return False

    monkeypatch.setattr(process, "alive", stopped_meanwhile)
    assert startup.dead_components(state) == []


def test_the_old_processes_of_a_microvm_made_anew_at_its_address_are_no_death(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, listing = _environment(tmp_path, {"kubelet": 102})

    def replaced_meanwhile(pid: int, run_id: str | None = None) -> bool:
        listing.write_text(json.dumps([{"name": "kubelet-10-11-94-248", "pid": 202}]))
        return pid == 202

    monkeypatch.setattr(process, "alive", replaced_meanwhile)
    assert startup.dead_components(state) == []


def test_microvms_left_out_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, _ = _environment(tmp_path, {"kubelet": 102})
    state["components"] = [{"name": "moto", "pid": 7}]
    monkeypatch.setattr(process, "alive", lambda pid, run_id=None: False)
    assert startup.dead_components(state, microvms=False) == ["moto"]
    assert startup.dead_components(state) == ["moto", "kubelet-10-11-94-248"]


def test_a_process_caught_in_the_middle_of_execve_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a process execs (nsenter starting a kubelet), its environment reads as empty for a moment: taken
    for a pid reused by someone else, that was once recorded as a kubelet's death mid-run."""
    import os

    reads = iter([b"", b"", f"PATH=/bin\0{process.RUN_ID_VARIABLE}=r1\0".encode()])
    monkeypatch.setattr(process, "_environ", lambda pid: next(reads))
    assert process.alive(os.getpid(), "r1")


def test_a_pid_whose_environment_stays_empty_is_not_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setattr(process, "_environ", lambda pid: b"")
    assert not process.alive(os.getpid(), "r1")
    assert not process.alive(2**22 + 1, "r1")  # no such process
