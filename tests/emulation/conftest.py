"""Fixtures of the emulation tests: each module runs against a local environment of its own."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import boto3
import pytest

from fargatelab.local.environment import EnvironmentConfig, LocalEnvironment


@pytest.fixture(scope="module")
def local_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalEnvironment]]:
    """``local_environment(name, **config)``: ``LocalEnvironment(name)``, up with ``EnvironmentConfig(name, **config)``.

    The module's environments keep their state in a temporary directory (``FARGATE_LABS_STATE``) and are
    taken down when the module ends.
    """
    os.environ["FARGATE_LABS_STATE"] = str(tmp_path_factory.mktemp("state"))
    started: list[LocalEnvironment] = []

    def up(name: str, **config: Any) -> LocalEnvironment:
        environment = LocalEnvironment(name)
        started.append(environment)
        environment.up(EnvironmentConfig(name=name, **config), progress=lambda _: None)
        return environment

    try:
        yield up
    finally:
        for environment in reversed(started):
            environment.down(quiet=True)
        del os.environ["FARGATE_LABS_STATE"]


@pytest.fixture(scope="module")
def aws(env: LocalEnvironment) -> Callable[[str], Any]:
    """boto3 clients for the AWS endpoint of the module's environment (its ``env`` fixture): ``aws("eks")``."""
    h = env.handle()
    return lambda service: boto3.client(service, endpoint_url=h.aws_endpoint, region_name=h.region,
                                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def pod_execution_role(aws: Callable[[str], Any]) -> str:
    """The ARN of the Fargate pod execution role in the environment's seed."""
    return next(r["Arn"] for r in aws("iam").list_roles()["Roles"] if "FargatePodExecutionRole" in r["RoleName"])
