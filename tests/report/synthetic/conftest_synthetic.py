"""conftest.py of the synthetic lab (copied next to it into a temporary directory by the tests).

Stands in for a cluster: a fake backend whose handle names a cluster and its Kubernetes version, and
a ``lab`` fixture that is the real :class:`~fargatelab.scenario.lab.Lab` with canned diagnostics, registered
the way the real fixture registers it, so the real plugin attaches them to a failing step's report.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from fargatelab.errors import ExitCode, HarnessError
from fargatelab.scenario.handle import ClusterHandle
from fargatelab.scenario.lab import Lab

pytest_plugins = ["fargatelab.plugin"]

HANDLE = ClusterHandle(kubeconfig="/nonexistent/kubeconfig", cluster_name="synthetic-cluster",
                       region="ap-northeast-2", run_id="synthetic", kubernetes_version="v1.34.4-synthetic")

DIAGNOSTICS = [
    ("events in fargate-game-2048",
     "LAST SEEN   TYPE      REASON             OBJECT                       MESSAGE\n"
     "12s         Warning   FailedScheduling   pod/deployment-2048-7d9c-x   "
     "Pod not supported on Fargate: fields not supported: HostNetwork"),
    ("describe pods in fargate-game-2048", "Name:         deployment-2048-7d9c-x\nStatus:       Pending"),
    ("logs in fargate-game-2048", "(empty)"),
]


class FakeBackend:
    handle = HANDLE
    discards_cluster = False

    def liveness(self) -> str | None:
        return None

    def close(self) -> None:
        pass


class SyntheticLab(Lab):
    def diagnostics(self) -> list[tuple[str, str]]:
        return list(DIAGNOSTICS)


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    # Imported here, not at the top: pytest_plugins above must import the plugin first (assertion rewriting).
    from fargatelab.plugin import fixtures, run

    request.config.stash[run.BACKEND] = FakeBackend()
    the_lab = SyntheticLab(HANDLE, None, None, None, record=request.node.user_properties)  # type: ignore[arg-type]
    request.node.stash[fixtures._LAB] = the_lab
    yield the_lab


@pytest.fixture
def broken_cluster() -> None:
    """A fixture whose cluster cannot be reached: the step never starts."""
    raise HarnessError("the API server at https://127.0.0.1:6443 refused the connection", ExitCode.START_FAILED)
