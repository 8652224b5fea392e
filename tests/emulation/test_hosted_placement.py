"""Hosted placement (how the kind backend runs): pods on a real worker, a shadow Fargate node per pod.

Here the worker is a simulated EC2 node run by KWOK, so the mode is tested without Docker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Iterator

import boto3
import pytest

from fargatelab.scenario import conditions as cond
from fargatelab.scenario import wait

pytestmark = pytest.mark.integration

WORKER = "ip-10-11-64-10.ap-northeast-2.compute.internal"


def run(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, env=env, input=stdin, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = dict(os.environ, FARGATE_LABS_STATE=str(tmp_path_factory.mktemp("state")), FARGATE_LABS_ENV="hosted")
    up = subprocess.run([sys.executable, "-m", "fargatelab.cli.main", "up", "--placement", "hosted"],
                        capture_output=True, text=True, env=env, timeout=300)
    assert up.returncode == 0, up.stderr
    for line in up.stdout.splitlines():
        key, _, value = line[len("export "):].partition("=")
        env[key] = value.strip("'")
    try:
        yield env
    finally:
        subprocess.run([sys.executable, "-m", "fargatelab.cli.main", "down"], env=env, timeout=120)


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    out = run("kubectl", *args, env=env, stdin=stdin)
    return json.loads(out) if "-o" in args and "json" in args else out


def test_pods_run_on_the_worker_with_a_shadow_fargate_node_each(hosted: dict[str, str]) -> None:
    worker = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": WORKER, "labels": {
        "eks.amazonaws.com/compute-type": "ec2", "kubernetes.io/hostname": WORKER, "kubernetes.io/os": "linux"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.11.64.10"}],
                   "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                   "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}}
    kubectl(hosted, "apply", "-f", "-", stdin=json.dumps(worker))
    aws = dict(endpoint_url=hosted["AWS_ENDPOINT_URL"], region_name=hosted["AWS_REGION"],
               aws_access_key_id="testing", aws_secret_access_key="testing")
    eks, iam = boto3.client("eks", **aws), boto3.client("iam", **aws)
    role = next(r["Arn"] for r in iam.list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"])
    eks.create_fargate_profile(clusterName="eksworkshop", fargateProfileName="hosted", podExecutionRoleArn=role,
                               selectors=[{"namespace": "hosted"}])
    wait.for_(cond.ProfileStatus(eks, "eksworkshop", "hosted", "ACTIVE"), 60)
    time.sleep(1)  # the emulation polls the profiles
    kubectl(hosted, "create", "namespace", "hosted")
    kubectl(hosted, "-n", "hosted", "create", "deployment", "web", "--image=nginx", "--replicas=3")

    def settled() -> Any:
        pods = kubectl(hosted, "-n", "hosted", "get", "pods", "-o", "json")["items"]
        shadows = kubectl(hosted, "get", "nodes", "-l", "eks.amazonaws.com/compute-type=fargate", "-o", "json")["items"]
        ips = sorted(p["status"].get("podIP", "") for p in pods if p["status"].get("phase") == "Running")
        node_ips = sorted(a["address"] for n in shadows for a in n["status"]["addresses"] if a["type"] == "InternalIP")
        return (pods, shadows) if len(ips) == 3 and ips == node_ips else None

    pods, shadows = wait.until(settled, 60, "three pods Running, a shadow Fargate node each")
    assert {p["spec"]["nodeName"] for p in pods} == {WORKER}
    assert all(p["spec"]["schedulerName"] == "fargate-scheduler" for p in pods)
    for node in shadows:
        ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        assert node["metadata"]["name"] == f"fargate-ip-{ip.replace('.', '-')}.ap-northeast-2.compute.internal"
        assert {"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"} in node["spec"]["taints"]

    kubectl(hosted, "-n", "hosted", "scale", "deployment", "web", "--replicas=1")
    wait.until(lambda: len(kubectl(hosted, "get", "nodes", "-l", "eks.amazonaws.com/compute-type=fargate",
                                   "-o", "json")["items"]) == 1, 60, "one shadow Fargate node left")
