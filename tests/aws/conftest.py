"""Fixtures that run ``python -m fargatelab.local.aws.server`` as a subprocess and talk to it with boto3."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest
from botocore.config import Config

REGION = "ap-northeast-2"
CLUSTER = "eksworkshop"
API_ENDPOINT = "https://127.0.0.1:6443"
RUN_ID = "pytest-aws"
# Short but long enough that two back-to-back calls land inside the transition.
CREATE_SECONDS = 0.5
DELETE_SECONDS = 0.5
# A CA the server only base64-encodes, so any PEM text will do.
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfakeCAforfargatelabs\n-----END CERTIFICATE-----\n"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    seed: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        # One attempt only: the tests assert on the very error a call gets, not on a retry of it.
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}),
        )

    def control(self, method: str, what: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_fargatelab/{what}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def launch(
    ca_file: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Server:
    """Start the server and wait for its READY line; on failure the process is returned dead."""
    cmd = [
        sys.executable,
        "-m",
        "fargatelab.local.aws.server",
        "--host",
        host,
        "--port",
        str(port),
        "--region",
        REGION,
        "--cluster-name",
        CLUSTER,
        "--endpoint",
        API_ENDPOINT,
        "--ca-file",
        str(ca_file),
        "--profile-create-seconds",
        str(CREATE_SECONDS),
        "--profile-delete-seconds",
        str(DELETE_SECONDS),
        "--run-id",
        RUN_ID,
    ]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=REPO
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:  # EOF: the process exited without READY
                proc.wait(timeout=10)
                return Server(proc, port)
            assert line.startswith("READY "), f"unexpected stdout line {line!r}"
            return Server(proc, int(line.split()[1]))
        if proc.poll() is not None:
            return Server(proc, port)
    proc.kill()
    raise AssertionError("server printed no READY line in time")


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    for stream in (server.proc.stdout, server.proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="session")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("aws") / "ca.crt"
    path.write_text(CA_PEM)
    return path


@pytest.fixture(scope="session")
def server(ca_file: Path) -> Iterator[Server]:
    started = launch(ca_file)
    if started.proc.poll() is not None:
        err = started.proc.stderr.read() if started.proc.stderr else ""
        pytest.fail(f"server exited with {started.proc.returncode}: {err}")
    status, seed = started.control("GET", "seed")
    assert status == 200
    started.seed = seed
    yield started
    stop(started)


@pytest.fixture
def launcher(ca_file: Path) -> Iterator[Callable[..., Server]]:
    """Start extra servers (for signal and port tests); every one is stopped afterwards."""
    started: list[Server] = []

    def start(**kwargs: Any) -> Server:
        kwargs.setdefault("ca_file", ca_file)
        one = launch(**kwargs)
        started.append(one)
        return one

    yield start
    for one in started:
        stop(one)


@pytest.fixture
def eks(server: Server) -> Any:
    return server.client("eks")


@pytest.fixture
def ec2(server: Server) -> Any:
    return server.client("ec2")


@pytest.fixture
def cluster(server: Server, eks: Any) -> str:
    """A fresh cluster on the seeded VPC, so one test's transitions never block another's."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    seed = server.seed
    eks.create_cluster(
        name=name,
        roleArn=seed["cluster_role_arn"],
        resourcesVpcConfig={"subnetIds": seed["public_subnet_ids"] + seed["private_subnet_ids"]},
    )
    return name


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").control("DELETE", "inject")


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)
