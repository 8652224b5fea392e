"""The seeded workshop network and cluster, and the server process's start/stop contract."""

from __future__ import annotations

import base64
import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from fargatelab.errors import ExitCode

from .conftest import API_ENDPOINT, CA_PEM, CLUSTER, REGION, RUN_ID, Server

pytestmark = pytest.mark.integration

PRIVATE_CIDRS = ["10.11.64.0/20", "10.11.80.0/20", "10.11.96.0/20"]
ZONES = [f"{REGION}a", f"{REGION}b", f"{REGION}c"]


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def _subnets_tagged(ec2: Any, key: str) -> list[dict[str, Any]]:
    found = ec2.describe_subnets(Filters=[{"Name": "tag-key", "Values": [key]}])["Subnets"]
    return sorted(found, key=lambda s: s["CidrBlock"])


def _default_route_target(ec2: Any, subnet_id: str) -> dict[str, Any]:
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])[
        "RouteTables"
    ]
    assert len(tables) == 1
    (route,) = [r for r in tables[0]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    return route


def test_vpc_is_10_11_0_0_16_tagged_for_cluster_and_run(ec2: Any, server: Server) -> None:
    (vpc,) = ec2.describe_vpcs(VpcIds=[server.seed["vpc_id"]])["Vpcs"]
    assert vpc["CidrBlock"] == "10.11.0.0/16"
    assert _tags(vpc)[f"kubernetes.io/cluster/{CLUSTER}"] == "shared"
    assert _tags(vpc)["fargate-labs/run-id"] == RUN_ID


def test_three_private_subnets_one_per_zone_tagged_internal_elb_and_routed_via_nat(
    ec2: Any, server: Server
) -> None:
    private = _subnets_tagged(ec2, "kubernetes.io/role/internal-elb")
    assert [s["CidrBlock"] for s in private] == PRIVATE_CIDRS
    assert [s["AvailabilityZone"] for s in private] == ZONES
    assert sorted(s["SubnetId"] for s in private) == sorted(server.seed["private_subnet_ids"])
    for subnet in private:
        assert _tags(subnet)["kubernetes.io/role/internal-elb"] == "1"
        assert not subnet["MapPublicIpOnLaunch"]
        route = _default_route_target(ec2, subnet["SubnetId"])
        assert route["NatGatewayId"].startswith("nat-")
        assert "GatewayId" not in route


def test_three_public_subnets_tagged_elb_map_public_ip_and_routed_via_igw(ec2: Any, server: Server) -> None:
    public = _subnets_tagged(ec2, "kubernetes.io/role/elb")
    assert len(public) == 3
    assert sorted(s["AvailabilityZone"] for s in public) == ZONES
    assert sorted(s["SubnetId"] for s in public) == sorted(server.seed["public_subnet_ids"])
    for subnet in public:
        assert _tags(subnet)["kubernetes.io/role/elb"] == "1"
        assert subnet["MapPublicIpOnLaunch"]
        assert _default_route_target(ec2, subnet["SubnetId"])["GatewayId"].startswith("igw-")


def test_every_subnet_is_shared_with_the_cluster_and_tagged_with_the_run(ec2: Any, server: Server) -> None:
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [server.seed["vpc_id"]]}])["Subnets"]
    assert len(subnets) == 6
    for subnet in subnets:
        assert _tags(subnet)[f"kubernetes.io/cluster/{CLUSTER}"] == "shared"
        assert _tags(subnet)["fargate-labs/run-id"] == RUN_ID


def test_nat_gateway_sits_in_a_public_subnet(ec2: Any, server: Server) -> None:
    (nat,) = ec2.describe_nat_gateways(NatGatewayIds=[server.seed["nat_gateway_id"]])["NatGateways"]
    assert nat["SubnetId"] in server.seed["public_subnet_ids"]


def test_describe_cluster_returns_given_endpoint_and_base64_of_ca_pem(eks: Any) -> None:
    cluster = eks.describe_cluster(name=CLUSTER)["cluster"]
    assert cluster["endpoint"] == API_ENDPOINT
    assert base64.b64decode(cluster["certificateAuthority"]["data"]).decode() == CA_PEM


def test_cluster_is_active_on_1_34_sandbox_tagged_with_all_six_subnets(eks: Any, server: Server) -> None:
    cluster = eks.describe_cluster(name=CLUSTER)["cluster"]
    assert cluster["status"] == "ACTIVE"
    assert cluster["version"] == "1.34"
    assert cluster["tags"]["fargate-labs/sandbox"] == "true"
    vpc_config = cluster["resourcesVpcConfig"]
    assert vpc_config["vpcId"] == server.seed["vpc_id"]
    assert sorted(vpc_config["subnetIds"]) == sorted(
        server.seed["private_subnet_ids"] + server.seed["public_subnet_ids"]
    )
    assert cluster["kubernetesNetworkConfig"]["serviceIpv4Cidr"] == "172.20.0.0/16"


def test_pod_execution_role_is_eksctl_named_trusts_fargate_pods_and_has_fargate_policy(
    server: Server,
) -> None:
    iam = server.client("iam")
    arn = server.seed["pod_execution_role_arn"]
    name = arn.split("/")[-1]
    assert name.startswith(f"eksctl-{CLUSTER}-cluster-FargatePodExecutionRole-")
    assert len(name) > len(f"eksctl-{CLUSTER}-cluster-FargatePodExecutionRole-")
    role = iam.get_role(RoleName=name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"]["Service"] == "eks-fargate-pods.amazonaws.com"
    policies = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    assert [p["PolicyName"] for p in policies] == ["AmazonEKSFargatePodExecutionRolePolicy"]


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_sigterm_exits_zero_frees_port_and_stdout_held_only_ready(launcher: Any) -> None:
    one = launcher()
    assert one.proc.poll() is None
    one.proc.send_signal(signal.SIGTERM)
    assert one.proc.wait(timeout=15) == ExitCode.OK
    assert one.proc.stdout is not None and one.proc.stdout.read() == ""
    assert _port_is_free(one.port)


def test_sigint_exits_zero(launcher: Any) -> None:
    one = launcher()
    one.proc.send_signal(signal.SIGINT)
    assert one.proc.wait(timeout=15) == ExitCode.OK


def test_taken_port_exits_port_in_use_with_one_stderr_line(launcher: Any) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        one = launcher(port=port)
        assert one.proc.returncode == ExitCode.PORT_IN_USE
    line = _one_stderr_line(one)
    assert f"port {port}" in line and "in use" in line


def _one_stderr_line(one: Server) -> str:
    assert one.proc.stdout is not None and one.proc.stdout.read() == ""
    assert one.proc.stderr is not None
    lines = one.proc.stderr.read().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_non_loopback_host_is_refused_as_bad_input(launcher: Any) -> None:
    one = launcher(host="0.0.0.0")
    assert one.proc.returncode == ExitCode.BAD_INPUT
    assert "loopback" in _one_stderr_line(one)


def test_unreadable_ca_file_is_bad_input(launcher: Any, tmp_path: Path) -> None:
    one = launcher(ca_file=tmp_path / "missing.crt")
    assert one.proc.returncode == ExitCode.BAD_INPUT
    assert "--ca-file" in _one_stderr_line(one)


def test_describe_cluster_versions_lists_the_clusters_version(eks: Any) -> None:
    """eksctl calls DescribeClusterVersions before anything else; moto alone answers it with 404."""
    (cluster,) = [eks.describe_cluster(name=CLUSTER)["cluster"]]
    listed = eks.describe_cluster_versions()["clusterVersions"]
    (default,) = [v for v in listed if v["defaultVersion"]]
    assert default["clusterVersion"] == cluster["version"] and default["clusterType"] == "eks"
    assert default["kubernetesPatchVersion"].startswith(cluster["version"] + ".")
    assert all(v["versionStatus"] in ("STANDARD_SUPPORT", "EXTENDED_SUPPORT") for v in listed)
    assert eks.describe_cluster_versions(clusterVersions=["1.20"])["clusterVersions"] == []


def test_the_calls_a_client_made_are_counted(server: Server, eks: Any) -> None:
    """What a real CLI calls is found by running it: the server counts each action, and a GET resets them."""
    server.control("GET", "calls")
    eks.describe_cluster(name=CLUSTER)
    eks.describe_cluster(name=CLUSTER)
    eks.describe_cluster_versions()
    status, calls = server.control("GET", "calls")
    assert status == 200 and calls == {"eks:DescribeCluster": 2, "eks:DescribeClusterVersions": 1}
    assert server.control("GET", "calls")[1] == {}
