"""The workshop's CLIs: pinned, built in one cache directory per set of pins, the AWS CLI in a virtual
environment of its own; a second provisioning builds and installs nothing."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from fargatelab.errors import HarnessError
from fargatelab.local import cli_tools, go_build
from stand_ins import script


def test_pins() -> None:
    assert {c.name: c.version for c in cli_tools.CLI_COMPONENTS} == {"eksctl": "v0.215.0", "helm": "v3.22.0"}
    eksctl, helm = cli_tools.CLI_COMPONENTS
    # eksctl's go.mod has replace directives, which `go install module@version` refuses.
    assert eksctl.in_module and not helm.in_module
    assert dict(eksctl.stamps) == {"github.com/weaveworks/eksctl/pkg/version.PreReleaseID": ""}
    assert dict(helm.stamps) == {"helm.sh/helm/v3/internal/version.version": "v3.22.0"}
    assert cli_tools.AWSCLI_VERSION == "1.46.3"


def test_the_cache_directory_follows_the_pins(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cli_tools.clis_dir()
    assert first.parent.parent == cache and first.name == "bin"
    monkeypatch.setattr(cli_tools, "CLI_COMPONENTS", tuple(
        dataclasses.replace(c, version="v3.22.1") if c.name == "helm" else c for c in cli_tools.CLI_COMPONENTS))
    assert cli_tools.clis_dir() != first


@pytest.fixture
def stand_in_builds(cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, int]:
    """Go builds that write a script per tool, and a pip that installs a stand-in ``aws``; counts each."""
    counts = {"go": 0, "pip": 0}

    def build(component: go_build.Component, target: Path, progress: Any) -> dict[str, Any]:
        counts["go"] += 1
        sums = {rel: go_build._digest(script(target / rel, f"echo {component.name}")) for rel in component.binaries}
        return {"version": component.version, "tags": [], "sha256": sums}

    monkeypatch.setattr(go_build, "_build", build)
    monkeypatch.setattr(go_build, "_check_go", lambda components: "go1.99.0")
    # A stand-in python: `-m venv DIR` makes DIR/bin/python (itself); `-m pip install` writes the aws command.
    fake = script(tmp_path / "fake-python",
                  'if [ "$2" = venv ]; then mkdir -p "$4/bin"; cp "$0" "$4/bin/python"; exit 0; fi\n'
                  'echo pip >> "$(dirname "$0")/../pip-runs"\n'
                  f'printf \'#!/bin/sh\\necho "aws-cli/{cli_tools.AWSCLI_VERSION} Python/3"\\n\' > "$(dirname "$0")/aws"\n'
                  'chmod +x "$(dirname "$0")/aws"')
    monkeypatch.setattr(sys, "executable", str(fake))
    return counts


def test_provisioning_builds_once_then_reuses(stand_in_builds: dict[str, int]) -> None:
    lines: list[str] = []
    clis = cli_tools.provision_clis(lines.append)
    assert clis.versions == {"eksctl": "v0.215.0", "helm": "v3.22.0", "aws": "1.46.3"}
    assert (clis.bin_dir / "aws").resolve() == (clis.bin_dir.parent / "awscli-1.46.3" / "bin" / "aws").resolve()
    assert stand_in_builds["go"] == 2 and any("installing the AWS CLI 1.46.3" in line for line in lines)
    again: list[str] = []
    cli_tools.provision_clis(again.append)
    assert stand_in_builds["go"] == 2 and again == []
    assert (clis.bin_dir.parent / "awscli-1.46.3" / "pip-runs").read_text().count("pip") == 1


def test_an_aws_cli_that_will_not_install_is_one_line(stand_in_builds: dict[str, int], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(script(tmp_path / "broken-python", "exit 1")))
    with pytest.raises(HarnessError, match=r"installing the AWS CLI failed \(see .*awscli.log\): check that PyPI"):
        cli_tools.provision_clis(lambda line: None)
