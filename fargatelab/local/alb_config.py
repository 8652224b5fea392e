"""An ALB as ELBv2 describes it, rendered as the configuration of the HAProxy that serves it locally, and
HAProxy's view of its servers read back as ELBv2 target health. No I/O here: :mod:`.alb_proxies` runs it.

What the rendering keeps of ELBv2's behaviour:

* each HTTP listener listens on its port; its rules are tried by priority (``path-pattern`` values, with
  ``*`` and ``?`` wildcards, matched against the path), then its default action: forward to a target
  group, or a fixed response;
* a target group's health check is HAProxy's: the path, port, matcher, interval, timeout and the
  healthy / unhealthy thresholds as ``rise`` / ``fall`` (the interval scaled like every emulated latency);
* fail-open as ELBv2 does: when no target of a group is healthy, requests go to all of them; a group
  with no registered target answers ``503``, with the ALB's own page.

>>> lb = {"DNSName": "k8s-game-ingress-0123456789-1.ap-northeast-2.elb.amazonaws.com", "Scheme": "internet-facing"}
>>> tg = {"TargetGroupArn": "arn:tg/1", "Port": 80, "HealthCheckPath": "/", "HealthCheckPort": "traffic-port",
...       "HealthCheckIntervalSeconds": 15, "HealthCheckTimeoutSeconds": 5, "HealthyThresholdCount": 2,
...       "UnhealthyThresholdCount": 2, "Matcher": {"HttpCode": "200"}}
>>> listener = {"Port": 80, "Protocol": "HTTP", "DefaultActions": [{"Type": "fixed-response",
...     "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "404"}}]}
>>> rule = {"Priority": "1", "Conditions": [{"Field": "path-pattern", "Values": ["/*"]}],
...         "Actions": [{"Type": "forward", "TargetGroupArn": "arn:tg/1"}]}
>>> alb = Alb.from_elbv2(lb, [(listener, [rule])], [(tg, [("10.11.64.5", 80)])])
>>> text = render(alb, "127.100.0.7", "/run/x.sock", "/run/503.http", health_scale=1 / 15)
>>> "bind 127.100.0.7:80" in text and "acl rule1 path_reg ^/.*$" in text
True
>>> "default-server inter 1000 fastinter 1000 downinter 1000 rise 2 fall 2" in text
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Alb", "Listener", "Rule", "TargetGroup", "ALB_503", "elb_health", "path_regex", "render"]

#: what an ALB answers when a group has no target to send a request to
ALB_503 = ("HTTP/1.1 503 Service Temporarily Unavailable\r\nServer: awselb/2.0\r\nContent-Type: text/html\r\n"
           "Connection: close\r\n\r\n<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
           "<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n")


@dataclass(frozen=True)
class TargetGroup:
    arn: str
    port: int
    targets: tuple[tuple[str, int], ...]
    path: str = "/"
    check_port: str = "traffic-port"
    interval: float = 15.0
    timeout: float = 5.0
    healthy: int = 5
    unhealthy: int = 2
    matcher: str = "200"


@dataclass(frozen=True)
class Rule:
    priority: int
    patterns: tuple[str, ...]
    action: dict[str, Any]


@dataclass(frozen=True)
class Listener:
    port: int
    rules: tuple[Rule, ...]
    default: dict[str, Any]


@dataclass(frozen=True)
class Alb:
    dns_name: str
    scheme: str
    listeners: tuple[Listener, ...]
    groups: dict[str, TargetGroup] = field(default_factory=dict)

    @classmethod
    def from_elbv2(cls, lb: dict[str, Any], listeners: list[tuple[dict[str, Any], list[dict[str, Any]]]],
                   groups: list[tuple[dict[str, Any], list[tuple[str, int]]]]) -> Alb:
        """From describe-load-balancers, describe-listeners with describe-rules, and describe-target-groups
        with each group's registered (not draining) targets."""
        tgs = {}
        for tg, targets in groups:
            tgs[tg["TargetGroupArn"]] = TargetGroup(
                arn=tg["TargetGroupArn"], port=int(tg.get("Port") or 80), targets=tuple(sorted(targets)),
                path=tg.get("HealthCheckPath") or "/", check_port=str(tg.get("HealthCheckPort") or "traffic-port"),
                interval=float(tg.get("HealthCheckIntervalSeconds") or 30),
                timeout=float(tg.get("HealthCheckTimeoutSeconds") or 5),
                healthy=int(tg.get("HealthyThresholdCount") or 5), unhealthy=int(tg.get("UnhealthyThresholdCount") or 2),
                matcher=str((tg.get("Matcher") or {}).get("HttpCode") or "200"))
        out = []
        for listener, rules in listeners:
            if listener.get("Protocol", "HTTP") != "HTTP":
                continue  # HTTPS needs the ACM certificate, which nothing here issues
            parsed = []
            for rule in rules:
                if rule.get("IsDefault") or str(rule.get("Priority")) == "default":
                    continue
                patterns = [v for c in rule.get("Conditions") or [] if c.get("Field") == "path-pattern"
                            for v in (c.get("PathPatternConfig") or {}).get("Values") or c.get("Values") or []]
                parsed.append(Rule(int(rule["Priority"]), tuple(patterns), (rule.get("Actions") or [{}])[0]))
            out.append(Listener(int(listener["Port"]), tuple(sorted(parsed, key=lambda r: r.priority)),
                                (listener.get("DefaultActions") or [{}])[0]))
        return cls(lb["DNSName"], lb.get("Scheme", "internet-facing"), tuple(sorted(out, key=lambda li: li.port)),
                   tgs)


def path_regex(pattern: str) -> str:
    """An ELBv2 path pattern (``*`` any characters, ``?`` one) as an anchored regular expression.

    >>> path_regex("/api/*.json")
    '^/api/.*\\\\.json$'
    """
    return "^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + "$"


def _matcher_regex(codes: str) -> str:
    """ELBv2's matcher (``200``, ``200,302``, ``200-299``) as a regular expression over the status code."""
    parts = []
    for part in codes.split(","):
        low, _, high = part.strip().partition("-")
        parts += [str(c) for c in range(int(low), int(high or low) + 1)]
    return "^(" + "|".join(parts) + ")$"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _ms(seconds: float) -> int:
    return max(100, int(round(seconds * 1000)))


def _target_group_of(action: dict[str, Any]) -> str:
    if action.get("TargetGroupArn"):
        return str(action["TargetGroupArn"])
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or [{}]
    return str(groups[0].get("TargetGroupArn", ""))


def _fixed_response(action: dict[str, Any]) -> str:
    if action.get("Type") == "forward":  # to a target group this ALB does not have
        return "http-request return status 503 content-type text/html file " + "{errorfile}"
    fixed = action.get("FixedResponseConfig") or {}
    statement = f"http-request return status {fixed.get('StatusCode', '404')}"
    if fixed.get("MessageBody"):  # HAProxy refuses an empty string: no body is the same answer
        statement += f" content-type {_quote(fixed.get('ContentType') or 'text/plain')} string {_quote(fixed['MessageBody'])}"
    return statement


def render(alb: Alb, address: str, stats_socket: str, errorfile_503: str, health_scale: float = 1.0,
           in_vpc: tuple[str, str] | None = None, state_file: str | None = None, targets_in: str | None = None) -> str:
    """HAProxy's configuration for ``alb``, its listeners bound on ``address``, and with ``in_vpc``
    (address, network namespace) also on the ALB's address inside the VPC; ``targets_in``: the network
    namespace it reaches its targets from (a kind cluster's pods), else its own."""
    backends = {arn: f"tg{i}" for i, arn in enumerate(sorted(alb.groups), 1)}
    fixed: dict[str, str] = {}  # a backend per distinct fixed response: it answers instead of forwarding

    def backend_for(action: dict[str, Any]) -> str:
        if action.get("Type") == "forward" and _target_group_of(action) in backends:
            return backends[_target_group_of(action)]
        statement = _fixed_response(action)
        return fixed.setdefault(statement, f"fixed{len(fixed) + 1}")

    lines = ["global", f"  stats socket {stats_socket} mode 600 level admin", "  log stderr format short local0 notice",
             # A reload keeps what the health checks found (saved just before it), as an ALB's change does.
             *([f"  server-state-file {state_file}"] if state_file else []),
             "defaults", "  mode http", *(["  load-server-state-from-file global"] if state_file else []), "  timeout connect 5s", "  timeout client 60s", "  timeout server 60s",
             f"  errorfile 503 {errorfile_503}", "  option dontlognull", ""]
    for listener in alb.listeners:
        lines += [f"frontend listener{listener.port}", f"  bind {address}:{listener.port}"]
        if in_vpc:
            lines.append(f"  bind {in_vpc[0]}:{listener.port} namespace {in_vpc[1]}")
        for rule in listener.rules:
            if not rule.patterns:
                continue
            acl = f"rule{rule.priority}"
            lines += [f"  acl {acl} path_reg {path_regex(p)}" for p in rule.patterns]
            lines.append(f"  use_backend {backend_for(rule.action)} if {acl}")
        lines += [f"  default_backend {backend_for(listener.default)}", ""]
    for statement, name in fixed.items():
        lines += [f"backend {name}", "  " + statement.replace("{errorfile}", errorfile_503), ""]
    for arn, name in backends.items():
        tg = alb.groups[arn]
        inter = _ms(tg.interval * health_scale)
        lines += [f"backend {name}", "  balance roundrobin", f"  option httpchk GET {tg.path}",
                  f"  http-check expect rstatus {_matcher_regex(tg.matcher)}",
                  f"  timeout check {_ms(min(tg.timeout * health_scale, tg.interval * health_scale))}",
                  f"  default-server inter {inter} fastinter {inter} downinter {inter} rise {tg.healthy} "
                  f"fall {tg.unhealthy}"]
        where = f" namespace {targets_in}" if targets_in else ""
        for ip, port in tg.targets:
            check_port = "" if tg.check_port == "traffic-port" else f" port {tg.check_port}"
            lines.append(f"  server {ip}:{port} {ip}:{port} check{check_port}{where}")
        # Fail-open: with no healthy target, ELBv2 sends requests to every registered one.
        lines += [f"  server backup-{ip}:{port} {ip}:{port} backup{where}" for ip, port in tg.targets]
        lines.append("")
    return "\n".join(lines)


def elb_health(row: dict[str, str], seen_up: bool) -> dict[str, str]:
    """One server's row of HAProxy's ``show stat`` as ELBv2 target health.

    ``seen_up``: the target has passed its health checks since it was registered (``initial`` until then).

    >>> elb_health({"status": "UP", "check_status": "L7OK"}, True)["State"]
    'healthy'
    >>> elb_health({"status": "DOWN", "check_status": "L7STS", "check_code": "404"}, True)["Reason"]
    'Target.ResponseCodeMismatch'
    >>> elb_health({"status": "UP", "check_status": "INI"}, False)["State"]
    'initial'
    """
    status, check = row.get("status", ""), row.get("check_status", "").lstrip("* ")
    # "UP 1/2": one check failed, not yet the unhealthy threshold; "DOWN 1/2": one passed, not yet healthy
    if status.startswith("UP") and seen_up:
        return {"State": "healthy"}
    if status.startswith("DOWN") and check not in ("", "INI"):
        if check == "L7STS":
            return {"State": "unhealthy", "Reason": "Target.ResponseCodeMismatch",
                    "Description": f"Health checks failed with these codes: [{row.get('check_code', '')}]"}
        if check in ("L4TOUT", "L7TOUT"):
            return {"State": "unhealthy", "Reason": "Target.Timeout", "Description": "Request timed out"}
        return {"State": "unhealthy", "Reason": "Target.FailedHealthChecks", "Description": "Health checks failed"}
    return {"State": "initial", "Reason": "Elb.InitialHealthChecking", "Description": "Initial health checks in progress"}
