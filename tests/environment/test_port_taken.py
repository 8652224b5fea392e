"""A port picked free and taken by another program before its component binds it: the start tries again."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fargatelab.local import process
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment

pytestmark = pytest.mark.integration


def test_a_port_taken_meanwhile_means_new_ports_not_a_failed_start(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path / "state"))
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real_free_port = process.free_port
    handed_out: list[int] = []

    def free_port() -> int:  # the first port of the start is the one "another program" took meanwhile
        handed_out.append(taken if not handed_out else real_free_port())
        return handed_out[-1]

    monkeypatch.setattr(process, "free_port", free_port)
    lines: list[str] = []
    env = LocalEnvironment("porttaken")
    try:
        env.up(EnvironmentConfig(name="porttaken"), progress=lines.append)
        assert env.is_up()
        assert any(line.startswith("a port was taken before its component bound it: starting again") for line in lines)
        assert taken not in [c.get("port") for c in env.state()["components"]]  # type: ignore[index]
    finally:
        env.down(quiet=True)
        squatter.close()
