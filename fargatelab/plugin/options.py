"""The labs' command-line options and markers."""

from __future__ import annotations

import argparse
import os
from typing import Callable

import pytest

from ..backends import BACKENDS, BackendOptions
from ..backends.capabilities import DATA_PLANES, default_data_plane
from ..errors import HarnessError
from ..rules.naming import validate_cluster_name, validate_run_id
from ..rules.timing import PROFILES
from .run import owns_run, run_id

__all__ = ["backend_options"]


def _argument(check: Callable[[str], str]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        try:
            return check(value)
        except HarnessError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = check.__name__.replace("validate_", "")
    return parse


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fargate-labs", "EKS-on-Fargate workshop labs")
    group.addoption("--backend", choices=BACKENDS, default="local",
                    help="local (default: a local EKS-on-Fargate environment), kind, or eks")
    group.addoption("--mode", choices=("replay", "check"), default="replay",
                    help="replay: create, assert, clean up; check: read-only self-check of a student's cluster")
    group.addoption("--cluster", default="eksworkshop", type=_argument(validate_cluster_name),
                    help="EKS cluster name")
    group.addoption("--region", default="ap-northeast-2", help="AWS region of the cluster (default ap-northeast-2)")
    group.addoption("--keep", action="store_true", help="leave what the run created in place")
    group.addoption("--run-id", default=None, type=_argument(validate_run_id),
                    help="run id tagging everything created (default: random)")
    group.addoption("--timing", choices=tuple(PROFILES), default="fast",
                    help="emulated latencies: fast, or eks (documented EKS latencies)")
    group.addoption("--data-plane", choices=DATA_PLANES, default=os.environ.get("FARGATE_LABS_DATA_PLANE") or "auto",
                    help="local backend: microvm (every Fargate pod runs for real in a microVM of its own; Linux, "
                         "root), kwok (simulated pods), or auto (default, $FARGATE_LABS_DATA_PLANE): microvm where "
                         "the host can, else kwok, said in one line")
    group.addoption("--timing-scale", type=float, default=1.0, help="multiply emulated latencies")
    group.addoption("--reuse", nargs="?", const=os.environ.get("FARGATE_LABS_ENV", "default"), default=None,
                    metavar="ENV", help="reuse a local environment already `up` (default name: $FARGATE_LABS_ENV)")
    group.addoption("--pod-execution-role-arn", default=None,
                    help="eks: use this Fargate pod execution role instead of creating one for the run")
    group.addoption("--i-understand-this-creates-resources", dest="allow_unsafe", action="store_true",
                    help="eks: replay on a cluster that is not tagged fargate-labs/sandbox=true")
    group.addoption("--kube-context", nargs="?", const="", default=None, metavar="CONTEXT",
                    help="eks: take the cluster name and region from this kubeconfig context (default: the current)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab(name, document, waits=0): the workshop lab and document a scenario "
                            "replays; ``waits``: seconds of documented waiting no backend can shorten (a TTL, say)")
    config.addinivalue_line("markers", "needs(capability): skip unless the backend can do this")
    config.addinivalue_line("markers", "replay_only: the step changes the cluster, so check mode skips it")
    if config.option.data_plane not in DATA_PLANES:  # from $FARGATE_LABS_DATA_PLANE: argparse checks only flags
        try:
            default_data_plane({"FARGATE_LABS_DATA_PLANE": config.option.data_plane})
        except HarnessError as err:
            raise pytest.UsageError(str(err)) from None


def backend_options(config: pytest.Config) -> BackendOptions:
    o = config.option
    return BackendOptions(backend=o.backend, mode=o.mode, cluster=o.cluster, region=o.region, run_id=run_id(config),
                          timing=o.timing, timing_scale=o.timing_scale, reuse=o.reuse,
                          pod_execution_role_arn=o.pod_execution_role_arn, allow_unsafe=o.allow_unsafe,
                          kube_context=o.kube_context, keep=o.keep, owner=owns_run(config),
                          data_plane=o.data_plane)
