"""The eks backend end to end, against the local environment presenting itself as EKS (see conftest.py).

Connection, preflight and its one-line refusals, the sandbox guard, ResourceInUseException retries, the
run's final cleanup and leak check, `fargate-lab cleanup` after a killed run, and the cost estimate.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError
from kubernetes import client, config, watch

from fargatelab.scenario import wait
from fargatelab.backends import BackendOptions
from fargatelab.backends.eks import EksBackend
from fargatelab.backends.pod_execution_role import role_name
from fargatelab.cleanup.deletion import delete_run
from fargatelab.cleanup.leftovers import find_leftovers, run_load_balancers, run_target_groups
from fargatelab.eks.facts import ROLE_PATH, RUN_ID_LABEL, SANDBOX_TAG
from fargatelab.report.cost import parse_capacity
from fargatelab.errors import ExitCode, HarnessError
from fargatelab.scenario.handle import ClusterHandle
from fargatelab.scenario.kube import Kube
from fargatelab.scenario.lab import Lab
from fargatelab.rules.timing import profile

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "eksworkshop"
REGION = "ap-northeast-2"


def inject(endpoint: str, faults: list[dict[str, Any]] | None = None, method: str = "POST") -> dict[str, Any]:
    data = json.dumps(faults).encode() if faults is not None else None
    request = urllib.request.Request(f"{endpoint}/_fargatelab/inject", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local moto server
        result: dict[str, Any] = json.loads(response.read())
    return result


def fargate_lab(shell: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fargatelab.cli.main", *args], capture_output=True, text=True,
                          env=shell, timeout=timeout, cwd=REPO)


def labs(shell: dict[str, str], *args: str, timeout: float = 900, **kw: Any) -> Any:
    command = [sys.executable, "-m", "pytest", "labs/test_fargate_profile.py", "--backend", "eks",
               "--cluster", CLUSTER, "--region", REGION, "-p", "no:cacheprovider", "-q", *args]
    if kw.pop("background", False):
        return subprocess.Popen(command, env=shell, cwd=REPO, stdout=kw.pop("stdout"), stderr=subprocess.STDOUT,
                                start_new_session=True, text=True)
    return subprocess.run(command, env=shell, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def options(run_id: str, **kw: Any) -> BackendOptions:
    return BackendOptions(backend="eks", cluster=CLUSTER, region=REGION, run_id=run_id, **kw)


def run_roles(aws: Callable[[str], Any]) -> list[str]:
    return [r["RoleName"] for r in aws("iam").list_roles(PathPrefix=ROLE_PATH)["Roles"]]


def cluster_arn(aws: Callable[[str], Any]) -> str:
    return str(aws("eks").describe_cluster(name=CLUSTER)["cluster"]["arn"])


# --- preflight and safety ------------------------------------------------------------------------------


def test_preflight_connects_with_a_token_and_creates_a_tagged_role(as_user: dict[str, str], aws: Any,
                                                                  run_id: str) -> None:
    backend = EksBackend(options(run_id))
    try:
        handle = backend.handle
        assert handle.aws_endpoint is None  # boto3's own configuration, as on AWS
        assert {"pod-network", "load-balancer-http", "real-aws", "write"} <= handle.capabilities
        kubeconfig = Path(handle.kubeconfig).read_text()
        assert "fargatelab.eks.token" in kubeconfig and "client-key" not in kubeconfig
        assert Kube(handle.kubeconfig).kubectl("auth", "whoami", "-o", "json").ok
        who = json.loads(Kube(handle.kubeconfig).kubectl("auth", "whoami", "-o", "json").stdout)
        assert who["status"]["userInfo"]["username"].startswith("arn:aws:iam::")
        role = aws("iam").get_role(RoleName=role_name(run_id))["Role"]
        assert role["Path"] == ROLE_PATH
        assert {t["Key"]: t["Value"] for t in aws("iam").list_role_tags(RoleName=role_name(run_id))["Tags"]} == {
            RUN_ID_LABEL: run_id}
        assert handle.extra["pod_execution_role_arn"] == role["Arn"]
        assert re.fullmatch(r"arn:aws:iam::\d{12}:role/.*FargatePodExecutionRole.*", role["Arn"])
    finally:
        errors = delete_run(backend.scope(), progress=lambda _: None)
        backend.close()
    assert not errors
    assert role_name(run_id) not in run_roles(aws)


def test_untagged_cluster_is_refused_for_replay(as_user: dict[str, str], shell: dict[str, str], aws: Any,
                                                run_id: str) -> None:
    eks = aws("eks")
    arn = cluster_arn(aws)
    eks.untag_resource(resourceArn=arn, tagKeys=[SANDBOX_TAG])
    roles_before = run_roles(aws)
    try:
        with pytest.raises(HarnessError) as refused:
            EksBackend(options(run_id))
        assert refused.value.code == ExitCode.UNSAFE_CLUSTER
        assert "not tagged fargate-labs/sandbox=true" in str(refused.value)
        assert "\n" not in str(refused.value)
        # The whole pytest run stops with that line and exit code, before any scenario.
        result = labs(shell, "-k", "test_create_profile", "--run-id", run_id, timeout=300)
        assert result.returncode == ExitCode.UNSAFE_CLUSTER, result.stdout + result.stderr
        assert "refusing to replay on EKS cluster 'eksworkshop'" in result.stdout + result.stderr
        # Check mode reads only: allowed, and it creates nothing.
        check = EksBackend(options(run_id, mode="check"))
        assert "write" not in check.handle.capabilities
        check.close()
        assert run_roles(aws) == roles_before
        # The explicit override replays anyway.
        forced = EksBackend(options(run_id, allow_unsafe=True))
        assert delete_run(forced.scope(), progress=lambda _: None) == []
        forced.close()
    finally:
        eks.tag_resource(resourceArn=arn, tags={SANDBOX_TAG: "true"})
    assert run_roles(aws) == roles_before


@pytest.mark.parametrize("case,code", [
    ("no credentials", ExitCode.NO_CREDENTIALS),
    ("unknown cluster", ExitCode.BACKEND_UNAVAILABLE),
    ("missing pod execution role", ExitCode.NOT_FARGATE_READY),
    ("bad run id", ExitCode.USAGE),
])
def test_preflight_failures_are_one_line_with_their_code(as_user: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                         run_id: str, case: str, code: int) -> None:
    opts = options(run_id)
    if case == "no credentials":
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(key)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    elif case == "unknown cluster":
        opts = BackendOptions(backend="eks", cluster="nope", region=REGION, run_id=run_id)
    elif case == "missing pod execution role":
        opts = options(run_id, pod_execution_role_arn="arn:aws:iam::123456789012:role/missing")
    else:
        opts = options("Not A Run Id")
    with pytest.raises(HarnessError) as failed:
        EksBackend(opts)
    assert failed.value.code == code
    assert "\n" not in str(failed.value)


def test_missing_load_balancer_controller_is_refused(as_user: dict[str, str], eks_env: ClusterHandle,
                                                     run_id: str) -> None:
    config.load_kube_config(config_file=eks_env.kubeconfig)
    net = client.NetworkingV1Api()
    saved = net.read_ingress_class("alb")
    net.delete_ingress_class("alb")
    try:
        with pytest.raises(HarnessError) as failed:
            EksBackend(options(run_id, mode="check"))
        assert failed.value.code == ExitCode.NO_LOAD_BALANCER_CONTROLLER
        assert "ingress.k8s.aws/alb" in str(failed.value)
    finally:
        net.create_ingress_class({"metadata": {"name": "alb", "labels": saved.metadata.labels},
                                  "spec": {"controller": saved.spec.controller}})


# --- retries -------------------------------------------------------------------------------------------


def test_a_role_not_yet_propagated_is_retried_and_a_bad_one_refused(as_user: dict[str, str],
                                                                      eks_env: ClusterHandle, run_id: str) -> None:
    backend = EksBackend(options(run_id))
    handle = backend.handle
    refusal = {"action": "CreateFargateProfile", "error": "InvalidParameterException",
               "message": "Misconfigured PodExecutionRole Trust Policy; "
                          "Please add the eks-fargate-pods.amazonaws.com Service Principal"}
    lab = Lab(handle, Kube(handle.kubeconfig), lambda s: backend.conn.aws(s), profile("fast"))
    try:
        inject(eks_env.aws_endpoint or "", [{**refusal, "count": 2}])
        assert lab.create_profile("propagated", [{"namespace": f"propagated-{run_id}"}])["status"] == "ACTIVE"
        assert inject(eks_env.aws_endpoint or "", method="GET")["pending"] == []
        # Any other invalid parameter is the caller's mistake: raised at once, nothing retried.
        inject(eks_env.aws_endpoint or "", [{**refusal, "message": "Subnet is not private", "count": 2}])
        with pytest.raises(Exception, match="Subnet is not private"):
            lab.create_profile("refused", [{"namespace": f"refused-{run_id}"}])
        assert len(inject(eks_env.aws_endpoint or "", method="GET")["pending"]) == 1
    finally:
        inject(eks_env.aws_endpoint or "", method="DELETE")
        lab.cleanup()
        backend.close()


def test_injected_resource_in_use_is_retried(as_user: dict[str, str], eks_env: ClusterHandle, aws: Any,
                                            run_id: str) -> None:
    backend = EksBackend(options(run_id))
    handle = backend.handle
    try:
        inject(eks_env.aws_endpoint or "", [{"action": "CreateFargateProfile", "error": "ResourceInUseException",
                                             "count": 2}])
        lab = Lab(handle, Kube(handle.kubeconfig), lambda s: backend.conn.aws(s), profile("fast"))
        started = time.monotonic()
        made = lab.create_profile("retried", [{"namespace": f"retried-{run_id}"}])
        assert made["status"] == "ACTIVE"
        assert time.monotonic() - started >= 3.0  # two backoffs: 1 s, then 2 s
        assert inject(eks_env.aws_endpoint or "", method="GET")["pending"] == []
        # Cleanup retries as well: the first two deletions are refused.
        inject(eks_env.aws_endpoint or "", [{"action": "DeleteFargateProfile", "error": "ResourceInUseException",
                                             "count": 2}])
        lab.cleanup()
        assert inject(eks_env.aws_endpoint or "", method="GET")["pending"] == []
        names = aws("eks").list_fargate_profiles(clusterName=CLUSTER)["fargateProfileNames"]
        assert f"retried-{run_id}" not in names
    finally:
        inject(eks_env.aws_endpoint or "", method="DELETE")
        assert delete_run(backend.scope(), progress=lambda _: None) == []
        assert find_leftovers(backend.scope()) == []
        backend.close()


# --- whole runs ----------------------------------------------------------------------------------------


class PodObserver:
    """The test's own record of the run's pods: creation time, capacity, and when each was seen deleted."""

    def __init__(self, kubeconfig: str, run_id: str) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.core = client.CoreV1Api(client.ApiClient(cfg))
        self.run_id = run_id
        self.pods: dict[str, dict[str, Any]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        version = self.core.list_pod_for_all_namespaces().metadata.resource_version
        while not self.stop.is_set():
            for event in watch.Watch().stream(self.core.list_pod_for_all_namespaces, resource_version=version,
                                              timeout_seconds=2):
                pod = event["object"]
                version = pod.metadata.resource_version
                if not pod.metadata.namespace.endswith(f"-{self.run_id}"):
                    continue
                seen = self.pods.setdefault(pod.metadata.uid, {
                    "namespace": pod.metadata.namespace, "name": pod.metadata.name,
                    "created": pod.metadata.creation_timestamp.timestamp(), "capacity": None, "deleted": None})
                capacity = (pod.metadata.annotations or {}).get("CapacityProvisioned")
                if capacity:
                    seen["capacity"] = capacity
                if event["type"] == "DELETED":
                    seen["deleted"] = time.time()


def test_lab1_through_the_eks_backend_and_its_cost(eks_env: ClusterHandle, shell: dict[str, str], aws: Any,
                                                   run_id: str) -> None:
    observer = PodObserver(eks_env.kubeconfig, run_id)
    observer.thread.start()
    result = labs(shell, "--run-id", run_id)
    observer.stop.set()
    observer.thread.join(timeout=10)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "10 passed" in out
    assert f"leak check: nothing tagged with run {run_id} remains" in out
    assert "cost estimate: Fargate" in out
    # Nothing of the run is left in any AWS service or the cluster.
    assert not [r for r in run_roles(aws) if run_id in r]
    assert not [p for p in aws("eks").list_fargate_profiles(clusterName=CLUSTER)["fargateProfileNames"] if run_id in p]
    leaks = json.loads((REPO / "reports" / run_id / "leaks.json").read_text())
    assert leaks["leftovers"] == [] and leaks["cleanup_errors"] == []

    # The estimate: CapacityProvisioned x observed lifetime (per second, one-minute minimum), per pod.
    report = json.loads((REPO / "reports" / run_id / "cost.json").read_text())
    billed = {uid: p for uid, p in observer.pods.items() if p["capacity"]}
    assert billed, "Lab 1 runs pods on Fargate"
    records = {r["uid"]: r for r in report["fargate"]["pod_records"]}
    assert set(records) == set(billed)
    vcpu_hours = gb_hours = 0.0
    for uid, seen in billed.items():
        record = records[uid]
        assert (record["namespace"], record["name"], record["capacity"]) == (
            seen["namespace"], seen["name"], seen["capacity"])
        assert record["start"] == pytest.approx(seen["created"], abs=0.001)
        assert seen["deleted"] is not None and record["end"] == pytest.approx(seen["deleted"], abs=3.0)
        lifetime = max(60, -(-(seen["deleted"] - seen["created"]) // 1))
        vcpu, gb = parse_capacity(seen["capacity"])
        vcpu_hours += vcpu * lifetime / 3600
        gb_hours += gb * lifetime / 3600
    assert report["fargate"]["vcpu_hours"] == pytest.approx(vcpu_hours, rel=0.02)
    assert report["fargate"]["gb_hours"] == pytest.approx(gb_hours, rel=0.02)
    prices = report["prices"]
    assert prices["region"] == "ap-northeast-2" and prices["source"] and prices["as_of"]
    assert report["fargate"]["cost"] == pytest.approx(
        vcpu_hours * prices["fargate_vcpu_hour"] + gb_hours * prices["fargate_gb_hour"], rel=0.02)


def _ingress(api: client.ApiClient, namespace: str, run_id: str) -> None:
    core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
    labels = {RUN_ID_LABEL: run_id}
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "web", "labels": labels},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}})
    net.create_namespaced_ingress(namespace, {
        "metadata": {"name": "web", "labels": labels,
                     "annotations": {"alb.ingress.kubernetes.io/target-type": "ip",
                                     "alb.ingress.kubernetes.io/scheme": "internet-facing",
                                     "alb.ingress.kubernetes.io/tags": f"{RUN_ID_LABEL}={run_id}"}},
        "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [{
            "path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})


HOLD_BEFORE_TEARDOWN = """
import os, pathlib, time
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    pathlib.Path(os.environ["HELD_MARK"]).write_text(item.nodeid)
    time.sleep(3600)
"""


def test_interrupted_run_is_cleaned_up_by_the_cleanup_command(eks_env: ClusterHandle, shell: dict[str, str],
                                                              aws: Any, run_id: str, tmp_path: Path) -> None:
    # The step's own cleanup follows its last assertion at once; the run is held just before it so that the
    # kill lands while everything the step made is still there, not while it is being deleted.
    (tmp_path / "hold_before_teardown.py").write_text(HOLD_BEFORE_TEARDOWN)
    held = tmp_path / "held"
    held_shell = {**shell, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), shell.get("PYTHONPATH")])),
                  "HELD_MARK": str(held)}
    log = open(tmp_path / "labs.log", "w")
    proc = labs(held_shell, "-k", "wildcard", "--run-id", run_id, "-p", "hold_before_teardown", background=True,
                stdout=log)
    cfg = client.Configuration()
    config.load_kube_config(config_file=eks_env.kubeconfig, client_configuration=cfg)
    api = client.ApiClient(cfg)
    core = client.CoreV1Api(api)
    namespace = f"study-lab1-{run_id}"  # Lab 1's wildcard step
    try:
        wait.until(lambda: held.exists() or proc.poll() is not None, 240, "the wildcard step to reach its teardown")
        assert held.exists(), (tmp_path / "labs.log").read_text()
        assert [p for p in core.list_namespaced_pod(namespace).items if p.status.phase == "Running"]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no teardown, no final cleanup: as if the machine died
        proc.wait(timeout=30)
        log.close()
    # The run left a namespace, a Fargate profile and its pod execution role; add a load balancer to it.
    _ingress(api, namespace, run_id)
    elbv2 = aws("elbv2")
    wait.until(lambda: run_load_balancers(elbv2, run_id, [CLUSTER]) and run_target_groups(elbv2, run_id, [CLUSTER]),
               120, "the controller's ALB for the leftover Ingress")

    leaks = fargate_lab(shell, "leaks", "--run-id", run_id, "--cluster", CLUSTER, "--region", REGION)
    assert leaks.returncode == ExitCode.LEAKED_RESOURCES, leaks.stdout + leaks.stderr
    for expected in (f"namespace {namespace}", f"Fargate profile study-wildcard-{run_id}",
                     f"IAM role {role_name(run_id)}", "load balancer", "target group"):
        assert expected in leaks.stdout, leaks.stdout

    cleaned = fargate_lab(shell, "cleanup", "--run-id", run_id, "--cluster", CLUSTER, "--region", REGION)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert f"leak check: nothing of run {run_id} remains" in cleaned.stdout
    order = [line.split()[1] for line in cleaned.stdout.splitlines() if line.startswith("deleted ")]
    assert order.index("namespace") < order.index("Fargate") < order.index("IAM")

    again = fargate_lab(shell, "leaks", "--run-id", run_id, "--cluster", CLUSTER, "--region", REGION)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not run_load_balancers(elbv2, run_id, [CLUSTER]) and not run_target_groups(elbv2, run_id, [CLUSTER])
    assert not [p for p in aws("eks").list_fargate_profiles(clusterName=CLUSTER)["fargateProfileNames"] if run_id in p]
    assert role_name(run_id) not in run_roles(aws)
    assert not core.list_namespace(label_selector=f"{RUN_ID_LABEL}={run_id}").items


def test_cleanup_command_takes_down_local_environments_of_the_run(shell: dict[str, str], tmp_path: Path) -> None:
    from fargatelab.local.environment import LocalEnvironment

    state = json.dumps({"name": "gone", "run_id": "zz9", "components": [], "ready": False})
    env_dir = Path(shell["FARGATE_LABS_STATE"]) / "stale-zz9"
    env_dir.mkdir(parents=True)
    (env_dir / "state.json").write_text(state)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                               env={**shell, "FARGATE_LABS_RUN_ID": "zz9"}, start_new_session=True)
    result = fargate_lab(shell, "cleanup", "--run-id", "zz9")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "took down local environment 'stale-zz9'" in result.stdout
    assert not env_dir.exists()
    assert sleeper.wait(timeout=10) != 0
    assert LocalEnvironment("stale-zz9").state() is None


def test_a_killed_eksctl_replay_leaves_its_stack_to_the_cleanup_command(eks_env: ClusterHandle,
                                                                        shell: dict[str, str], aws: Any,
                                                                        run_id: str, tmp_path: Path) -> None:
    """Lab 1's eksctl makes its own CloudFormation stack for the pod execution role (the cluster is not
    eksctl's). A run killed before its cleanup leaves it, and its role, in the account: `fargate-lab leaks`
    lists the stack by the run tag on its role, and `fargate-lab cleanup` deletes it after the profile."""
    (tmp_path / "hold_before_teardown.py").write_text(HOLD_BEFORE_TEARDOWN)
    held = tmp_path / "held"
    held_shell = {**shell, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), shell.get("PYTHONPATH")])),
                  "HELD_MARK": str(held)}
    stack = f"eksctl-{CLUSTER}-fargate"
    log = open(tmp_path / "labs.log", "w")
    proc = labs(held_shell, "-k", "create_profile", "--run-id", run_id, "-p", "hold_before_teardown",
                background=True, stdout=log)
    try:
        wait.until(lambda: held.exists() or proc.poll() is not None, 240, "Lab 1's profile step to reach its teardown")
        assert held.exists(), (tmp_path / "labs.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    cfn = aws("cloudformation")
    assert cfn.describe_stacks(StackName=stack)["Stacks"], "eksctl made no stack: nothing was tested"

    leaks = fargate_lab(shell, "leaks", "--run-id", run_id, "--cluster", CLUSTER, "--region", REGION)
    assert leaks.returncode == ExitCode.LEAKED_RESOURCES, leaks.stdout + leaks.stderr
    assert f"eksctl's CloudFormation stack {stack}" in leaks.stdout, leaks.stdout
    assert f"Fargate profile fargate-game-2048-{run_id}" in leaks.stdout, leaks.stdout

    cleaned = fargate_lab(shell, "cleanup", "--run-id", run_id, "--cluster", CLUSTER, "--region", REGION)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    order = [line for line in cleaned.stdout.splitlines() if line.startswith("deleted ")]
    assert [i for i, line in enumerate(order) if "Fargate profile" in line] < \
        [i for i, line in enumerate(order) if f"stack {stack}" in line], order
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName=stack)
