"""Fixtures for tests against the local EKS-on-Fargate environment (`fargate-lab up`).

The environment named by ``FARGATE_LABS_ENV`` (else ``default``) is used when it is up; otherwise the
session starts its own, named ``pytest-<pid>``, and takes it down at the end (under pytest-xdist that is
one environment per worker: start one with `fargate-lab up` first to share it). Every test talks to it
the way a user would: the kubeconfig for Kubernetes, boto3 at the moto endpoint for AWS.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from typing import Any, Callable, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fargatelab.scenario import conditions as cond
from fargatelab.scenario import wait
from fargatelab.emulator.kube import Clients, connect, status_of
from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.errors import HarnessError
from fargatelab.scenario.handle import ClusterHandle

@pytest.fixture(scope="session")
def environment() -> Iterator[ClusterHandle]:
    env = LocalEnvironment(os.environ.get("FARGATE_LABS_ENV") or "default")
    if env.is_up():
        yield env.handle()
        return
    own = LocalEnvironment(f"pytest-{os.getpid()}")
    try:
        handle = own.up(EnvironmentConfig(name=own.name))
    except HarnessError as err:
        own.down(quiet=True)
        pytest.fail(f"the local environment did not start: {err}")
    try:
        yield handle
    finally:
        own.down(quiet=True)


@pytest.fixture(scope="session")
def kube(environment: ClusterHandle) -> Clients:
    return connect(environment.kubeconfig)


@pytest.fixture(scope="session")
def aws(environment: ClusterHandle) -> Callable[[str], Any]:
    """boto3 clients for the environment's AWS endpoint: ``aws("elbv2")``."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=environment.region)
    config = Config(retries={"total_max_attempts": 2})

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=environment.aws_endpoint, config=config)

    return client


@pytest.fixture(scope="session")
def seed(environment: ClusterHandle) -> dict[str, Any]:
    """The ids of the seeded workshop VPC, subnets and roles (moto server control endpoint)."""
    with urllib.request.urlopen(f"{environment.aws_endpoint}/_fargatelab/seed", timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def _retry_in_use(call: Callable[[], Any], timeout: float = 300.0) -> Any:
    # Only one profile per cluster may be CREATING or DELETING: wait for the other one's turn.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceInUseException" or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


@pytest.fixture(scope="session")
def fargate_namespace(environment: ClusterHandle, kube: Clients, aws: Callable[[str], Any],
                      seed: dict[str, Any]) -> Iterator[Callable[[str], str]]:
    """Factory: a fresh namespace with an ACTIVE Fargate profile selecting it; both removed at the end."""
    eks = aws("eks")
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        kube.core.create_namespace({"metadata": {"name": name}})
        made.append(name)
        _retry_in_use(lambda: eks.create_fargate_profile(
            clusterName=environment.cluster_name, fargateProfileName=name,
            podExecutionRoleArn=seed["pod_execution_role_arn"], selectors=[{"namespace": name}]))
        wait.for_(cond.ProfileStatus(eks, environment.cluster_name, name, "ACTIVE"), 300)
        # The admission webhook learns of the profile a moment later; a pod created before that stays off
        # Fargate (Pending for good), so wait until a dry-run pod comes back mutated for Fargate.
        probe = {"metadata": {"generateName": "probe-"},
                 "spec": {"containers": [{"name": "probe", "image": "busybox"}]}}
        wait.until(lambda: kube.core.create_namespaced_pod(name, probe, dry_run="All").spec.scheduler_name
                   == "fargate-scheduler", 60, f"the webhook to place pods of {name} on Fargate")
        return name

    yield make
    for name in made:
        try:
            kube.core.delete_namespace(name)
        except Exception as exc:
            if status_of(exc) != 404:
                raise
        try:
            _retry_in_use(lambda: eks.delete_fargate_profile(clusterName=environment.cluster_name,
                                                             fargateProfileName=name))
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
