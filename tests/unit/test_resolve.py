"""``fargate-lab resolve``: the name of an ALB the AWS API lists is answered once its proxy serves it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from fargatelab.errors import ExitCode, HarnessError
from fargatelab.local import environment
from fargatelab.local.environment import LocalEnvironment

NAME = "k8s-game2048-ingress2-0123456789-1234567890.ap-northeast-2.elb.amazonaws.com"
SERVED = {NAME: {"address": "127.100.0.7", "scheme": "internet-facing", "arn": "arn:x", "ports": [80]}}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalEnvironment:
    monkeypatch.setenv("FARGATE_LABS_STATE", str(tmp_path))
    local = LocalEnvironment("albs")
    local.dir.mkdir()
    local.state_file.write_text(json.dumps({
        "ready": True, "kubeconfig": "/k", "cluster_name": "eksworkshop", "region": "ap-northeast-2",
        "run_id": "r1", "aws_endpoint": "http://127.0.0.1:1", "kubernetes_version": "1.34.4",
        "data_plane": "microvm"}))
    monkeypatch.setattr(environment, "_PROXY_START_S", 2.0)
    return local


def _aws_lists(monkeypatch: pytest.MonkeyPatch, listed: bool) -> None:
    monkeypatch.setattr(LocalEnvironment, "_lists_alb", staticmethod(lambda handle, name: listed))


def test_a_name_the_proxies_serve_is_answered(env: LocalEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_lists(monkeypatch, True)
    (env.dir / "load-balancers.json").write_text(json.dumps(SERVED))
    assert env.resolve_load_balancer(NAME) == "127.100.0.7"


def test_a_new_alb_is_answered_once_its_proxy_starts(env: LocalEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    # The Ingress shows the hostname as soon as the ALB exists; the proxies list it a pass later.
    _aws_lists(monkeypatch, True)
    later = threading.Timer(0.5, lambda: (env.dir / "load-balancers.json").write_text(json.dumps(SERVED)))
    later.start()
    try:
        assert env.resolve_load_balancer(NAME) == "127.100.0.7"
    finally:
        later.cancel()


def test_an_alb_no_proxy_serves_is_said(env: LocalEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_lists(monkeypatch, True)
    with pytest.raises(HarnessError, match="no proxy serves it after 2 s: see `fargate-lab status --name albs`"):
        env.resolve_load_balancer(NAME)


def test_a_name_of_no_alb_is_refused_at_once(env: LocalEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_lists(monkeypatch, False)
    with pytest.raises(HarnessError, match="is no ALB of environment 'albs'") as err:
        env.resolve_load_balancer("example.com")
    assert err.value.code == ExitCode.BAD_INPUT
