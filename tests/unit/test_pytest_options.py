"""The pytest layer's command line: only the harness's options, in one group, each with help; the options of
the plugin it uses as a library (pytest-testinfra), and of pytest-kind-ng where an older environment still has
it, are neither shown nor accepted."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from _pytest.config.argparsing import Parser

from fargatelab.plugin import options, reporting, selection

ROOT = Path(__file__).resolve().parents[2]

#: options those plugins add to pytest (pytest-kind-ng; pytest-testinfra)
FOREIGN = ["--kubeconfig", "--keep-cluster", "--cluster-name", "--hosts", "--connection", "--ssh-config",
           "--ansible-inventory", "--sudo", "--nagios"]


def _pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_blocked_names_are_the_plugins_entry_points() -> None:
    """``-p no:NAME`` blocks a plugin only by its entry point's exact name."""
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    blocked = {addopts[i + 1].removeprefix("no:") for i, a in enumerate(addopts) if a == "-p"}
    names = {ep.name for ep in importlib.metadata.distribution("pytest-testinfra").entry_points
             if ep.group == "pytest11"}
    assert names and names <= blocked, (names, blocked)
    assert "pytest-kind-ng" in blocked


def test_pytest_help_shows_none_of_their_options() -> None:
    result = _pytest("--help")
    assert result.returncode == 0, result.stderr
    shown = [flag for flag in FOREIGN if f"  {flag}" in result.stdout]
    assert not shown, f"pytest --help still shows {shown}"
    assert "EKS-on-Fargate workshop labs:" in result.stdout


@pytest.mark.parametrize("flag", ["--hosts=local://", "--keep-cluster", "--kubeconfig=/tmp/k"])
def test_their_options_are_rejected(flag: str) -> None:
    result = _pytest("labs", flag, "--collect-only", "-q")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"unrecognized arguments: {flag}" in result.stderr


def test_the_labs_still_use_testinfra_as_a_library() -> None:
    import testinfra

    assert testinfra.get_host


def test_the_harness_options_are_one_group_each_with_help() -> None:
    parser = Parser(_ispytest=True)
    for plugin in (options, reporting, selection):
        plugin.pytest_addoption(parser)
    used = [g for g in parser._groups if g.options]
    assert [g.name for g in used] == ["fargate-labs"]  # the one group pytest's --help shows them in
    [group] = used
    names = [o.names()[0] for o in group.options]
    assert {"--backend", "--mode", "--region", "--lab", "--list-labs", "--reports-dir"} <= set(names)
    without = [name for name, o in zip(names, group.options) if not (o.attrs().get("help") or "").strip()]
    assert not without, f"options without help text: {without}"
