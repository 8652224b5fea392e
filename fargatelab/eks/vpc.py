"""Facts about the cluster's VPC as the EC2 API reports them (real AWS or moto alike)."""

from __future__ import annotations

from typing import Any

__all__ = ["cluster_subnets", "is_private"]


def _route_tables(ec2: Any, subnet_id: str, vpc_id: str) -> list[dict[str, Any]]:
    explicit = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])
    if explicit["RouteTables"]:
        tables: list[dict[str, Any]] = explicit["RouteTables"]
        return tables
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                              {"Name": "association.main", "Values": ["true"]}])
    tables = main["RouteTables"]
    return tables


def is_private(ec2: Any, subnet: dict[str, Any]) -> bool:
    """AWS's rule for Fargate: a subnet is private when its route table has no route to an internet gateway."""
    for table in _route_tables(ec2, subnet["SubnetId"], subnet["VpcId"]):
        for route in table.get("Routes", []):
            if str(route.get("GatewayId", "")).startswith("igw-"):
                return False
    return True


def cluster_subnets(eks: Any, ec2: Any, cluster: str) -> tuple[list[str], list[str]]:
    """(private, public) subnet ids of the cluster's VPC configuration, each sorted."""
    ids = eks.describe_cluster(name=cluster)["cluster"]["resourcesVpcConfig"]["subnetIds"]
    subnets = ec2.describe_subnets(SubnetIds=ids)["Subnets"]
    private = sorted(s["SubnetId"] for s in subnets if is_private(ec2, s))
    public = sorted(s["SubnetId"] for s in subnets if s["SubnetId"] not in private)
    return private, public
