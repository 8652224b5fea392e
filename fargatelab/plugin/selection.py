"""Picking labs: ``--lab N`` (a lab's number or a word of its name, repeatable) and ``--list-labs``.

Both work on the collected tests' ``lab`` markers, so they know every lab module without a list of their
own. ``--list-labs`` says what the chosen backend can run from the capabilities it declares
(:mod:`fargatelab.backends.capabilities`): no backend is opened and no test runs.

With pytest-xdist the controller collects nothing; each worker selects the same way, and one that finds
no lab for a ``--lab`` hands the usage error back through its ``workeroutput``, which the controller shows once.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable

import pytest

from ..backends.capabilities import declared
from .run import is_worker

__all__ = ["LabEntry", "catalog", "lab_name", "lab_number", "matches", "no_match_message", "runnable"]

_NO_MATCH_KEY = "fargatelab_lab_no_match"
_NO_MATCH = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fargate-labs", "EKS-on-Fargate workshop labs")
    group.addoption("--lab", action="append", default=[], metavar="N|WORD",
                    help="run only this lab: its number (--lab 4) or a word of its name (--lab netshoot); "
                         "repeatable; the others are deselected")
    group.addoption("--list-labs", action="store_true",
                    help="list the labs (number, name, document, steps, what the backend can run) and exit")


# --- the labs of a collection -----------------------------------------------------------------------

_NUMBERED = re.compile(r"^Lab (\d+)\s*(?:—|-|:)?\s*(.*)$")


def lab_number(title: str) -> int | None:
    """``Lab 4 — netshoot probes`` -> 4; a lab without a number (extras, limits) -> None.

    >>> lab_number("Lab 4 — netshoot probes"), lab_number("Documented extras — CoreDNS on Fargate")
    (4, None)
    """
    m = _NUMBERED.match(title)
    return int(m.group(1)) if m else None


def lab_name(title: str) -> str:
    """The name without its number: ``Lab 4 — netshoot probes`` -> ``netshoot probes``."""
    m = _NUMBERED.match(title)
    return m.group(2) if m else title


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def matches(title: str, wanted: str) -> bool:
    """Whether ``--lab wanted`` picks the lab titled ``title``: its number, or every word given in its name.

    >>> matches("Lab 4 — netshoot probes", "4"), matches("Lab 4 — netshoot probes", "NetShoot")
    (True, True)
    >>> matches("Lab 2 — the 2048 game behind an ALB Ingress", "2048")
    True
    >>> matches("Lab 5 — the root-shell pod is rejected", "root-shell"), matches("Lab 1 — Fargate profile", "1 ")
    (True, True)
    >>> matches("Documented extras — CoreDNS on Fargate", "coredns"), matches("Lab 14 — x", "1")
    (True, False)
    """
    wanted = wanted.strip()
    if wanted.isdigit() and lab_number(title) == int(wanted):
        return True
    asked = _words(wanted)
    return bool(asked) and asked <= _words(lab_name(title))


@dataclass
class LabEntry:
    """One lab module's tests, as collected (after ``-k``/``-m``)."""

    title: str
    document: str
    module: str
    items: list[Any] = field(default_factory=list)

    @property
    def number(self) -> int | None:
        return lab_number(self.title)


def _lab_mark(item: Any) -> tuple[str, str] | None:
    mark = item.get_closest_marker("lab")
    if mark is None or len(mark.args) < 2:
        return None
    return str(mark.args[0]), str(mark.args[1])


def catalog(items: Iterable[Any]) -> list[LabEntry]:
    """The labs of ``items``: numbered labs in their order, then the others in collection order."""
    entries: dict[tuple[str, str], LabEntry] = {}
    for item in items:
        mark = _lab_mark(item)
        if mark is None:
            continue
        module = item.nodeid.split("::")[0]
        entries.setdefault((module, mark[0]), LabEntry(mark[0], mark[1], module)).items.append(item)
    listed = list(entries.values())
    return sorted(listed, key=lambda e: (0, e.number, 0) if e.number is not None else (1, 0, listed.index(e)))


def runnable(item: Any, capabilities: frozenset[str], mode: str) -> str | None:
    """None when the backend can run the step, else why not (``replay only``, ``needs pod-network``)."""
    if mode == "check" and item.get_closest_marker("replay_only") is not None:
        return "replay only"
    for mark in item.iter_markers("needs"):
        if mark.args and mark.args[0] not in capabilities:
            return f"needs {mark.args[0]}"
    return None


def no_match_message(unmatched: list[str], labs: list[LabEntry]) -> str:
    """The usage error of ``--lab`` values that pick nothing, listing what there is."""
    listing = "\n".join(f"  {e.number if e.number is not None else '-':>2}  {lab_name(e.title)}" for e in labs)
    values = ", ".join(f"--lab {value}" for value in unmatched)
    return (f"{values} matches no lab: give a lab's number or a word of its name; the labs:\n"
            + (listing or "  (none collected)"))


# --- hooks -----------------------------------------------------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.list_labs and not is_worker(config):
        # Listing opens no backend and runs nothing: one process is enough, and no worker starts.
        config.option.dist = "no"
        config.option.tx = []
        config.option.numprocesses = 0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted: list[str] = config.option.lab
    if not wanted:
        return
    labs = catalog(items)
    unmatched = [value for value in wanted if not any(matches(e.title, value) for e in labs)]
    if unmatched:
        message = no_match_message(unmatched, labs)
        if not is_worker(config):
            raise pytest.UsageError(message)
        config.workeroutput[_NO_MATCH_KEY] = message  # type: ignore[attr-defined]
    chosen = {id(i) for e in labs if not unmatched and any(matches(e.title, v) for v in wanted) for i in e.items}
    deselected = [item for item in items if id(item) not in chosen]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if id(item) in chosen]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    message = (getattr(node, "workeroutput", None) or {}).get(_NO_MATCH_KEY)
    if message:
        found = node.config.stash.setdefault(_NO_MATCH, [])
        if message not in found:
            found.append(message)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    for message in session.config.stash.get(_NO_MATCH, []):
        print(f"ERROR: {message}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    config = session.config
    if not config.option.list_labs:
        return None
    tr = config.pluginmanager.get_plugin("terminalreporter")
    write = tr.write_line if tr is not None else print
    for line in list_labs_lines(catalog(session.items), config.option.backend, config.option.mode,
                                getattr(config.option, "data_plane", "kwok")):
        write(line)
    return True


def list_labs_lines(labs: list[LabEntry], backend: str, mode: str, data_plane: str = "kwok") -> list[str]:
    """The ``--list-labs`` table: what each lab is, and how many of its steps ``backend`` runs in ``mode``."""
    if backend == "local" and data_plane == "auto":
        from ..local.microvm_host import choose_data_plane

        data_plane = choose_data_plane(data_plane, lambda _line: None)
    capabilities = declared(backend, mode, data_plane)
    rows = [("LAB", "NAME", "DOCUMENT", "STEPS", f"RUNS ON {backend} ({mode})")]
    for e in labs:
        why = [runnable(item, capabilities, mode) for item in e.items]
        blocked: dict[str, int] = {}
        for reason in why:
            if reason is not None:
                blocked[reason] = blocked.get(reason, 0) + 1
        runs = "all" if not blocked else f"{len(why) - sum(blocked.values())} (" + ", ".join(
            f"{n} {reason if n == 1 else reason.replace('needs ', 'need ', 1)}" for reason, n in blocked.items()) + ")"
        number = str(e.number) if e.number is not None else "-"
        rows.append((number, lab_name(e.title), e.document, str(len(e.items)), runs))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}  {r[4]}"
             for r in rows]
    if not labs:
        lines.append("(no lab collected: pass the labs' directory, e.g. `pytest labs --list-labs`)")
    return lines
