"""The Docker engine for kind: its command line, and the runtime that drops capabilities a host cannot grant."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fargatelab.kind import engine, runc_caps

NO_SYS_RESOURCE = 0x1FFFEFFFFFF  # CapBnd of a host without CAP_SYS_RESOURCE (bit 24)
ALL = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_BPF"]


def test_the_engine_puts_no_private_address_on_the_host_and_masquerades_nothing() -> None:
    command = engine.engine_command(None)
    assert "--bip=100.64.240.1/24" in command and "--default-address-pool=base=100.64.242.0/23,size=24" in command
    assert "--ip-masq=false" in command
    assert not any("runtime" in arg for arg in command)
    with_filter = engine.engine_command(Path("/cache/runc-caps"))
    assert with_filter[-2:] == ["--add-runtime=runc-caps=/cache/runc-caps", "--default-runtime=runc-caps"]


def test_missing_capabilities_are_named_from_the_bounding_set() -> None:
    assert engine.missing_capabilities(f"Name:\tx\nCapBnd:\t{NO_SYS_RESOURCE:016x}\n") == ["SYS_RESOURCE"]
    assert engine.missing_capabilities("CapBnd:\t000001ffffffffff\n") == []


@pytest.mark.parametrize("args, whole", [
    (["create", "--bundle", "{dir}", "abc"], True),
    (["--root", "/run/x", "run", "--bundle={dir}", "abc"], True),
    (["exec", "--process", "{dir}/process.json", "abc"], False),
])
def test_a_spec_loses_only_the_capabilities_the_host_cannot_grant(tmp_path: Path, args: list[str],
                                                                  whole: bool) -> None:
    caps = {"bounding": ALL, "effective": ALL, "permitted": ALL}
    path = tmp_path / ("config.json" if whole else "process.json")
    path.write_text(json.dumps({"process": {"capabilities": caps, "args": ["sh"]}} if whole
                               else {"capabilities": caps, "args": ["sh"]}))
    for spec, whole_spec in runc_caps.spec_files([a.format(dir=tmp_path) for a in args]):
        runc_caps.rewrite(spec, whole_spec, NO_SYS_RESOURCE)
    data = json.loads(path.read_text())
    kept = (data["process"] if whole else data)["capabilities"]
    assert kept == {k: ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_BPF"] for k in caps}


def test_the_written_runtime_runs_the_real_runc_with_its_arguments(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The script dockerd runs: standalone (the system's python3), then the real runc with the same argv."""
    fake_runc = tmp_path / "runc"
    fake_runc.write_text(f"#!{sys.executable}\nimport sys, json\nprint(json.dumps(sys.argv[1:]))\n")
    fake_runc.chmod(0o755)
    monkeypatch.setattr(engine.shutil, "which", lambda name: str(fake_runc) if name == "runc" else None)
    script = engine._write_runtime(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"process": {"capabilities": {"bounding": ALL}}}))
    out = subprocess.run([sys.executable, str(script), "create", "--bundle", str(bundle), "ctr1"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["create", "--bundle", str(bundle), "ctr1"]
    assert script.read_text().startswith(f"#!/usr/bin/python3\nREAL_RUNC = {str(fake_runc)!r}\n")
