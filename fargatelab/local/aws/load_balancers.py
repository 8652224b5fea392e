"""moto's ELBv2, named and health-checked like AWS's.

* **Names.** AWS names a load balancer ``<name>-<digits>.<region>.elb.amazonaws.com`` (``internal-`` first
  for an internal one); moto writes ``<name>-1``. The server renames each new load balancer the AWS way, so
  the DNSName that ``describe-load-balancers`` shows is the hostname the Ingress gets.
* **Target health.** moto reports every registered target ``healthy``. With the ALB data plane running,
  the health its proxies measured is posted to ``/_fargatelab/target-health`` and DescribeTargetHealth
  reports that instead: ``initial``, ``healthy``, ``unhealthy`` with AWS's reason codes and descriptions.
"""

from __future__ import annotations

import threading
from typing import Any

from ...rules.naming import dns_digits, load_balancer_dns_name

__all__ = ["HEALTH", "install", "report_health"]

#: target group ARN -> "id:port" -> {"State", "Reason", "Description"}, as the ALB data plane measured
HEALTH: dict[str, dict[str, dict[str, str]]] = {}
_lock = threading.Lock()
_installed: list[bool] = []


def report_health(measured: dict[str, dict[str, dict[str, str]]]) -> None:
    """Replace what is known of the given target groups' health (the ALB data plane posts it)."""
    with _lock:
        HEALTH.update(measured)


def install() -> None:
    """Patch moto's ELBv2 backend in this process; idempotent."""
    if _installed:
        return
    from moto.elbv2 import models

    create = models.ELBv2Backend.create_load_balancer

    def create_load_balancer(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        lb = create(self, name, *args, **kwargs)
        lb.scheme = lb.scheme or "internet-facing"  # AWS's default when the call names none
        lb.dns_name = load_balancer_dns_name(name, self.region_name, lb.scheme, dns_digits(lb.arn))
        return lb

    health_for = models.FakeTargetGroup.health_for

    def measured_health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        status = health_for(self, target, ec2_backend)
        if status.status != "healthy":  # not registered, draining: moto's own answer stands
            return status
        with _lock:
            found = HEALTH.get(self.arn, {}).get(f"{status.instance_id}:{status.port}")
        if found is None:
            return status
        return models.FakeHealthStatus(status.instance_id, status.port, status.health_check_port, found["State"],
                                       found.get("Reason"), found.get("Description"))

    models.ELBv2Backend.create_load_balancer = create_load_balancer  # type: ignore[method-assign]
    models.FakeTargetGroup.health_for = measured_health_for  # type: ignore[method-assign]
    _installed.append(True)
