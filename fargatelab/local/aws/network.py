"""The workshop's VPC, IAM roles and EKS cluster record, seeded into moto.

Document 000 records a cluster VPC 10.11.0.0/16 with three public and three private /20 subnets
built by eksctl; the seed reproduces that layout (and its tags, which the Load Balancer Controller
and the Fargate subnet check depend on) so the labs read the same AWS answers as on a real account.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from typing import Any

import boto3
from botocore.exceptions import ClientError

from ...eks.facts import RUN_ID_TAG, SANDBOX_TAG

__all__ = [
    "VPC_CIDR",
    "PRIVATE_SUBNET_CIDRS",
    "PUBLIC_SUBNET_CIDRS",
    "KUBERNETES_VERSION",
    "SERVICE_IPV4_CIDR",
    "RUN_ID_TAG",
    "SANDBOX_TAG",
    "seed_workshop",
    "subnet_is_private",
    "availability_zones",
    "partition_for",
]

VPC_CIDR = "10.11.0.0/16"
PUBLIC_SUBNET_CIDRS = ("10.11.0.0/20", "10.11.16.0/20", "10.11.32.0/20")
PRIVATE_SUBNET_CIDRS = ("10.11.64.0/20", "10.11.80.0/20", "10.11.96.0/20")
KUBERNETES_VERSION = "1.34"
# Lab 4 records nameserver 172.20.0.10, i.e. EKS's default service range.
SERVICE_IPV4_CIDR = "172.20.0.0/16"

_FARGATE_POLICY = "AmazonEKSFargatePodExecutionRolePolicy"
_CLUSTER_POLICY = "AmazonEKSClusterPolicy"
# Customer-managed stand-ins used when moto was started without AWS managed policies loaded.
_POLICY_DOCUMENTS: dict[str, dict[str, Any]] = {
    _FARGATE_POLICY: {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "ecr:GetAuthorizationToken",
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                "Resource": "*",
            }
        ],
    },
    _CLUSTER_POLICY: {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ec2:*", "elasticloadbalancing:*"], "Resource": "*"}],
    },
}


def partition_for(region: str) -> str:
    """The ARN partition of a region (ARNs must match what a real account would return)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def availability_zones(ec2: Any, region: str, count: int = 3) -> list[str]:
    """The first ``count`` zones of the region, e.g. ap-northeast-2a/b/c.

    Asked of EC2 because some regions have no ``a`` zone; falls back to region + a/b/c.
    """
    zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"])
    if len(zones) >= count:
        return zones[:count]
    return [f"{region}{letter}" for letter in "abc"[:count]]


def subnet_is_private(ec2_backend: Any, subnet_id: str) -> bool:
    """True unless the subnet's route table (explicit, else the VPC's main one) routes to an IGW.

    This is EKS's own definition for Fargate profiles; a NAT route keeps a subnet private.
    Works on moto's EC2 backend object (in-process), so the EKS extension can call it.
    """
    subnet = ec2_backend.get_subnet(subnet_id)
    tables = ec2_backend.describe_route_tables(filters={"association.subnet-id": [subnet_id]})
    if not tables:
        tables = ec2_backend.describe_route_tables(
            filters={"association.main": ["true"], "vpc-id": [subnet.vpc_id]}
        )
    for table in tables:
        for route in table.routes:
            gateway_id = getattr(route.gateway, "id", "") or ""
            if gateway_id.startswith("igw-"):
                return False
    return True


def _tags(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def _cfn_suffix() -> str:
    # CloudFormation-style physical-name suffix, as in eksctl-<cluster>-cluster-...-1A2B3C4D5E6F.
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(12))


def _role(iam: Any, name: str, service: str, policy: str, partition: str, tags: dict[str, str]) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    arn: str = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(trust),
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )["Role"]["Arn"]
    try:
        iam.attach_role_policy(RoleName=name, PolicyArn=f"arn:{partition}:iam::aws:policy/{policy}")
    except ClientError as err:
        if err.response["Error"]["Code"] != "NoSuchEntity":
            raise
        policy_arn = _customer_policy(iam, policy)
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    return arn


def _customer_policy(iam: Any, policy: str) -> str:
    try:
        created: str = iam.create_policy(
            PolicyName=policy, PolicyDocument=json.dumps(_POLICY_DOCUMENTS[policy])
        )["Policy"]["Arn"]
        return created
    except ClientError as err:
        if err.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
    for page in iam.get_paginator("list_policies").paginate(Scope="Local"):
        for found in page["Policies"]:
            if found["PolicyName"] == policy:
                return str(found["Arn"])
    raise RuntimeError(f"policy {policy} exists but cannot be listed")


def seed_workshop(
    region: str,
    cluster_name: str,
    endpoint: str,
    ca_pem: str,
    run_id: str,
    *,
    endpoint_url: str | None = None,
) -> dict[str, Any]:
    """Create the workshop's network, roles and cluster; return their ids.

    AWS calls go through boto3 (``endpoint_url`` = the moto server, or None under ``mock_aws``)
    with dummy credentials, so this can never touch a real account. The cluster's endpoint and
    CA are then patched on moto's stored object, so this must run in the moto process.
    """
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    ec2 = session.client("ec2", endpoint_url=endpoint_url)
    iam = session.client("iam", endpoint_url=endpoint_url)
    eks = session.client("eks", endpoint_url=endpoint_url)
    account = session.client("sts", endpoint_url=endpoint_url).get_caller_identity()["Account"]
    partition = partition_for(region)
    run_tag = {RUN_ID_TAG: run_id}
    shared = {f"kubernetes.io/cluster/{cluster_name}": "shared", **run_tag}
    prefix = f"eksctl-{cluster_name}-cluster"

    vpc_id = ec2.create_vpc(
        CidrBlock=VPC_CIDR, TagSpecifications=_tags("vpc", {"Name": f"{prefix}/VPC", **shared})
    )["Vpc"]["VpcId"]
    # eksctl turns both on; private clusters (001) need them for VPC endpoint DNS.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    igw_id = ec2.create_internet_gateway(
        TagSpecifications=_tags("internet-gateway", {"Name": f"{prefix}/InternetGateway", **run_tag})
    )["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    zones = availability_zones(ec2, region)

    def subnets(cidrs: tuple[str, ...], kind: str, role_tag: str) -> list[str]:
        ids = []
        for cidr, zone in zip(cidrs, zones):
            label = f"Subnet{kind}{zone.replace('-', '').upper()}"
            tags = {"Name": f"{prefix}/{label}", role_tag: "1", **shared}
            ids.append(
                ec2.create_subnet(
                    VpcId=vpc_id,
                    CidrBlock=cidr,
                    AvailabilityZone=zone,
                    TagSpecifications=_tags("subnet", tags),
                )["Subnet"]["SubnetId"]
            )
        return ids

    def route_table(kind: str, subnet_ids: list[str], **target: str) -> str:
        table = ec2.create_route_table(
            VpcId=vpc_id,
            TagSpecifications=_tags("route-table", {"Name": f"{prefix}/{kind}RouteTable", **run_tag}),
        )["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **target)
        for subnet_id in subnet_ids:
            ec2.associate_route_table(RouteTableId=table, SubnetId=subnet_id)
        return str(table)

    public = subnets(PUBLIC_SUBNET_CIDRS, "Public", "kubernetes.io/role/elb")
    for subnet_id in public:
        ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
    public_rt = route_table("Public", public, GatewayId=igw_id)
    eip = ec2.allocate_address(
        Domain="vpc", TagSpecifications=_tags("elastic-ip", {"Name": f"{prefix}/NATIP", **run_tag})
    )
    nat_id = ec2.create_nat_gateway(
        SubnetId=public[0],
        AllocationId=eip["AllocationId"],
        TagSpecifications=_tags("natgateway", {"Name": f"{prefix}/NATGateway", **run_tag}),
    )["NatGateway"]["NatGatewayId"]
    private = subnets(PRIVATE_SUBNET_CIDRS, "Private", "kubernetes.io/role/internal-elb")
    private_rt = route_table("Private", private, NatGatewayId=nat_id)

    sg_id = ec2.create_security_group(
        GroupName=f"eks-cluster-sg-{cluster_name}-{secrets.token_hex(5)}",
        Description="EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, as well as any managed workloads.",
        VpcId=vpc_id,
        TagSpecifications=_tags(
            "security-group", {f"kubernetes.io/cluster/{cluster_name}": "owned", **run_tag}
        ),
    )["GroupId"]

    cluster_role = _role(
        iam, f"{prefix}-ServiceRole-{_cfn_suffix()}", "eks.amazonaws.com", _CLUSTER_POLICY, partition, run_tag
    )
    pod_role = _role(
        iam,
        f"{prefix}-FargatePodExecutionRole-{_cfn_suffix()}",
        "eks-fargate-pods.amazonaws.com",
        _FARGATE_POLICY,
        partition,
        run_tag,
    )

    cluster = eks.create_cluster(
        name=cluster_name,
        version=KUBERNETES_VERSION,
        roleArn=cluster_role,
        resourcesVpcConfig={
            "subnetIds": public + private,
            "securityGroupIds": [sg_id],
            "endpointPublicAccess": True,
            "endpointPrivateAccess": False,
        },
        kubernetesNetworkConfig={"serviceIpv4Cidr": SERVICE_IPV4_CIDR, "ipFamily": "ipv4"},
        tags={SANDBOX_TAG: "true", **run_tag},
    )["cluster"]
    _patch_cluster(account, region, cluster_name, endpoint, ca_pem, vpc_id, sg_id)

    return {
        "account_id": account,
        "region": region,
        "cluster_name": cluster_name,
        "cluster_arn": cluster["arn"],
        "vpc_id": vpc_id,
        "availability_zones": zones,
        "private_subnet_ids": private,
        "public_subnet_ids": public,
        "internet_gateway_id": igw_id,
        "nat_gateway_id": nat_id,
        "public_route_table_id": public_rt,
        "private_route_table_id": private_rt,
        "cluster_security_group_id": sg_id,
        "cluster_role_arn": cluster_role,
        "pod_execution_role_arn": pod_role,
    }


def _patch_cluster(
    account: str, region: str, name: str, endpoint: str, ca_pem: str, vpc_id: str, sg_id: str
) -> None:
    # moto invents a random endpoint and CA; kubeconfigs built from DescribeCluster must reach
    # the real local API server instead, so the stored object is corrected in place.
    from moto.eks.models import eks_backends

    cluster = eks_backends[account][region].clusters[name]
    cluster.endpoint = endpoint
    cluster.certificate_authority = {"data": base64.b64encode(ca_pem.encode()).decode()}
    cluster.status = "ACTIVE"
    # Output-only fields of VpcConfigResponse that moto does not fill in.
    cluster.resources_vpc_config = {
        **cluster.resources_vpc_config,
        "vpcId": vpc_id,
        "clusterSecurityGroupId": sg_id,
    }
