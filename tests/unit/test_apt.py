"""Debian packages installed when a command is missing: retried after an update, then one clear line."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from fargatelab.errors import ExitCode, HarnessError
from fargatelab.local import apt


def _as_root_without(monkeypatch: pytest.MonkeyPatch, installs: bool) -> list[list[str]]:
    calls: list[list[str]] = []
    installed: list[str] = []

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        if installs and "install" in cmd:
            installed.append("mmdebstrap")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package mmdebstrap")

    monkeypatch.setattr(apt.os, "geteuid", lambda: 0)
    monkeypatch.setattr(apt.shutil, "which", lambda name: "/usr/bin/x" if name == "apt-get" or name in installed
                        else None)
    monkeypatch.setattr(apt.subprocess, "run", run)
    return calls


def test_a_missing_command_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _as_root_without(monkeypatch, installs=True)
    lines: list[str] = []
    apt.need("mmdebstrap", ["mmdebstrap"], "the offline stand-in images", lines.append)
    assert lines == ["installing mmdebstrap with apt-get, for the offline stand-in images"]
    assert [c[c.index("install"):] for c in calls] == [["install", "-y", "-q", "--no-install-recommends", "mmdebstrap"]]


def test_a_failed_install_is_retried_after_an_update_then_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _as_root_without(monkeypatch, installs=False)
    with pytest.raises(HarnessError, match="apt-get install mmdebstrap failed: E: Unable to locate package") as err:
        apt.need("mmdebstrap", ["mmdebstrap"], "the offline stand-in images", lambda line: None)
    assert err.value.code == ExitCode.MISSING_BINARY
    assert [[a for a in c if a in ("apt-get", "install", "update")] for c in calls] == [
        ["apt-get", "install"], ["apt-get", "update"], ["apt-get", "install"]]


def test_without_root_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apt.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(apt.shutil, "which", lambda name: None if name == "haproxy" else "/usr/bin/x")
    with pytest.raises(HarnessError) as err:
        apt.need("haproxy", ["haproxy"], "the ALBs' proxies", lambda line: None)
    assert str(err.value) == ("the ALBs' proxies needs the haproxy command: install haproxy "
                              "(Debian: apt-get install haproxy)")
    assert err.value.code == ExitCode.MISSING_BINARY
