"""Runs killed with -9 are found by what they left and only when nothing of them is alive."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from fargatelab.local import orphans

OLD = time.time() - 3600


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state root, cgroup hierarchies and short links in ``tmp_path``; no process alive but those named."""
    for sub in ("state", "cgroup/memory", "cgroup/cpu", "short"):
        (tmp_path / sub).mkdir(parents=True)
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path / "state"))
    monkeypatch.setattr(orphans, "CGROUP_ROOT", tmp_path / "cgroup")
    monkeypatch.setattr(orphans, "SHORT_ROOT", tmp_path / "short")
    netns = ["fargate-labs-dead0001-vpc", "fargate-labs-dead0001-10-11-89-156", "fargate-labs-kill9-vm-10-11-1-5",
             "fargate-labs-live0001-vpc", "cni-1234", "fargate-labs-notours"]
    monkeypatch.setattr(orphans, "namespaces", lambda: netns)
    monkeypatch.setattr(orphans, "_NETNS_DIR", tmp_path / "netns")
    (tmp_path / "netns").mkdir()
    for name in netns:  # made an hour ago
        (tmp_path / "netns" / name).touch()
        os.utime(tmp_path / "netns" / name, (OLD, OLD))
    monkeypatch.setattr(orphans.process, "tagged_pids", lambda run_id: [4242] if run_id.startswith("live") else [])
    return tmp_path


def _state(host: Path, name: str, run_id: str, mtime: float = OLD, ready: bool = False) -> Path:
    d = host / "state" / name
    d.mkdir()
    (d / "state.json").write_text(json.dumps({"run_id": run_id, "components": [], "ready": ready}))
    os.utime(d / "state.json", (mtime, mtime))
    return d


def test_dead_runs_are_found_by_what_they_left(host: Path) -> None:
    (host / "cgroup/memory/fargate-labs/dead0001").mkdir(parents=True)
    (host / "short/dead0001").mkdir()
    state = _state(host, "default", "dead0001")
    found = {o.run_id: o for o in orphans.find_orphans(host / "state")}
    assert sorted(found) == ["dead0001", "kill9-vm"]
    assert found["dead0001"].state_dir == state
    assert found["dead0001"].remains == [
        f"state directory {state}", "network namespace fargate-labs-dead0001-vpc",
        "network namespace fargate-labs-dead0001-10-11-89-156",
        f"cgroup {host}/cgroup/memory/fargate-labs/dead0001", f"directory {host}/short/dead0001"]
    # A run id with a dash is read whole from its microVM's namespace.
    assert found["kill9-vm"].remains == ["network namespace fargate-labs-kill9-vm-10-11-1-5"]


def test_a_run_just_made_without_a_state_here_is_left_alone(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment makes its VPC's namespace a moment before its first process, maybe under another state
    root: its traces are not an orphan's until they are older than that moment."""
    now = time.time()
    os.utime(host / "netns" / "fargate-labs-kill9-vm-10-11-1-5", (now, now))
    assert "kill9-vm" not in {o.run_id for o in orphans.find_orphans(host / "state")}


def test_a_run_with_a_live_process_is_never_an_orphan(host: Path) -> None:
    _state(host, "shared", "live0001")
    assert "live0001" not in {o.run_id for o in orphans.find_orphans(host / "state")}


def test_an_environment_being_started_is_left_alone(host: Path) -> None:
    _state(host, "fresh", "ab000001", mtime=time.time())
    _state(host, "ready", "ab000003", mtime=time.time(), ready=True)  # up, and dead since
    locked = _state(host, "locked", "ab000002")
    with open(locked.parent / ".locked.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = {o.run_id for o in orphans.find_orphans(host / "state")}
    assert not {"ab000001", "ab000002"} & found
    assert "ab000003" in found
    assert "ab000002" in {o.run_id for o in orphans.find_orphans(host / "state")}  # once the lock is let go


def test_removal_takes_each_down_its_own_way(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _state(host, "default", "dead0001")
    microvm = host / "state" / "gone" / "microvms" / "10-11-1-5"
    microvm.mkdir(parents=True)
    (host / "short/kill9-vm").mkdir()
    (host / "short/kill9-vm/10-11-1-5").symlink_to(microvm)
    cleared, removed, said = [], [], []
    monkeypatch.setattr(orphans, "remove_run_data_plane", lambda run_id, state_dir: removed.append((run_id, state_dir)))
    orphans.remove_orphans(host / "state", cleared.append, said.append)
    assert cleared == ["default"]
    # Its mounts are under the state directory its short links point into.
    assert removed == [("kill9-vm", host / "state" / "gone")]
    assert [line.split(" left: ")[0] for line in said] == ["removed what killed run dead0001",
                                                          "removed what killed run kill9-vm"]


class Containers:
    """Another backend's leftovers (a kind cluster's node containers), as the orphan search sees them."""

    def __init__(self, found: dict[str, tuple[list[str], float]]) -> None:
        self.found, self.removed = found, []  # type: ignore[var-annotated]

    def traces(self) -> dict[str, tuple[list[str], float]]:
        return self.found

    def remove(self, run_id: str) -> None:
        self.removed.append(run_id)


def test_a_sources_leftovers_go_with_their_run_once_nothing_of_it_is_alive(host: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    kind = Containers({"dead0002": (["kind node container fargate-labs-dead0002-worker"], OLD),
                       "live0001": (["kind node container fargate-labs-live0001-worker"], OLD),
                       "new00001": (["kind node container fargate-labs-new00001-worker"], time.time())})
    found = {o.run_id: o for o in orphans.find_orphans(host / "state", [kind])}
    assert found["dead0002"].remains == ["kind node container fargate-labs-dead0002-worker"]
    assert "live0001" not in found and "new00001" not in found  # alive, or made a moment ago
    monkeypatch.setattr(orphans, "remove_run_data_plane", lambda run_id, state_dir: None)
    orphans.remove_orphans(host / "state", lambda _: None, lambda _: None, [kind])
    assert "dead0002" in kind.removed and "live0001" not in kind.removed and "new00001" not in kind.removed


def test_a_kind_cluster_being_made_is_no_orphan(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fargatelab.kind import leftovers

    listing = ("/fargate-labs-mk000001-worker fargate-labs-mk000001 2026-01-01T00:00:00Z\n"
               "/fargate-labs-gone0001-worker fargate-labs-gone0001 2026-01-01T00:00:00Z\n")
    answers = {"ps": "c1 c2\n", "inspect": listing}
    monkeypatch.setattr(leftovers.KindNodes, "_docker", lambda self, *args: subprocess.CompletedProcess(
        args, 0, answers[args[0]], ""))
    with open(host / "state" / ".kind-mk000001.lock", "a") as lock:  # its run's start, under way
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert set(leftovers.KindNodes().traces()) == {"gone0001"}
    assert set(leftovers.KindNodes().traces()) == {"gone0001", "mk000001"}
