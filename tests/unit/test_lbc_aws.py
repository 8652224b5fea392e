"""The controller's ELBv2 side against moto in-process: create, adopt after a restart, replace, delete."""

from __future__ import annotations

from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from fargatelab.emulator.lbc_aws import StackDeployer, read_inventory
from fargatelab.emulator.lbc_model import ModelError, StackSpec, build_stack
from fargatelab.emulator.lbc_subnets import discover_subnets, resolve_vpc

REGION = "ap-northeast-2"
CLUSTER = "eksworkshop"
NS = "study-aews"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        elbv2 = boto3.client("elbv2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.11.0.0/16", TagSpecifications=[
            {"ResourceType": "vpc", "Tags": [{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "shared"}]}])["Vpc"]
        ids: dict[str, list[str]] = {"public": [], "private": []}
        for i, zone in enumerate("abc"):
            for kind, role, third in (("public", "kubernetes.io/role/elb", i * 16),
                                      ("private", "kubernetes.io/role/internal-elb", 64 + i * 16)):
                ids[kind].append(ec2.create_subnet(
                    VpcId=vpc["VpcId"], CidrBlock=f"10.11.{third}.0/20", AvailabilityZone=f"{REGION}{zone}",
                    TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": role, "Value": "1"}]}],
                )["Subnet"]["SubnetId"])
        yield {"ec2": ec2, "elbv2": elbv2, "vpc": vpc["VpcId"], **ids}


def spec(scheme: str = "internet-facing", paths: list[str] | None = None, **annotations: str) -> StackSpec:
    ingress = {"metadata": {"name": "ingress-2048", "namespace": NS,
                            "annotations": {"alb.ingress.kubernetes.io/scheme": scheme,
                                            "alb.ingress.kubernetes.io/target-type": "ip", **annotations}},
               "spec": {"rules": [{"http": {"paths": [
                   {"path": p, "pathType": "Prefix",
                    "backend": {"service": {"name": "service-2048", "port": {"number": 80}}}}
                   for p in (paths or ["/"])]}}]}}
    service = {"metadata": {"name": "service-2048", "namespace": NS, "uid": "u1"},
               "spec": {"ports": [{"port": 80, "targetPort": 80}]}}
    return build_stack(ingress, {"service-2048": service}, CLUSTER)


def deployer(aws: dict[str, Any]) -> StackDeployer:
    return StackDeployer(aws["elbv2"], aws["ec2"], CLUSTER, "run-1", lambda: str(aws["vpc"]))


def tags_of(elbv2: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]}


def test_resolve_vpc_and_discover_subnets(aws: dict[str, Any]) -> None:
    assert resolve_vpc(aws["ec2"], CLUSTER) == aws["vpc"]
    assert discover_subnets(aws["ec2"], aws["vpc"], "internet-facing", CLUSTER) == sorted(aws["public"])
    assert discover_subnets(aws["ec2"], aws["vpc"], "internal", CLUSTER) == sorted(aws["private"])


def test_deploy_creates_tagged_stack(aws: dict[str, Any]) -> None:
    elbv2, want = aws["elbv2"], spec()
    deployed = deployer(aws).deploy(want, read_inventory(elbv2, CLUSTER))
    assert deployed.changed
    (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
    assert (lb["LoadBalancerName"], lb["Scheme"], lb["Type"]) == (want.lb_name, "internet-facing", "application")
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(aws["public"])
    assert tags_of(elbv2, lb["LoadBalancerArn"]) == {
        "elbv2.k8s.aws/cluster": CLUSTER, "ingress.k8s.aws/stack": f"{NS}/ingress-2048",
        "ingress.k8s.aws/resource": "LoadBalancer", "fargate-labs/run-id": "run-1"}
    (tg,) = elbv2.describe_target_groups()["TargetGroups"]
    assert (tg["TargetGroupName"], tg["TargetType"], tg["Port"]) == (want.target_groups[0].name, "ip", 80)
    assert tags_of(elbv2, tg["TargetGroupArn"])["ingress.k8s.aws/resource"] == f"{NS}/ingress-2048-service-2048:80"
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert listener["Port"] == 80
    assert listener["DefaultActions"] == [
        {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"}}]
    rules = [r for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]]
    assert [(r["Priority"], r["Conditions"][0]["PathPatternConfig"]["Values"]) for r in rules] == [("1", ["/*"])]


def test_an_ingress_that_names_its_run_tags_its_resources_with_that_run(aws: dict[str, Any]) -> None:
    """The labs tag their Ingress with their run id; on an environment made by another run it still counts."""
    elbv2 = aws["elbv2"]
    want = spec(**{"alb.ingress.kubernetes.io/tags": "fargate-labs/run-id=lab-run,team=aews"})
    deployer(aws).deploy(want, read_inventory(elbv2, CLUSTER))
    (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
    (tg,) = elbv2.describe_target_groups()["TargetGroups"]
    for arn in (lb["LoadBalancerArn"], tg["TargetGroupArn"]):
        tags = tags_of(elbv2, arn)
        assert (tags["fargate-labs/run-id"], tags["team"], tags["elbv2.k8s.aws/cluster"]) == ("lab-run", "aews", CLUSTER)


def test_restarted_deployer_adopts_instead_of_duplicating(aws: dict[str, Any]) -> None:
    elbv2 = aws["elbv2"]
    first = deployer(aws).deploy(spec(), read_inventory(elbv2, CLUSTER))
    again = deployer(aws).deploy(spec(), read_inventory(elbv2, CLUSTER))  # a fresh instance: no memory
    assert not again.changed
    assert again.lb_arn == first.lb_arn and again.target_group_arns == first.target_group_arns
    assert len(elbv2.describe_load_balancers()["LoadBalancers"]) == 1
    assert len(elbv2.describe_target_groups()["TargetGroups"]) == 1


def test_half_made_stack_is_completed(aws: dict[str, Any]) -> None:
    elbv2 = aws["elbv2"]
    first = deployer(aws).deploy(spec(), read_inventory(elbv2, CLUSTER))
    for listener in elbv2.describe_listeners(LoadBalancerArn=first.lb_arn)["Listeners"]:
        elbv2.delete_listener(ListenerArn=listener["ListenerArn"])  # as if the last life died mid-way
    again = deployer(aws).deploy(spec(), read_inventory(elbv2, CLUSTER))
    assert again.changed and again.lb_arn == first.lb_arn
    assert len(elbv2.describe_listeners(LoadBalancerArn=first.lb_arn)["Listeners"]) == 1


def test_rules_follow_paths(aws: dict[str, Any]) -> None:
    elbv2 = aws["elbv2"]
    deployed = deployer(aws).deploy(spec(paths=["/", "/api"]), read_inventory(elbv2, CLUSTER))
    deployer(aws).deploy(spec(paths=["/game"]), read_inventory(elbv2, CLUSTER))
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=deployed.lb_arn)["Listeners"]
    rules = [r for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]]
    assert [r["Conditions"][0]["PathPatternConfig"]["Values"] for r in rules] == [["/game", "/game/*"]]


def test_scheme_change_replaces_the_load_balancer(aws: dict[str, Any]) -> None:
    elbv2 = aws["elbv2"]
    first = deployer(aws).deploy(spec("internet-facing"), read_inventory(elbv2, CLUSTER))
    second = deployer(aws).deploy(spec("internal"), read_inventory(elbv2, CLUSTER))
    (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
    assert lb["LoadBalancerArn"] == second.lb_arn != first.lb_arn
    assert lb["Scheme"] == "internal"
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(aws["private"])


def test_missing_subnet_tags_fail_before_anything_is_made(aws: dict[str, Any]) -> None:
    aws["ec2"].delete_tags(Resources=aws["public"], Tags=[{"Key": "kubernetes.io/role/elb"}])
    with pytest.raises(ModelError, match=r"\(0 match VPC and tags: \[kubernetes.io/role/elb\]\)"):
        deployer(aws).deploy(spec(), read_inventory(aws["elbv2"], CLUSTER))
    assert aws["elbv2"].describe_load_balancers()["LoadBalancers"] == []


def test_delete_leaves_nothing(aws: dict[str, Any]) -> None:
    elbv2 = aws["elbv2"]
    deployer(aws).deploy(spec(), read_inventory(elbv2, CLUSTER))
    assert deployer(aws).delete(f"{NS}/ingress-2048", read_inventory(elbv2, CLUSTER))
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert elbv2.describe_target_groups()["TargetGroups"] == []
    assert read_inventory(elbv2, CLUSTER).stacks() == set()
