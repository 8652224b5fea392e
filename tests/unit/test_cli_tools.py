"""The workshop's CLIs: pinned, built in one cache directory per set of pins, the AWS CLI in a virtual
environment of its own; a second provisioning builds and installs nothing."""

from __future__ import annotations

import dataclasses
import json
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


def _release_archive(member: str, data: bytes) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_an_official_release_that_matches_its_checksum_is_used(stand_in_builds: dict[str, int],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the releases are reachable, eksctl and helm are downloaded and checked, not built; a release whose
    checksum differs is refused and built instead."""
    import hashlib

    served: dict[str, bytes] = {}
    for name, (archive, checksums, member) in cli_tools.RELEASES.items():
        body = _release_archive(member, f"#!/bin/sh\necho {name}\n".encode())
        served[archive] = body
        digest = hashlib.sha256(body).hexdigest() if name == "eksctl" else "0" * 64  # helm's is wrong
        served[checksums] = f"{digest}  {archive.rsplit('/', 1)[1]}\n".encode()

    def fetch(url: str, timeout: float = 20) -> bytes:
        if url not in served:
            raise OSError(f"unreachable: {url}")
        return served[url]

    monkeypatch.setattr(go_build, "fetch", fetch)
    monkeypatch.setattr(go_build, "fetch_verified", lambda url, sha: (
        fetch(url) if hashlib.sha256(fetch(url)).hexdigest() == sha else (_ for _ in ()).throw(OSError("mismatch"))))
    monkeypatch.setattr(cli_tools.platform, "machine", lambda: "x86_64")
    lines: list[str] = []
    clis = cli_tools.provision_clis(lines.append)
    assert (clis.bin_dir / "eksctl").read_text() == "#!/bin/sh\necho eksctl\n"
    assert stand_in_builds["go"] == 1  # helm only: its download did not match
    assert any("the official helm v3.22.0 could not be used (mismatch): building it" in line for line in lines)
    manifest = json.loads((clis.bin_dir / "MANIFEST.json").read_text())["components"]
    assert manifest["eksctl"]["source"].endswith("eksctl_Linux_amd64.tar.gz") and "source" not in manifest["helm"]
    assert go_build.verify(clis.bin_dir, cli_tools.CLI_COMPONENTS) == []
