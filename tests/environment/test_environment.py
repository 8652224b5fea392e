"""The local environment as a user drives it: `fargate-lab up`, kubectl, boto3, `fargate-lab down`."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from fargatelab.local import process
from fargatelab.errors import ExitCode

pytestmark = pytest.mark.integration


def fargate_lab(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fargatelab.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def exports(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        assert line.startswith("export "), f"not an export line: {line!r}"
        key, _, value = line[len("export "):].partition("=")
        out[key] = value.strip("'")
    return out


@pytest.fixture
def user_env(tmp_path: Path) -> dict[str, str]:
    """A user's shell: its own state directory, the shared binary cache."""
    return dict(os.environ, FARGATE_LABS_STATE=str(tmp_path / "state"), FARGATE_LABS_ENV="envtest")


@pytest.fixture
def running(user_env: dict[str, str]) -> Any:
    result = fargate_lab("up", env=user_env)
    assert result.returncode == 0, result.stderr
    shell = dict(user_env, **exports(result.stdout))
    state = json.loads((Path(user_env["FARGATE_LABS_STATE"]) / "envtest" / "state.json").read_text())
    yield shell, state
    fargate_lab("down", env=user_env)


def kubectl(shell: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=shell, input=stdin, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    return check()


def test_up_serves_a_real_control_plane(running: Any) -> None:
    shell, _ = running
    assert kubectl(shell, "get", "--raw", "/readyz") == "ok"
    kubectl(shell, "create", "namespace", "plain")
    kubectl(shell, "-n", "plain", "create", "deployment", "web", "--image=nginx", "--replicas=2")
    # The real deployment and replicaset controllers make the ReplicaSet and its pods.
    rs = wait_for(lambda: json.loads(kubectl(shell, "-n", "plain", "get", "rs", "-o", "json"))["items"])
    assert rs[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    pods = wait_for(lambda: len(json.loads(kubectl(shell, "-n", "plain", "get", "pods", "-o", "json"))["items"]) == 2)
    assert pods
    assert kubectl(shell, "get", "sa", "default", "-o", "name") == "serviceaccount/default\n"
    dns = json.loads(kubectl(shell, "-n", "kube-system", "get", "svc", "kube-dns", "-o", "json"))
    assert dns["spec"]["clusterIP"] == "172.20.0.10"


def test_describe_cluster_endpoint_and_ca_work_for_kubectl(running: Any, tmp_path: Path) -> None:
    shell, _ = running
    eks = boto3.client("eks", endpoint_url=shell["AWS_ENDPOINT_URL"], region_name=shell["AWS_REGION"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    cluster = eks.describe_cluster(name="eksworkshop")["cluster"]
    admin = yaml.safe_load(Path(shell["KUBECONFIG"]).read_text())["users"][0]["user"]
    built = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": cluster["endpoint"],
                                               "certificate-authority-data": cluster["certificateAuthority"]["data"]}}],
        "users": [{"name": "u", "user": admin}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }
    path = tmp_path / "from-describe-cluster"
    path.write_text(yaml.safe_dump(built))
    assert base64.b64decode(cluster["certificateAuthority"]["data"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert kubectl(dict(shell, KUBECONFIG=str(path)), "get", "--raw", "/readyz") == "ok"


def test_workshop_network(running: Any) -> None:
    shell, _ = running
    ec2 = boto3.client("ec2", endpoint_url=shell["AWS_ENDPOINT_URL"], region_name=shell["AWS_REGION"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    subnets = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": [
        "10.11.64.0/20", "10.11.80.0/20", "10.11.96.0/20", "10.11.0.0/20", "10.11.16.0/20", "10.11.32.0/20"]}])["Subnets"]
    tags = {s["CidrBlock"]: {t["Key"]: t["Value"] for t in s.get("Tags", [])} for s in subnets}
    private = sorted(c for c, t in tags.items() if t.get("kubernetes.io/role/internal-elb") == "1")
    public = sorted(c for c, t in tags.items() if t.get("kubernetes.io/role/elb") == "1")
    assert private == ["10.11.64.0/20", "10.11.80.0/20", "10.11.96.0/20"]
    assert len(public) == 3
    zones = sorted(s["AvailabilityZone"] for s in subnets if s["CidrBlock"] in private)
    assert zones == ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
    for s in subnets:
        routes = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [s["SubnetId"]]}])
        targets = {r.get("GatewayId") or r.get("NatGatewayId") for t in routes["RouteTables"] for r in t["Routes"]
                   if r.get("DestinationCidrBlock") == "0.0.0.0/0"}
        prefix = "nat-" if s["CidrBlock"] in private else "igw-"
        assert targets and all(str(t).startswith(prefix) for t in targets), (s["CidrBlock"], targets)


def test_down_leaves_no_process_and_frees_ports(user_env: dict[str, str]) -> None:
    up = fargate_lab("up", env=user_env)
    assert up.returncode == 0, up.stderr
    state = json.loads((Path(user_env["FARGATE_LABS_STATE"]) / "envtest" / "state.json").read_text())
    ports = [c["port"] for c in state["components"] if c["port"]]
    assert len(ports) >= 4
    down = fargate_lab("down", env=user_env)
    assert down.returncode == 0, down.stderr
    assert process.tagged_pids(state["run_id"]) == []
    assert all(process.port_is_free(p) for p in ports)
    assert not (Path(user_env["FARGATE_LABS_STATE"]) / "envtest").exists()
    assert not Path(state["etcd_data"]).exists()


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("fargate-lab: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_down_with_nothing_up(user_env: dict[str, str]) -> None:
    result = fargate_lab("down", env=user_env)
    assert result.returncode == ExitCode.NOT_RUNNING
    assert "nothing to stop" in one_error_line(result)


def test_up_twice(running: Any, user_env: dict[str, str]) -> None:
    _, state = running
    result = fargate_lab("up", env=user_env)
    assert result.returncode == ExitCode.ALREADY_RUNNING
    assert "already up" in one_error_line(result)
    assert all(process.alive(c["pid"], state["run_id"]) for c in state["components"])


def test_stale_state_of_a_killed_run_is_cleared(user_env: dict[str, str]) -> None:
    first = fargate_lab("up", env=user_env)
    assert first.returncode == 0, first.stderr
    state = json.loads((Path(user_env["FARGATE_LABS_STATE"]) / "envtest" / "state.json").read_text())
    for c in state["components"]:
        os.kill(c["pid"], signal.SIGKILL)
    wait_for(lambda: not process.tagged_pids(state["run_id"]), 10)
    status = fargate_lab("status", env=user_env)
    assert status.returncode == ExitCode.START_FAILED and "DEAD" in status.stdout
    again = fargate_lab("up", env=user_env)
    try:
        assert again.returncode == 0, again.stderr
        assert f"removed stale state of environment 'envtest' (run {state['run_id']})" in again.stderr
    finally:
        fargate_lab("down", env=user_env)


def test_port_already_taken(user_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = fargate_lab("up", "--apiserver-port", str(port), env=user_env)
    assert result.returncode == ExitCode.PORT_IN_USE
    assert f"port {port} is already taken" in one_error_line(result)
    assert not (Path(user_env["FARGATE_LABS_STATE"]) / "envtest" / "state.json").exists()


def test_corrupt_cached_binary(user_env: dict[str, str], tmp_path: Path) -> None:
    from fargatelab.local.binaries import KUBERNETES_VERSION, cache_root

    source = cache_root() / f"k8s-{KUBERNETES_VERSION}" / "bin"
    cache = tmp_path / "cache"
    target = cache / f"k8s-{KUBERNETES_VERSION}" / "bin"
    target.mkdir(parents=True)
    for f in source.iterdir():
        os.link(f, target / f.name) if f.name != "kube-scheduler" else None
    (target / "kube-scheduler").write_bytes(b"truncated")
    (target / "kube-scheduler").chmod(0o755)
    # No Go on PATH and no network: the corrupt binary cannot be replaced, and up must say so.
    env = dict(user_env, FARGATE_LABS_CACHE=str(cache), PATH="/usr/bin:/bin")
    result = fargate_lab("up", env=env, timeout=120)
    assert "kube-scheduler: checksum differs" in result.stderr
    assert result.returncode == ExitCode.MISSING_BINARY
    assert "install Go" in one_error_line(result)
    assert not (cache / f"k8s-{KUBERNETES_VERSION}").exists() or not (target / "kube-scheduler").exists()
