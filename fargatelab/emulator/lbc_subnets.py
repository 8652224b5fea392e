"""Subnet auto-discovery for a new ALB, the way the controller finds subnets by their role tag.

Subnets of the cluster VPC tagged ``kubernetes.io/role/elb`` (internet-facing) or
``kubernetes.io/role/internal-elb`` (internal) with value ``1`` or empty; subnets tagged for another
cluster only, or with fewer than 8 free addresses, are dropped; one per Availability Zone (a subnet
tagged for this cluster first, then the lowest id); an ALB needs two zones. The failure texts are the
controller's, as seen in its ``FailedBuildModel`` events (v2.4–v2.6 wording, before discovery by route
table was added: with no tagged subnet at all it answers "(0 match VPC and tags: [<tag>])").
"""

from __future__ import annotations

from typing import Any, Iterable

from .lbc_model import ModelError

__all__ = ["ROLE_TAGS", "DISCOVERY_PREFIX", "choose_subnets", "discover_subnets", "resolve_vpc"]

ROLE_TAGS = {"internet-facing": "kubernetes.io/role/elb", "internal": "kubernetes.io/role/internal-elb"}
DISCOVERY_PREFIX = "couldn't auto-discover subnets: "
_CLUSTER_TAG_PREFIX = "kubernetes.io/cluster/"
_MIN_FREE_ADDRESSES = 8  # what an ELB needs to scale in a subnet
_ALB_MIN_ZONES = 2


def _tags(subnet: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in subnet.get("Tags") or []}


def _eligible_cluster_tag(subnet: dict[str, Any], cluster: str) -> bool:
    cluster_tags = [k for k in _tags(subnet) if k.startswith(_CLUSTER_TAG_PREFIX)]
    return not cluster_tags or f"{_CLUSTER_TAG_PREFIX}{cluster}" in cluster_tags


def choose_subnets(subnets: Iterable[dict[str, Any]], scheme: str, cluster: str) -> list[str]:
    """Subnet ids for the ALB out of the VPC's subnets that carry the scheme's role tag (EC2 shapes).

    Raises ``ModelError`` with the controller's text (including its "couldn't auto-discover" prefix).
    """
    role_tag = ROLE_TAGS[scheme]
    matched = list(subnets)
    other_cluster = [s for s in matched if not _eligible_cluster_tag(s, cluster)]
    low_ips = [s for s in matched if s not in other_cluster
               and int(s.get("AvailableIpAddressCount", _MIN_FREE_ADDRESSES)) < _MIN_FREE_ADDRESSES]
    eligible = [s for s in matched if s not in other_cluster and s not in low_ips]
    if not eligible:
        detail = f"{len(matched)} match VPC and tags: [{role_tag}]"
        if matched:
            detail += f", {len(other_cluster)} tagged for other cluster, " \
                      f"{len(low_ips)} have insufficient available IP addresses"
        raise ModelError(f"{DISCOVERY_PREFIX}unable to resolve at least one subnet ({detail})")
    by_zone: dict[str, list[dict[str, Any]]] = {}
    for subnet in eligible:
        by_zone.setdefault(subnet["AvailabilityZone"], []).append(subnet)
    own_tag = f"{_CLUSTER_TAG_PREFIX}{cluster}"
    chosen = sorted(min(group, key=lambda s: (own_tag not in _tags(s), s["SubnetId"]))["SubnetId"]
                    for group in by_zone.values())
    if len(chosen) < _ALB_MIN_ZONES:
        raise ModelError(f"{DISCOVERY_PREFIX}subnets count less than minimal required count: "
                         f"{len(chosen)} < {_ALB_MIN_ZONES}")
    return chosen


def discover_subnets(ec2: Any, vpc_id: str, scheme: str, cluster: str) -> list[str]:
    """Ask EC2 for the VPC's subnets with the role tag and choose among them."""
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": f"tag:{ROLE_TAGS[scheme]}", "Values": ["", "1"]}]
    subnets: list[dict[str, Any]] = []
    for page in ec2.get_paginator("describe_subnets").paginate(Filters=filters):
        subnets.extend(page["Subnets"])
    return choose_subnets(subnets, scheme, cluster)


def resolve_vpc(ec2: Any, cluster: str) -> str:
    """The cluster's VPC: the one tagged ``kubernetes.io/cluster/<cluster>`` (eksctl tags it), else the only one.

    The real controller takes it from a flag or the instance metadata; neither exists here.
    """
    tagged = ec2.describe_vpcs(Filters=[{"Name": "tag-key", "Values": [f"{_CLUSTER_TAG_PREFIX}{cluster}"]}])["Vpcs"]
    if len(tagged) == 1:
        return str(tagged[0]["VpcId"])
    every = [v for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")]
    if len(every) == 1:
        return str(every[0]["VpcId"])
    raise ModelError(f"failed to fetch VPC ID: no single VPC is tagged {_CLUSTER_TAG_PREFIX}{cluster}")
