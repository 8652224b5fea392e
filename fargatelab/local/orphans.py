"""What runs killed with -9 left on this host, found without knowing their run ids, and removed.

A run is an orphan when nothing of it is alive: no process carries its run id and no one holds its
environment's start lock. What it may have left: its environment's state directory, the VPC's and
microVMs' network namespaces (with the host's uplink, route and link-local address), cgroups, mounts
and the short links under ``/run/fargate-labs``. A run that is alive is never touched.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

from . import process
from .microvm_host import CGROUP_ROOT, SHORT_ROOT, remove_run_data_plane
from .vpc_network import NETNS_PREFIX, namespaces

__all__ = ["LeftoverSource", "Orphan", "find_orphans", "remove_orphans", "start_lock_held"]

#: a microVM's namespace ends in its ENI address, dashed; the VPC's router's in ``-vpc``
_NETNS_TAIL = re.compile(r"-(vpc|\d+-\d+-\d+-\d+)$")
#: a state directory (or, without one, a run's oldest trace) this fresh may belong to an environment whose
#: first process is starting
_STARTING_S = 15.0
#: where `ip netns` keeps its namespaces (their mtime is when they were made)
_NETNS_DIR = Path("/run/netns")


@dataclass
class Orphan:
    run_id: str
    #: the environment's state directory, when one with this run id is left
    state_dir: Path | None = None
    remains: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"run {self.run_id}: " + ", ".join(self.remains)


class LeftoverSource(Protocol):
    """Something else on the host that a run makes under its run id (another backend's containers, say)."""

    def traces(self) -> dict[str, tuple[list[str], float]]:
        """Run id → what of it there is, and when the oldest of it was made (epoch seconds)."""
        ...

    def remove(self, run_id: str) -> None:
        """Remove what of ``run_id`` there is; nothing when there is none."""
        ...


def _host_traces(sources: Iterable[LeftoverSource] = ()) -> dict[str, tuple[list[str], float]]:
    """Run id → what of it is on the host, from the names the data plane gives what it makes, and when the
    oldest of it was made (epoch seconds)."""
    found: dict[str, tuple[list[str], float]] = {}

    def add(run_id: str, what: str, made: Path) -> None:
        remains, oldest = found.get(run_id, ([], time.time()))
        try:
            oldest = min(oldest, made.lstat().st_mtime)
        except OSError:
            pass
        found[run_id] = ([*remains, what], oldest)

    for name in namespaces():
        tail = _NETNS_TAIL.search(name)
        if name.startswith(NETNS_PREFIX) and tail:
            add(name[len(NETNS_PREFIX):tail.start()], f"network namespace {name}", _NETNS_DIR / name)
    if CGROUP_ROOT.is_dir():
        for path in sorted(CGROUP_ROOT.glob("*/fargate-labs/*")):
            if path.is_dir() and not path.parent.parent.is_symlink():
                add(path.name, f"cgroup {path}", path)
    if SHORT_ROOT.is_dir():
        for path in sorted(SHORT_ROOT.iterdir()):
            add(path.name, f"directory {path}", path)
    for source in sources:
        for run_id, (remains, made) in source.traces().items():
            before, oldest = found.get(run_id, ([], made))
            found[run_id] = ([*before, *remains], min(oldest, made))
    return found


def _state_dirs(root: Path) -> dict[str, tuple[Path, bool]]:
    """Run id → state directory of each environment under ``root``, and whether it finished starting."""
    dirs = {}
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            state = json.loads((entry / "state.json").read_text())
            run_id, ready = state.get("run_id", ""), bool(state.get("ready"))
        except (OSError, ValueError, AttributeError):
            continue
        if run_id:
            dirs[run_id] = (entry, ready)
    return dirs


def _starting(state_dir: Path, ready: bool) -> bool:
    """True while someone holds the environment's start lock, or its start began a moment ago."""
    try:
        if not ready and time.time() - (state_dir / "state.json").stat().st_mtime < _STARTING_S:
            return True
    except OSError:
        return False
    return start_lock_held(state_dir.parent, state_dir.name)


def start_lock_held(root: Path, name: str) -> bool:
    """True while someone holds the start lock of environment ``name`` under ``root`` (it is being made:
    what it has made so far is not an orphan's)."""
    try:
        with open(root / f".{name}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    except OSError:
        return False
    return False


def find_orphans(root: Path, sources: Iterable[LeftoverSource] = ()) -> list[Orphan]:
    """Every run on this host that left something and has nothing alive (environments' states under ``root``;
    ``sources``: what else runs make)."""
    states = _state_dirs(root)
    traces = _host_traces(sources)
    orphans = []
    for run_id in sorted(set(states) | set(traces)):
        if process.tagged_pids(run_id):
            continue
        state_dir, ready = states.get(run_id, (None, False))
        if state_dir is not None and _starting(state_dir, ready):
            continue
        made, oldest = traces.get(run_id, ([], 0.0))
        if state_dir is None and time.time() - oldest < _STARTING_S:
            # An environment makes its VPC's namespace just before its first process (the API server binds to
            # the namespace's address), and its state may be under another state root: not yet an orphan.
            continue
        remains = ([f"state directory {state_dir}"] if state_dir else []) + made
        orphans.append(Orphan(run_id, state_dir, remains))
    return orphans


def stale_leftovers(root: Path) -> list[Path]:
    """Start locks and directories under ``root`` of environments that have no state, that no one holds and
    that were last touched before an environment's start: what a run's end or a start that failed early
    left (a lock file outlives its environment, since another process may be waiting on it)."""
    stale = []
    now = time.time()
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        name = entry.name[1:-5] if entry.name.startswith(".") and entry.name.endswith(".lock") else entry.name
        if entry.name.startswith(".") and not entry.name.endswith(".lock"):
            continue
        if (root / name / "state.json").exists() or now - entry.stat().st_mtime < _STARTING_S:
            continue
        if entry.is_dir() and (root / f".{name}.lock").exists():
            continue  # removed with its lock, below, once no one holds that
        with open(root / f".{name}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            stale.append(entry)
            if entry.is_file() and (root / name).is_dir():
                stale.append(root / name)
            elif entry.is_dir():
                stale.append(root / f".{name}.lock")
    return stale


def remove_orphans(root: Path, clear_state: Callable[[str], None], progress: Callable[[str], None],
                   sources: Iterable[LeftoverSource] = ()) -> list[Orphan]:
    """Remove every orphan (see :func:`find_orphans`), one line each; returns them. ``clear_state`` takes an
    environment (by name) whose state was left down the way it would be after any crash; each of
    ``sources`` removes what it found of the run. Stale start locks and state-less directories go too
    (:func:`stale_leftovers`), without a line each."""
    sources = list(sources)
    for path in stale_leftovers(root):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    orphans = find_orphans(root, sources)
    for orphan in orphans:
        for source in sources:  # first: an environment's state names where its cluster's files are mounted from
            source.remove(orphan.run_id)
        if orphan.state_dir is not None:
            clear_state(orphan.state_dir.name)
        else:
            remove_run_data_plane(orphan.run_id, _short_link_target(orphan.run_id))
        progress(f"removed what killed run {orphan.run_id} left: " + ", ".join(orphan.remains))
    return orphans


def _short_link_target(run_id: str) -> Path:
    """The state directory the run's short links point into (its mounts are under it), else a path that
    holds nothing."""
    for link in sorted((SHORT_ROOT / run_id).glob("*")) if (SHORT_ROOT / run_id).is_dir() else []:
        if link.is_symlink():
            target = Path(link.readlink())
            if "microvms" in target.parts:
                return Path(*target.parts[:target.parts.index("microvms")])
    return SHORT_ROOT / run_id / "none"
