"""The kind backend: its cluster configuration, its fail-fast path, and the labs on kind where Docker runs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fargatelab.backends.kind import KIND_VERSION, NODE_IMAGE, kind_config, require_docker
from fargatelab.local.binaries import KUBERNETES_VERSION
from fargatelab.errors import ExitCode, HarnessError

pytestmark = pytest.mark.kind

ROOT = Path(__file__).resolve().parents[2]


def docker_engine_runs() -> bool:
    try:
        require_docker()
    except HarnessError:
        return False
    return True


def test_cluster_config_has_the_workshop_service_network() -> None:
    config = kind_config(workers=2)
    assert config["networking"]["serviceSubnet"] == "172.20.0.0/16"
    assert config["networking"]["podSubnet"] == "10.11.64.0/18"
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]


def test_node_image_matches_the_local_kubernetes_minor() -> None:
    assert NODE_IMAGE.split(":v")[1].split(".")[:2] == KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    assert KIND_VERSION.startswith("v0.")


def test_no_docker_command_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HarnessError) as err:
        require_docker()
    assert err.value.code == ExitCode.BACKEND_UNAVAILABLE
    assert "no `docker` command" in str(err.value) and "--backend local" in str(err.value)


def test_docker_without_engine_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(HarnessError) as err:
        require_docker()
    assert "needs a running Docker engine (Cannot connect to the Docker daemon" in str(err.value)


@pytest.mark.skipif(docker_engine_runs(), reason="a Docker engine runs here, so the labs run on kind instead")
def test_labs_on_kind_without_docker_exit_with_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "labs/test_fargate_profile.py", "--backend", "kind",
                             "-p", "no:cacheprovider", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == ExitCode.BACKEND_UNAVAILABLE, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "the kind backend needs" in line]
    assert len(lines) == 1 and "--backend local" in lines[0]


@pytest.mark.kind
@pytest.mark.skipif(not docker_engine_runs(), reason="needs a running Docker engine for kind "
                    "(`docker info` fails here); install and start Docker to run the labs on kind")
def test_labs_on_kind() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "labs", "--backend", "kind", "-p", "no:cacheprovider",
                             "-q"], cwd=ROOT, timeout=3600)
    assert result.returncode == 0



class KindClusterRecord:
    """What the backend asks of pytest-kind's KindCluster, counted (no Docker here)."""

    created: list[str] = []
    deleted: list[str] = []

    def __init__(self, tmp: Path, name: str) -> None:
        self.name = name
        self.kubeconfig_path = tmp / name / "kubeconfig"

    def create(self, config_file: Path) -> None:
        self.created.append(self.name)

    def delete(self) -> None:
        self.deleted.append(self.name)


def test_workers_share_one_cluster_and_one_emulation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each xdist worker opens the backend: only the first makes the cluster and the emulation (two would
    mean two fargate-schedulers); workers leave both up, and the run's owner removes them once."""
    from fargatelab.backends import BackendOptions
    from fargatelab.backends import kind
    from fargatelab.local.environment import LocalEnvironment

    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path / "state"))
    monkeypatch.setattr(kind, "require_docker", lambda: None)
    monkeypatch.setattr(kind, "_kind_gateway", lambda: "172.18.0.1")
    monkeypatch.setattr(KindClusterRecord, "created", [])
    monkeypatch.setattr(KindClusterRecord, "deleted", [])
    monkeypatch.setattr(kind, "_cluster", lambda run_id: KindClusterRecord(tmp_path, f"fargate-labs-{run_id}"))
    attached: list[str] = []

    def attach(env: LocalEnvironment, kubeconfig: str, options: object, webhook_host: str) -> None:
        attached.append(webhook_host)
        env.dir.mkdir(parents=True, exist_ok=True)
        env.state_file.write_text(json.dumps({
            "name": env.name, "run_id": "kind0001", "cluster_name": "eksworkshop", "region": "ap-northeast-2",
            "kubernetes_version": "v1.34.0", "kubeconfig": kubeconfig, "aws_endpoint": "http://127.0.0.1:1",
            "components": [], "ready": True}))

    monkeypatch.setattr(LocalEnvironment, "attach", attach)
    monkeypatch.setattr(LocalEnvironment, "down", lambda env, quiet=False: env.state_file.unlink())
    options = BackendOptions(backend="kind", run_id="kind0001", owner=False)  # two workers, neither the owner

    first = kind.KindBackend(options)
    second = kind.KindBackend(options)
    assert (KindClusterRecord.created, attached) == (["fargate-labs-kind0001"], ["172.18.0.1"])
    assert first.handle == second.handle and first.handle.aws_endpoint == "http://127.0.0.1:1"

    first.close()
    second.close()
    assert KindClusterRecord.deleted == [] and LocalEnvironment("kind-kind0001").is_up()

    kind.remove("kind0001")  # the controller, at the end of the run
    kind.remove("kind0001")  # twice: nothing left, nothing done
    assert KindClusterRecord.deleted == ["fargate-labs-kind0001"]
    assert not LocalEnvironment("kind-kind0001").is_up()

    # A run of one process owns what it made: closing its backend removes both.
    alone = kind.KindBackend(dataclasses.replace(options, run_id="kind0002", owner=True))
    alone.close()
    assert KindClusterRecord.deleted == ["fargate-labs-kind0001", "fargate-labs-kind0002"]
    assert not LocalEnvironment("kind-kind0002").is_up()
