"""The kind backend: its cluster configuration, its fail-fast path, and the labs on kind where Docker runs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fargatelab.backends.kind import KIND_VERSION, kind_config, require_docker
from fargatelab.kind.node_image import COREDNS_IMAGE_TAG, ETCD_IMAGE_TAG
from fargatelab.errors import ExitCode, HarnessError

pytestmark = pytest.mark.kind

ROOT = Path(__file__).resolve().parents[2]


def docker_engine_runs() -> bool:
    try:
        require_docker()
    except HarnessError:
        return False
    return True


def test_two_workers_run_the_pods_with_the_workshop_networks_and_their_own_images(tmp_path: Path) -> None:
    config = kind_config(tmp_path / "certs.d", tmp_path / "resolv.conf")
    assert config["networking"] == {"serviceSubnet": "172.20.0.0/16", "podSubnet": "10.11.64.0/18",
                                    "disableDefaultCNI": True}
    assert [node["role"] for node in config["nodes"]] == ["control-plane", "worker", "worker"]
    for node in config["nodes"]:  # every node pulls from the offline registry
        assert node["extraMounts"] == [
            {"hostPath": str(tmp_path / "certs.d"), "containerPath": "/etc/containerd/certs.d", "readOnly": True},
            {"hostPath": str(tmp_path / "resolv.conf"), "containerPath": "/etc/fargate-labs/resolv.conf",
             "readOnly": True}]
    kubeadm, kubelet = config["kubeadmConfigPatches"]
    assert f"imageTag: {ETCD_IMAGE_TAG}" in kubeadm and f"imageTag: {COREDNS_IMAGE_TAG}" in kubeadm
    # the pods' resolv.conf ends with the VPC's search domain, as a Fargate pod's does
    assert kubelet == "kind: KubeletConfiguration\nresolvConf: /etc/fargate-labs/resolv.conf\n"
    patches = "\n".join(config["containerdConfigPatches"])
    assert 'config_path = "/etc/containerd/certs.d"' in patches and "restrict_oom_score_adj = true" in patches
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
                    "(`docker info` fails here); `fargate-lab kind-engine` installs and starts one")
def test_two_runs_side_by_side_on_real_kind_clusters(tmp_path: Path) -> None:
    """Two runs at once on kind: each makes its own cluster from the node image built here, its pods pull
    the stand-ins from its environment's registry and run on its workers, the root-shell lab's steps pass in
    both, and each run's nodes, network namespace and directory are gone at its end."""
    runs = [subprocess.Popen([sys.executable, "-m", "pytest", "labs/test_root_shell.py", "--backend", "kind",
                              "-p", "no:cacheprovider", "-q", f"--reports-dir={tmp_path / str(i)}"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (1, 2)]
    outputs = [run.communicate(timeout=1800)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output[-4000:]
    from fargatelab.local.environment import LocalEnvironment

    run_ids = []
    for i in (1, 2):
        summary = json.loads((tmp_path / str(i) / "latest" / "summary.json").read_text())
        assert summary["run"]["backend"] == "kind"
        outcomes = {step["step"]: step["outcome"] for lab in summary["labs"] for step in lab["steps"]}
        assert outcomes and set(outcomes.values()) == {"passed"}, outcomes
        run_id = summary["run"]["run_id"]
        run_ids.append(run_id)
        nodes = subprocess.run(["docker", "ps", "-a", "--filter", f"name=fargate-labs-{run_id}", "-q"],
                               capture_output=True, text=True, check=True).stdout
        assert nodes.strip() == "", f"the run's kind nodes are still there: {nodes}"
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert f"fargate-labs-{run_id}-" not in namespaces, f"the run's network namespace is still there: {namespaces}"
        assert not LocalEnvironment(f"kind-{run_id}").dir.exists(), "the run's emulation left its directory"
    assert run_ids[0] != run_ids[1]


@pytest.mark.kind
@pytest.mark.skipif(not docker_engine_runs(), reason="needs a running Docker engine for kind "
                    "(`docker info` fails here); `fargate-lab kind-engine` installs and starts one")
def test_a_kind_run_killed_with_9_leaves_nothing_after_cleanup_orphans(tmp_path: Path) -> None:
    """kill -9 of a kind run's every process leaves its cluster's node containers, its network namespace and
    its directory; `fargate-lab leaks --orphans` names them and `fargate-lab cleanup --orphans` removes them."""
    from fargatelab.backends import BackendOptions
    from fargatelab.backends.kind import KindBackend, remove
    from fargatelab.kind.leftovers import KindNodes
    from fargatelab.local import process
    from fargatelab.local.environment import LocalEnvironment

    run_id = f"k9{os.getpid() % 10**6:06d}"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fargatelab.cli.main", *args], capture_output=True, text=True,
                              timeout=600)

    def containers() -> list[str]:
        return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.x-k8s.kind.cluster=fargate-labs-{run_id}"],
                              capture_output=True, text=True, check=True).stdout.split()

    try:
        KindBackend(BackendOptions(backend="kind", run_id=run_id, owner=False))
        assert len(containers()) == 3
        deadline = time.monotonic() + 10
        while (left := process.tagged_pids(run_id)) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        listed = cli("leaks", "--orphans")
        assert f"run {run_id}:" in listed.stdout and "kind node container" in listed.stdout, listed.stdout
        cleaned = cli("cleanup", "--orphans")
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        assert containers() == []
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert f"fargate-labs-{run_id}-" not in namespaces
        assert not LocalEnvironment(f"kind-{run_id}").dir.exists()
    finally:
        remove(run_id)
        KindNodes().remove(run_id)


class KindClusterRecord:
    """What the backend asks of the kind cluster, counted (no Docker here)."""

    created: list[str] = []
    deleted: list[str] = []

    def __init__(self, name: str) -> None:
        self.name = name

    def create(self, image: str, config: dict[str, object], subnets: list[str]) -> list[object]:
        self.created.append(self.name)
        return []

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
    monkeypatch.setattr(kind, "ensure_network", lambda: "100.64.244.1")
    monkeypatch.setattr(kind, "provision_node_image", lambda progress: "fargate-labs/kind-node:test")
    monkeypatch.setattr(kind, "_without_kubeadm_coredns", lambda kubeconfig: None)
    opened: list[str] = []
    monkeypatch.setattr(kind.access, "open_access", lambda run_id, bridge, nodes: opened.append(run_id) or "ns")
    monkeypatch.setattr(kind.access, "close", lambda run_id: opened.remove(run_id))
    monkeypatch.setattr(KindClusterRecord, "created", [])
    monkeypatch.setattr(KindClusterRecord, "deleted", [])
    monkeypatch.setattr(kind, "_cluster", lambda run_id, kubeconfig: KindClusterRecord(f"fargate-labs-{run_id}"))
    attached: list[str] = []

    def attach(env: LocalEnvironment, kubeconfig: str, options: object, webhook_host: str, certs: Path,
               progress: object, targets_namespace: str) -> None:
        attached.append(webhook_host)
        assert targets_namespace == "ns"
        assert certs.is_dir()
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
    assert (KindClusterRecord.created, attached) == (["fargate-labs-kind0001"], ["100.64.244.1"])
    assert first.handle == second.handle and first.handle.aws_endpoint == "http://127.0.0.1:1"

    first.close()
    second.close()
    assert KindClusterRecord.deleted == [] and LocalEnvironment("kind-kind0001").is_up()

    kind.remove("kind0001")  # the controller, at the end of the run
    kind.remove("kind0001")  # twice: nothing left, nothing done
    assert KindClusterRecord.deleted == ["fargate-labs-kind0001"]
    assert not LocalEnvironment("kind-kind0001").is_up()
    assert opened == []  # the ALBs' way to the pods went with the cluster

    # A run of one process owns what it made: closing its backend removes both.
    alone = kind.KindBackend(dataclasses.replace(options, run_id="kind0002", owner=True))
    alone.close()
    assert KindClusterRecord.deleted == ["fargate-labs-kind0001", "fargate-labs-kind0002"]
    assert not LocalEnvironment("kind-kind0002").is_up()
