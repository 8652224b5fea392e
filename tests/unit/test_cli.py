"""The ``fargate-lab`` command line: version, plain-text help with exit codes and environment variables,
choices checked before any work, JSON output, shell completion, ``explain --strict`` and ``-f -``."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from fargatelab.cli import main as cli
from fargatelab.cli.help_text import ENVIRONMENT, EXIT_CODES
from fargatelab.errors import ExitCode

MANIFESTS = Path(__file__).resolve().parents[2] / "fixtures" / "manifests"
COMMANDS = ["up", "env", "status", "down", "resolve", "provision", "kind-engine", "explain", "check", "cleanup",
            "leaks"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_version_is_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"fargate-lab {version('fargate-labs')}"


def test_every_command_has_a_plain_text_description() -> None:
    parser = cli.get_parser()
    commands = _subparsers(parser)
    assert sorted(commands) == sorted(COMMANDS)
    for name, sub in [("fargate-lab", parser), *commands.items()]:
        text = sub.description or ""
        assert len(text) > 40, f"{name}: no description"
        assert not re.search(r"``|:class:|:func:|:mod:|:attr:|^\s*\.\. ", text, re.MULTILINE), f"{name}: reST in {text!r}"


def test_the_epilog_lists_every_exit_code_and_environment_variable() -> None:
    text = cli.get_parser().format_help()
    for name, value in vars(ExitCode).items():
        if name.isupper():
            assert re.search(rf"^\s+{value}\s+{name}\s+\S", text, re.MULTILINE), name
    assert set(EXIT_CODES) == {name for name in vars(ExitCode) if name.isupper()}
    for variable in ENVIRONMENT:
        assert re.search(rf"^\s+{variable}\s+\S", text, re.MULTILINE), variable


def test_timing_is_checked_before_anything_is_provisioned(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    def started(*_: Any, **__: Any) -> None:
        raise AssertionError("the environment was touched before the options were checked")

    monkeypatch.setattr("fargatelab.local.environment.LocalEnvironment", started)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["up", "--timing", "slow"])
    assert exit_.value.code == ExitCode.USAGE
    assert "argument --timing: invalid choice: 'slow' (choose from 'fast', 'eks')" in capsys.readouterr().err


class _Environment:
    def __init__(self, name: str) -> None:
        self.name = name

    def status(self) -> list[dict[str, Any]]:
        return [{"name": "etcd", "state": "running", "pid": 10, "port": 2379, "log": "/l/etcd.log"},
                {"name": "moto", "state": "dead", "pid": 11, "port": 5000, "log": "/l/moto.log"}]


def test_status_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("fargatelab.local.environment.LocalEnvironment", _Environment)
    assert cli.main(["status", "--name", "dev", "-o", "json"]) == ExitCode.START_FAILED
    captured = capsys.readouterr()
    assert json.loads(captured.out) == _Environment("dev").status()
    assert "moto died" in captured.err


def test_leaks_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from fargatelab.cli import cleanup

    scope = argparse.Namespace(run_id="r1", notes=["IAM not searched"])
    monkeypatch.setattr(cleanup, "_scope", lambda args: scope)
    monkeypatch.setattr("fargatelab.cleanup.leftovers.find_leftovers", lambda s: ["Namespace study-aews-r1"])
    assert cli.main(["leaks", "--run-id", "r1", "--env", "dev", "-o", "json"]) == ExitCode.LEAKED_RESOURCES
    assert json.loads(capsys.readouterr().out) == {"run_id": "r1", "leftovers": ["Namespace study-aews-r1"],
                                                   "notes": ["IAM not searched"]}
    monkeypatch.setattr("fargatelab.cleanup.leftovers.find_leftovers", lambda s: [])
    assert cli.main(["leaks", "--run-id", "r1", "--env", "dev", "-o", "json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["leftovers"] == []


def test_shell_completion_script_knows_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "fargatelab.cli", "--print-completion", "bash"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout and "fargate-lab" in result.stdout
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("manifest,code", [("root-shell.yaml", 1), ("netshoot.yaml", 0)])
def test_explain_strict_fails_when_a_pod_cannot_run_on_fargate(manifest: str, code: int,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["explain", "-f", str(MANIFESTS / manifest)]) == ExitCode.OK
    assert cli.main(["explain", "--strict", "-f", str(MANIFESTS / manifest)]) == code
    err = capsys.readouterr().err
    assert ("cannot run on Fargate (--strict)" in err) is bool(code)


@pytest.mark.parametrize("text,error", [
    ("kind: [\n", "fargate-lab: error: <stdin> is not valid YAML (line 2:"),
    ("- 1\n", "fargate-lab: error: <stdin> is not a Kubernetes manifest: document 1 has no kind"),
])
def test_stdin_is_named_stdin(text: str, error: str, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert cli.main(["explain", "-f", "-"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(error) and "manifest -" not in err, err


def test_stdin_without_pods_is_named_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("kind: ConfigMap\nmetadata: {name: x}\n"))
    assert cli.main(["explain", "-f", "-"]) == ExitCode.OK
    assert "no Pod or pod template in <stdin>" in capsys.readouterr().err
