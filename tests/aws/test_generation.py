"""The AWS side counts each service's changes, so pollers can skip passes that would read the same state."""

from __future__ import annotations

import http.server
import threading
import time
from typing import Any, Iterator

import pytest

from fargatelab.emulator.aws_generation import Generation
from fargatelab.emulator.profiles import ProfileCache

from .conftest import CREATE_SECONDS, Server, wait_for

pytestmark = pytest.mark.integration


def _generation(server: Server, service: str) -> int:
    status, body = server.control("GET", "generation")
    assert status == 200, body
    return int(body[service])


def _profile(eks: Any, server: Server, cluster: str, name: str) -> None:
    eks.create_fargate_profile(clusterName=cluster, fargateProfileName=name, selectors=[{"namespace": name}],
                               podExecutionRoleArn=server.seed["pod_execution_role_arn"])


def test_reads_leave_the_generation_alone_and_changes_move_it(eks: Any, server: Server, cluster: str) -> None:
    before = _generation(server, "eks")
    eks.list_fargate_profiles(clusterName=cluster)
    eks.describe_cluster(name=cluster)
    assert _generation(server, "eks") == before
    _profile(eks, server, cluster, "gen-a")
    created = _generation(server, "eks")
    assert created > before
    # CREATING -> ACTIVE is a change no call makes: it counts once its time is up, before anyone looks.
    time.sleep(CREATE_SECONDS + 0.2)
    active = _generation(server, "eks")
    assert active > created
    status = eks.describe_fargate_profile(clusterName=cluster, fargateProfileName="gen-a")["fargateProfile"]["status"]
    assert status == "ACTIVE"
    assert _generation(server, "eks") == active  # the describe that carried it out changed nothing more
    eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="gen-a")
    assert _generation(server, "eks") > active


def test_load_balancer_changes_and_health_reports_move_elbv2s(server: Server) -> None:
    elbv2 = server.client("elbv2")
    subnets = server.seed["public_subnet_ids"]
    before = _generation(server, "elbv2")
    elbv2.describe_load_balancers()
    assert _generation(server, "elbv2") == before
    lb = elbv2.create_load_balancer(Name="gen-alb", Subnets=subnets)["LoadBalancers"][0]  # no Scheme given
    assert lb["Scheme"] == "internet-facing" and lb["DNSName"].startswith("gen-alb-"), lb
    arn = lb["LoadBalancerArn"]
    created = _generation(server, "elbv2")
    assert created > before
    status, _ = server.control("POST", "target-health", {"arn:aws:elasticloadbalancing:tg/none": {}})
    assert status == 200
    assert _generation(server, "elbv2") > created
    elbv2.delete_load_balancer(LoadBalancerArn=arn)


def test_profile_cache_reads_the_profiles_again_only_after_a_change(eks: Any, server: Server, cluster: str) -> None:
    cache = ProfileCache(eks, cluster)
    cache.refresh()
    server.control("GET", "calls")  # resets the count
    cache.refresh()
    cache.refresh()
    assert server.control("GET", "calls")[1] == {}
    _profile(eks, server, cluster, "gen-b")
    server.control("GET", "calls")
    cache.refresh()
    assert server.control("GET", "calls")[1].get("eks:ListFargateProfiles") == 1
    assert [p.status for p in cache.snapshot() if p.name == "gen-b"] == ["CREATING"]
    wait_for(lambda: (cache.refresh(), [p.status for p in cache.snapshot() if p.name == "gen-b"])[1] == ["ACTIVE"])
    eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="gen-b")


@pytest.fixture
def no_counter() -> Iterator[str]:
    """An endpoint that answers 404 to everything, as one without the change counter does."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_without_the_counter_every_pass_reads(no_counter: str, server: Server) -> None:
    blind = Generation(no_counter, "eks")
    assert blind.changed()
    blind.mark()
    assert blind.changed()  # nothing to compare: every pass reads everything
    seeing = Generation(server.url, "eks")
    assert seeing.changed()
    seeing.mark()
    assert not seeing.changed()


def test_a_restarted_server_never_looks_unchanged(server: Server, launcher: Any) -> None:
    """Counts start from zero again when the server does: its start is part of what a poller compares."""
    first = Generation(server.url, "elbv2")
    first.changed()
    first.mark()
    second = launcher()
    restarted = Generation(second.url, "elbv2")
    assert restarted.current() != first.current()
    assert str(restarted.current()).endswith(":0")
