"""What the harness writes for a cluster (the client's key files, cluster locks) goes where the cluster's run
goes, never piling up in the system's temporary directory."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import pytest
import yaml

from fargatelab.kube_client import client_configuration
from fargatelab.scenario.handle import ClusterHandle
from fargatelab.scenario.locks import cluster_lock


def _kubeconfig(path: Path) -> Path:
    # unique per file: the client reuses a file it wrote for the same content before
    data = base64.b64encode(f"-----BEGIN CERTIFICATE-----\n{path}\n".encode()).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", "certificate-authority-data": data}}],
        "users": [{"name": "u", "user": {"client-certificate-data": data, "client-key-data": data}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


@pytest.fixture
def system_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    system = tmp_path / "system-tmp"
    system.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system))
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path / "state"))
    return system


def test_an_environments_kubeconfig_leaves_its_keys_in_the_environment(tmp_path: Path, system_tmp: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path / "state" / "default" / "kubeconfig")
    cfg = client_configuration(str(kubeconfig))
    assert list(system_tmp.iterdir()) == []
    assert {Path(cfg.cert_file).parent, Path(cfg.key_file).parent, Path(cfg.ssl_ca_cert).parent} == {kubeconfig.parent}


def test_a_kubeconfig_of_ones_own_keeps_the_clients_default(tmp_path: Path, system_tmp: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path / "home" / ".kube" / "config")
    cfg = client_configuration(str(kubeconfig))
    assert Path(cfg.cert_file).parent == system_tmp
    assert list(kubeconfig.parent.iterdir()) == [kubeconfig]


def test_an_environments_cluster_lock_lives_in_the_environment(tmp_path: Path, system_tmp: Path) -> None:
    home = tmp_path / "state" / "default"
    home.mkdir(parents=True)
    handle = ClusterHandle("k", "c", "ap-northeast-2", "r1", aws_endpoint="http://127.0.0.1:5000",
                           extra={"state_dir": str(home)})
    with cluster_lock(handle, "profiles"):
        pass
    assert [p.name for p in home.iterdir() if p.suffix == ".lock"] and list(system_tmp.iterdir()) == []
    # a cluster that outlives runs (EKS): every run must find the same lock, in the shared directory
    with cluster_lock(ClusterHandle("k", "c", "ap-northeast-2", "r2"), "profiles"):
        pass
    assert [p.suffix for p in system_tmp.iterdir()] == [".lock"]
