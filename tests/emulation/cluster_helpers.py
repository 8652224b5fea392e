"""What the end-to-end tests of a local environment do again and again: kubectl against it, waiting for a
state, and a namespace whose pods go to Fargate."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any, Callable

from fargatelab.local.environment import LocalEnvironment


def kubectl(env: LocalEnvironment, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, KUBECONFIG=env.handle().kubeconfig))


def until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """``check()``'s first true value within ``timeout`` seconds; else fail naming ``what`` and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def fargate_profile(env: LocalEnvironment, eks: Any, role: str, name: str, namespace: str | None = None) -> None:
    """A Fargate profile ``name`` selecting ``namespace`` (the namespace is created when given), ACTIVE."""
    h = env.handle()
    eks.create_fargate_profile(clusterName=h.cluster_name, fargateProfileName=name, podExecutionRoleArn=role,
                               selectors=[{"namespace": namespace or "default"}])
    until(lambda: eks.describe_fargate_profile(clusterName=h.cluster_name, fargateProfileName=name)
          ["fargateProfile"]["status"] == "ACTIVE", 60, f"profile {name} ACTIVE")
    if namespace and namespace != "default":
        assert kubectl(env, "create", "namespace", namespace).returncode == 0
