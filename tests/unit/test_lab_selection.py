"""``--lab`` picks labs by number or by a word of their name; ``--list-labs`` lists them and runs nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fargatelab.plugin.selection import catalog, list_labs_lines, matches, runnable

ROOT = Path(__file__).resolve().parents[2]
NUMBERED = {1: "test_fargate_profile.py", 2: "test_game_2048_ingress.py", 3: "test_scaling.py",
            4: "test_netshoot.py", 5: "test_root_shell.py", 6: "test_job_ttl.py"}


def _pytest(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _modules(collect_only_output: str) -> set[str]:
    return {line.split("::")[0].removeprefix("labs/") for line in collect_only_output.splitlines() if "::" in line}


@pytest.mark.parametrize("wanted,modules", [
    (["4"], {"test_netshoot.py"}),
    (["netshoot"], {"test_netshoot.py"}),
    (["2048"], {"test_game_2048_ingress.py"}),
    (["coredns"], {"test_coredns.py"}),
    (["1", "root-shell"], {"test_fargate_profile.py", "test_root_shell.py"}),
    (["daemonsets"], {"test_daemonset.py"}),
], ids=["number", "word", "a number in the name", "extras: by word", "repeated", "limits: by word"])
def test_lab_deselects_every_other_test(wanted: list[str], modules: set[str]) -> None:
    args = [a for w in wanted for a in ("--lab", w)]
    result = _pytest("labs", *args, "--collect-only", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _modules(result.stdout) == modules
    assert "deselected" in result.stdout.splitlines()[-1]


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["one process", "xdist workers"])
def test_a_lab_that_matches_nothing_is_one_usage_error_listing_the_labs(xdist: list[str], tmp_path: Path) -> None:
    result = _pytest("labs", "--lab", "99", "--lab", "4", "--reports-dir", str(tmp_path / "r"), *xdist)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert result.stderr.count("ERROR: --lab 99 matches no lab") == 1, result.stderr
    for number in NUMBERED:
        assert f"\n  {number:>2}  " in result.stderr
    assert "Documented extras — CoreDNS on Fargate" in result.stderr
    assert not (tmp_path / "r").exists()  # nothing ran, nothing reported


def test_list_labs_lists_every_lab_and_what_the_backend_runs(tmp_path: Path) -> None:
    result = _pytest("labs", "--list-labs", "--reports-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("LAB "))
    assert lines[header].split() == ["LAB", "NAME", "DOCUMENT", "STEPS", "RUNS", "ON", "local", "(replay)"]
    rows = {line.split("  ")[0]: line for line in lines[header + 1:header + 12]}
    assert set(rows) == {str(n) for n in NUMBERED} | {"-"} and len(lines[header + 1:header + 12]) == 11
    assert "netshoot probes" in rows["4"] and "(9 need pod-network)" in rows["4"]
    assert "(4 need load-balancer-http)" in rows["2"]  # the game page and the browser, per variant
    assert " passed" not in result.stdout and not (tmp_path / "r").exists()


def test_list_labs_opens_no_backend_and_counts_check_mode(tmp_path: Path) -> None:
    # An eks backend would need credentials and a cluster: listing must not try.
    result = _pytest("labs", "--list-labs", "--backend", "eks", "--mode", "check", "-n", "2", "--lab", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "created:" not in result.stdout  # no xdist worker started
    [row] = [line for line in result.stdout.splitlines() if line.startswith("1 ")]
    assert "Fargate profile" in row and row.rstrip().endswith("(9 replay only)"), row


def _item(nodeid: str, title: str, needs: list[str] = [], replay_only: bool = False) -> Any:
    marks = {"lab": [SimpleNamespace(args=(title, "000"), kwargs={})],
             "needs": [SimpleNamespace(args=(n,)) for n in needs],
             "replay_only": [SimpleNamespace(args=())] if replay_only else []}
    return SimpleNamespace(nodeid=nodeid, get_closest_marker=lambda name: (marks.get(name) or [None])[0],
                           iter_markers=lambda name: iter(marks.get(name, [])))


def test_catalog_and_table_from_markers() -> None:
    items = [_item("labs/test_x.py::test_a", "Documented extras — x"),
             _item("labs/test_b.py::test_a", "Lab 2 — b", needs=["pod-network"]),
             _item("labs/test_b.py::test_b", "Lab 2 — b", replay_only=True),
             _item("labs/test_a.py::test_a", "Lab 1 — a")]
    labs = catalog(items)
    assert [(e.number, e.title, len(e.items)) for e in labs] == [
        (1, "Lab 1 — a", 1), (2, "Lab 2 — b", 2), (None, "Documented extras — x", 1)]
    assert runnable(items[1], frozenset({"write"}), "replay") == "needs pod-network"
    assert runnable(items[2], frozenset({"write"}), "check") == "replay only"
    assert runnable(items[2], frozenset({"write"}), "replay") is None
    table = list_labs_lines(labs, "kind", "check")
    assert table[2].endswith("1 (1 replay only)"), table  # kind has a pod network
    assert table[3].startswith("-") and table[3].endswith("all")


def test_matching_needs_the_whole_number_or_every_word() -> None:
    assert not matches("Lab 1 — Fargate profile", "11")
    assert not matches("Lab 4 — netshoot probes", "netshoot ping")
    assert matches("Lab 6 — the TTL-cleaned Job", "ttl job")
    assert not matches("Lab 6 — the TTL-cleaned Job", "")
