"""The ALB as HAProxy configuration, and HAProxy's view of its servers as ELBv2 target health."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fargatelab.local.alb_config import ALB_503, Alb, elb_health, path_regex, render

LB = {"DNSName": "k8s-game-ingress-0123456789-1.ap-northeast-2.elb.amazonaws.com", "Scheme": "internet-facing"}
TG = {"TargetGroupArn": "arn:tg/1", "Port": 80, "HealthCheckPath": "/healthz", "HealthCheckPort": "traffic-port",
      "HealthCheckIntervalSeconds": 15, "HealthCheckTimeoutSeconds": 5, "HealthyThresholdCount": 2,
      "UnhealthyThresholdCount": 3, "Matcher": {"HttpCode": "200-202,302"}}
FIXED_404 = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"}}


def _alb(targets: list[tuple[str, int]], rules: list[dict] | None = None) -> Alb:
    listener = {"Port": 80, "Protocol": "HTTP", "DefaultActions": [FIXED_404]}
    rules = rules if rules is not None else [
        {"Priority": "1", "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}],
         "Actions": [{"Type": "forward", "TargetGroupArn": "arn:tg/1"}]},
        {"Priority": "default", "IsDefault": True, "Conditions": [], "Actions": [FIXED_404]}]
    return Alb.from_elbv2(LB, [(listener, rules)], [(TG, targets)])


def test_a_target_group_becomes_a_checked_backend_with_a_fail_open_backup() -> None:
    text = render(_alb([("10.11.64.5", 80), ("10.11.80.9", 80)]), "127.100.1.2", "/run/s.sock", "/x/503.http", 1.0)
    assert "bind 127.100.1.2:80" in text
    assert "option httpchk GET /healthz" in text
    assert "http-check expect rstatus ^(200|201|202|302)$" in text
    assert "default-server inter 15000 fastinter 15000 downinter 15000 rise 2 fall 3" in text
    assert "timeout check 5000" in text
    assert "server 10.11.64.5:80 10.11.64.5:80 check" in text
    assert "server backup-10.11.80.9:80 10.11.80.9:80 backup" in text
    # The default action answers only what no rule took: it is a backend of its own, not a rule before them.
    assert "use_backend tg1 if rule1" in text and "default_backend fixed1" in text
    assert "backend fixed1\n  http-request return status 404" in text


def test_beside_kind_the_targets_are_reached_from_the_runs_namespace() -> None:
    text = render(_alb([("10.11.65.5", 80)]), "127.100.1.2", "/s", "/e", targets_in="fargate-labs-ab12cd34-kind")
    assert "server 10.11.65.5:80 10.11.65.5:80 check namespace fargate-labs-ab12cd34-kind" in text
    assert "server backup-10.11.65.5:80 10.11.65.5:80 backup namespace fargate-labs-ab12cd34-kind" in text
    assert " namespace " not in text.split("backend")[0]  # the listeners stay on the host


def test_rules_are_tried_by_priority_and_wildcards_become_anchored_regexes() -> None:
    rules = [{"Priority": "20", "Conditions": [{"Field": "path-pattern", "Values": ["/*"]}],
              "Actions": [{"Type": "forward", "TargetGroupArn": "arn:tg/1"}]},
             {"Priority": "5", "Conditions": [{"Field": "path-pattern", "Values": ["/api/v?/*"]}],
              "Actions": [FIXED_404]}]
    text = render(_alb([("10.11.64.5", 80)], rules), "127.100.1.2", "/s", "/e")
    assert text.index("if rule5") < text.index("if rule20")
    assert path_regex("/api/v?/*") == r"^/api/v./.*$"


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs HAProxy (Debian: apt-get install haproxy), "
                    "which the microVM data plane installs")
def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "503.http").write_text(ALB_503)
    for targets in ([("10.11.64.5", 80)], []):
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(render(_alb(targets), "127.100.1.2", str(tmp_path / "s.sock"), str(tmp_path / "503.http")))
        checked = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # Beside kind: HAProxy takes the keyword, and opens the namespace as it reads it (none by that name here).
    cfg.write_text(render(_alb([("10.11.65.5", 80)]), "127.100.1.2", str(tmp_path / "s.sock"),
                          str(tmp_path / "503.http"), targets_in="fargate-labs-none-kind"))
    checked = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    problems = [line for line in (checked.stdout + checked.stderr).splitlines() if "[ALERT]" in line and "Error(s) found" not in line
                and "Fatal errors" not in line]
    assert problems and all("Cannot open namespace 'fargate-labs-none-kind'" in line for line in problems), problems


@pytest.mark.parametrize(("row", "passed", "expected"), [
    ({"status": "UP", "check_status": "INI"}, False, ("initial", "Elb.InitialHealthChecking")),
    ({"status": "UP", "check_status": "L7OK"}, False, ("initial", "Elb.InitialHealthChecking")),
    ({"status": "UP", "check_status": "L7OK"}, True, ("healthy", None)),
    ({"status": "UP 1/3", "check_status": "L4CON"}, True, ("healthy", None)),
    ({"status": "DOWN", "check_status": "L7STS", "check_code": "404"}, False, ("unhealthy", "Target.ResponseCodeMismatch")),
    ({"status": "DOWN", "check_status": "L4TOUT"}, True, ("unhealthy", "Target.Timeout")),
    ({"status": "DOWN", "check_status": "L4CON"}, True, ("unhealthy", "Target.FailedHealthChecks")),
])
def test_haproxy_server_states_read_as_elbv2_target_health(row: dict[str, str], passed: bool,
                                                           expected: tuple[str, str | None]) -> None:
    health = elb_health(row, passed)
    assert (health["State"], health.get("Reason")) == expected
