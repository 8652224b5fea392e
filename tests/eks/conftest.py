"""The eks backend against the local environment presenting itself as EKS.

One local environment is started for the session (in its own state directory) and the eks backend is
pointed at it exactly as a user would point it at AWS: ``AWS_ENDPOINT_URL`` and credentials in the
environment, ``--backend eks --cluster eksworkshop``. Nothing in the backend knows the difference.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest

from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment
from fargatelab.errors import HarnessError
from fargatelab.scenario.handle import ClusterHandle

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "eksworkshop"
REGION = "ap-northeast-2"


@pytest.fixture(scope="session")
def eks_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterHandle]:
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FARGATE_LABS_STATE", str(state))
        env = LocalEnvironment(f"eks-{os.getpid()}")
        try:
            handle = env.up(EnvironmentConfig(name=env.name, cluster_name=CLUSTER, region=REGION))
        except HarnessError as err:
            env.down(quiet=True)
            pytest.fail(f"the local environment did not start: {err}")
        try:
            yield handle
        finally:
            env.down(quiet=True)


@pytest.fixture(scope="session")
def shell(eks_env: ClusterHandle) -> dict[str, str]:
    """A user's environment for the eks backend: AWS settings only, no kubeconfig."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBECONFIG", "AWS_PROFILE", "FARGATE_LABS_ENV", "PYTEST_XDIST_WORKER")
           and not k.startswith("PYTEST_")}
    env.update(eks_env.aws_environment())
    env["FARGATE_LABS_STATE"] = os.environ.get("FARGATE_LABS_STATE") or str(Path(eks_env.extra["state_dir"]).parent)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def as_user(shell: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process configured like ``shell`` (for in-process backend calls)."""
    for key in ("KUBECONFIG", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in shell.items():
        if key.startswith(("AWS_", "FARGATE_LABS_STATE")):
            monkeypatch.setenv(key, value)
    return shell


@pytest.fixture
def aws(eks_env: ClusterHandle) -> Callable[[str], Any]:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION)
    return lambda service: session.client(service, endpoint_url=eks_env.aws_endpoint)


@pytest.fixture
def run_id() -> str:
    return "t" + uuid.uuid4().hex[:7]


