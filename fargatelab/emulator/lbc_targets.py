"""The TargetGroupBinding half of the controller: which targets a target group should hold, and syncing them.

``ip`` targets are the Service's ready endpoints (EndpointSlices ``discovery.k8s.io/v1``; an endpoint
whose ``ready`` condition is unset counts as ready, as the API documents) on the endpoint port named like
the Service port. ``instance`` targets would be the EC2 worker nodes' instance ids on the node port; the
controller's default node selector excludes ``eks.amazonaws.com/compute-type=fargate``, and no EC2
instance exists in this emulation, so nothing is registered: registering other nodes is out of scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from botocore.exceptions import ClientError

__all__ = ["Desired", "desired_targets", "sync_targets", "service_port", "is_fargate"]

_COMPUTE_TYPE_LABEL = "eks.amazonaws.com/compute-type"


@dataclass(frozen=True)
class Desired:
    targets: frozenset[tuple[str, int]]  # (ip or instance id, port)
    fargate_endpoints: int  # endpoints on Fargate nodes an instance target group cannot reach
    error: str = ""  # "backend not found: ..." when the Service or its port is missing


def service_port(service: dict[str, Any], port: int | str) -> dict[str, Any] | None:
    for candidate in (service.get("spec") or {}).get("ports") or []:
        if (isinstance(port, str) and candidate.get("name") == port) or \
                (isinstance(port, int) and candidate.get("port") == port):
            return dict(candidate)
    return None


def _ready(endpoint: dict[str, Any]) -> bool:
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False and not conditions.get("terminating")


def _slice_port(slice_: dict[str, Any], port_name: str) -> int | None:
    for port in slice_.get("ports") or []:
        if (port.get("name") or "") == port_name and port.get("port"):
            return int(port["port"])
    return None


def desired_targets(tgb: dict[str, Any], service: dict[str, Any] | None, slices: Iterable[dict[str, Any]],
                    fargate_nodes: set[str]) -> Desired:
    """The targets a TargetGroupBinding asks for, from the Service, its EndpointSlices and the Fargate nodes."""
    spec = tgb.get("spec") or {}
    ref = spec.get("serviceRef") or {}
    namespace = tgb["metadata"]["namespace"]
    if service is None:
        return Desired(frozenset(), 0, f'backend not found: services "{ref.get("name", "")}" not found')
    port = service_port(service, ref.get("port", 0))
    if port is None:
        return Desired(frozenset(), 0, f"backend not found: unable to find port {ref.get('port')} on service "
                                       f"{namespace}/{service['metadata']['name']}")
    port_name = port.get("name") or ""
    endpoints: list[tuple[dict[str, Any], int]] = []
    for slice_ in slices:
        if slice_.get("addressType", "IPv4") != "IPv4":
            continue
        number = _slice_port(slice_, port_name)
        if number is None:
            continue
        endpoints.extend((e, number) for e in slice_.get("endpoints") or [] if _ready(e))
    if spec.get("targetType") == "ip":
        return Desired(frozenset((e["addresses"][0], n) for e, n in endpoints if e.get("addresses")), 0)
    on_fargate = sum(1 for e, _ in endpoints if e.get("nodeName") in fargate_nodes)
    return Desired(frozenset(), on_fargate)


def is_fargate(node: dict[str, Any]) -> bool:
    return ((node.get("metadata") or {}).get("labels") or {}).get(_COMPUTE_TYPE_LABEL) == "fargate"


def sync_targets(elbv2: Any, arn: str, wanted: frozenset[tuple[str, int]]) -> tuple[int, int] | None:
    """Register what is missing and deregister what is gone; (registered, deregistered), None without the group."""
    try:
        health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    except ClientError as err:
        if err.response["Error"]["Code"] in ("TargetGroupNotFound", "TargetGroupNotFoundException"):
            return None  # deleted under us (its Ingress is going away): nothing to do
        raise
    current = {(h["Target"]["Id"], int(h["Target"]["Port"])) for h in health
               if (h.get("TargetHealth") or {}).get("State") != "draining"}
    add = sorted(wanted - current)
    remove = sorted(current - wanted)
    if add:
        elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i, "Port": p} for i, p in add])
    if remove:
        elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": i, "Port": p} for i, p in remove])
    return len(add), len(remove)
