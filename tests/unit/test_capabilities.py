"""Every skip reason is true of the backend it names: the backends it suggests are those that declare the
capability, and each backend's handle carries exactly what it declares."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fargatelab.backends import BACKENDS, BackendOptions
from fargatelab.backends.capabilities import DECLARED, declared, providers, skip_reason
from fargatelab.scenario.handle import Capability, ClusterHandle

CAPABILITIES = [v for k, v in vars(Capability).items() if k.isupper() and isinstance(v, str)]


def test_every_backend_declares_and_every_capability_is_described() -> None:
    assert set(DECLARED) == set(BACKENDS)
    assert set(Capability.REASONS) == set(CAPABILITIES)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_skip_suggests_only_backends_that_have_the_capability(backend: str, capability: str) -> None:
    for mode in ("replay", "check"):
        if capability in declared(backend, mode):
            continue
        reason = skip_reason(capability, backend, mode)
        suggested = re.findall(r"--backend (\w+)", reason)
        if capability == Capability.WRITE and capability in DECLARED[backend]:
            assert suggested == [] and "--mode replay" in reason, reason
            continue
        assert suggested == [b for b in providers(capability) if b != backend], reason
        assert reason.startswith(f"needs {capability}: ")
        assert f"the {backend} backend" in reason, reason


def test_the_game_page_is_offered_where_a_load_balancer_serves_it() -> None:
    # kind's ALBs are served by HAProxy beside the cluster, as the microVM data plane's are.
    reason = skip_reason(Capability.LOAD_BALANCER_HTTP, "local", "replay")
    assert "HAProxy" in reason and reason.endswith("run with --backend kind or --backend eks"), reason
    assert skip_reason(Capability.POD_NETWORK, "local", "replay").endswith("run with --backend kind or --backend eks")
    # what kind cannot be: a node per pod, a cluster of Fargate nodes only
    for capability in (Capability.NODE_PER_POD, Capability.FARGATE_ONLY):
        reason = skip_reason(capability, "kind", "replay")
        assert reason.endswith("run with --backend local or --backend eks") and "kind backend" in reason, reason


class _Env:
    """A local environment that is up, for the backends' constructors."""

    def __init__(self, *_: Any, **__: Any) -> None:
        self.name, self.dir = "fake", Path("/nonexistent/fake")

    def start_lock(self) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def is_up(self) -> bool:
        return True

    def handle(self) -> ClusterHandle:
        return ClusterHandle(kubeconfig="/k", cluster_name="c", region="r", run_id="x", aws_endpoint="http://m",
                             capabilities=frozenset({"write"}))


@pytest.mark.parametrize("mode", ["replay", "check"])
def test_local_and_kind_handles_carry_what_they_declare(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fargatelab.backends import kind, local

    monkeypatch.setattr(local, "LocalEnvironment", _Env)
    monkeypatch.setattr("fargatelab.local.environment.LocalEnvironment", _Env)
    monkeypatch.setattr(kind, "require_docker", lambda: None)
    monkeypatch.setattr(kind, "_cluster", lambda run_id: SimpleNamespace(kubeconfig_path="/kind/k"))
    options = BackendOptions(mode=mode, run_id="x")
    assert local.LocalBackend(options).handle.capabilities == declared("local", mode)
    assert kind.KindBackend(options).handle.capabilities == declared("kind", mode)
