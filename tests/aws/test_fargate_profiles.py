"""CreateFargateProfile/DeleteFargateProfile rules and lifecycle, as real EKS answers them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import CREATE_SECONDS, DELETE_SECONDS, Server, wait_for

pytestmark = pytest.mark.integration

RUN_TAG = {"fargate-labs/run-id": "pytest-aws"}


def _create(eks: Any, server: Server, cluster: str, name: str, **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "clusterName": cluster,
        "fargateProfileName": name,
        "podExecutionRoleArn": server.seed["pod_execution_role_arn"],
        "selectors": [{"namespace": name}],
        **extra,
    }
    profile: dict[str, Any] = eks.create_fargate_profile(**args)["fargateProfile"]
    return profile


def _status(eks: Any, cluster: str, name: str) -> str:
    return str(
        eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)["fargateProfile"]["status"]
    )


def _active(eks: Any, server: Server, cluster: str, name: str) -> None:
    _create(eks, server, cluster, name)
    wait_for(lambda: _status(eks, cluster, name) == "ACTIVE")


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_new_profile_is_creating_then_active_after_the_delay(eks: Any, server: Server, cluster: str) -> None:
    started = time.monotonic()
    assert _create(eks, server, cluster, "game")["status"] == "CREATING"
    assert _status(eks, cluster, "game") == "CREATING"
    wait_for(lambda: _status(eks, cluster, "game") == "ACTIVE")
    assert time.monotonic() - started >= CREATE_SECONDS


def test_deleted_profile_is_deleting_and_listed_then_gone_after_the_delay(
    eks: Any, server: Server, cluster: str
) -> None:
    _active(eks, server, cluster, "game")
    started = time.monotonic()
    deleted = eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="game")["fargateProfile"]
    assert deleted["status"] == "DELETING"
    assert eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"] == ["game"]
    wait_for(lambda: eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"] == [])
    assert time.monotonic() - started >= DELETE_SECONDS
    with pytest.raises(ClientError) as excinfo:
        eks.describe_fargate_profile(clusterName=cluster, fargateProfileName="game")
    assert _error(excinfo) == ("ResourceNotFoundException", "No Fargate Profile found with name: game.", 404)


def test_create_while_another_is_creating_is_rejected_409(eks: Any, server: Server, cluster: str) -> None:
    _create(eks, server, cluster, "first")
    with pytest.raises(ClientError) as excinfo:
        _create(eks, server, cluster, "second")
    assert _error(excinfo) == (
        "ResourceInUseException",
        f"Cannot create Fargate Profile second because cluster {cluster} currently has Fargate profile first in status CREATING",
        409,
    )


def test_create_while_another_is_deleting_is_rejected_409(eks: Any, server: Server, cluster: str) -> None:
    _active(eks, server, cluster, "old")
    eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="old")
    with pytest.raises(ClientError) as excinfo:
        _create(eks, server, cluster, "new")
    assert _error(excinfo) == (
        "ResourceInUseException",
        f"Cannot create Fargate Profile new because cluster {cluster} currently has Fargate profile old in status DELETING",
        409,
    )


def test_delete_while_another_is_deleting_is_rejected_409(eks: Any, server: Server, cluster: str) -> None:
    _active(eks, server, cluster, "one")
    _active(eks, server, cluster, "two")
    eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="one")
    with pytest.raises(ClientError) as excinfo:
        eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="two")
    assert _error(excinfo) == (
        "ResourceInUseException",
        f"Cannot Delete Fargate Profile two because cluster {cluster} currently has Fargate profile one in status DELETING",
        409,
    )


def test_delete_while_another_is_creating_is_rejected_409(eks: Any, server: Server, cluster: str) -> None:
    _active(eks, server, cluster, "one")
    _create(eks, server, cluster, "two")
    with pytest.raises(ClientError) as excinfo:
        eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="one")
    assert _error(excinfo) == (
        "ResourceInUseException",
        f"Cannot Delete Fargate Profile one because cluster {cluster} currently has Fargate profile two in status CREATING",
        409,
    )


def test_next_create_succeeds_once_the_transition_is_over(eks: Any, server: Server, cluster: str) -> None:
    _active(eks, server, cluster, "first")
    assert _create(eks, server, cluster, "second")["status"] == "CREATING"


def test_other_clusters_transitions_do_not_block(eks: Any, server: Server, cluster: str) -> None:
    _create(eks, server, cluster, "here")
    other = f"{cluster}-b"
    eks.create_cluster(
        name=other,
        roleArn=server.seed["cluster_role_arn"],
        resourcesVpcConfig={"subnetIds": server.seed["private_subnet_ids"]},
    )
    assert _create(eks, server, other, "there")["status"] == "CREATING"


def test_duplicate_name_is_rejected_409(eks: Any, server: Server, cluster: str) -> None:
    _active(eks, server, cluster, "game")
    with pytest.raises(ClientError) as excinfo:
        _create(eks, server, cluster, "game")
    assert _error(excinfo) == (
        "ResourceInUseException",
        "A Fargate Profile already exists with this name in this cluster.",
        409,
    )


def test_reserved_eks_prefix_is_rejected(eks: Any, server: Server, cluster: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(eks, server, cluster, "eks-game")
    assert _error(excinfo) == (
        "InvalidParameterException",
        "The fargate profile name starts with the reserved prefix: 'eks-'.",
        400,
    )


def test_six_selectors_are_rejected(eks: Any, server: Server, cluster: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(eks, server, cluster, "many", selectors=[{"namespace": f"ns{i}"} for i in range(6)])
    code, _, status = _error(excinfo)
    assert (code, status) == ("InvalidParameterException", 400)


def test_five_selectors_with_labels_are_accepted(eks: Any, server: Server, cluster: str) -> None:
    selectors = [{"namespace": f"study-{i}*", "labels": {"app": "x"}} for i in range(5)]
    assert _create(eks, server, cluster, "five", selectors=selectors)["selectors"] == selectors


def test_selector_without_namespace_is_rejected(eks: Any, server: Server, cluster: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(eks, server, cluster, "nons", selectors=[{"namespace": "ok"}, {"labels": {"app": "x"}}])
    assert _error(excinfo) == (
        "InvalidParameterException",
        "Fargate Profile must have at least one selector with at least one namespace value.",
        400,
    )


def test_public_subnet_is_rejected_as_not_private(eks: Any, server: Server, cluster: str) -> None:
    public = server.seed["public_subnet_ids"][1]
    with pytest.raises(ClientError) as excinfo:
        _create(eks, server, cluster, "pub", subnets=[server.seed["private_subnet_ids"][0], public])
    assert _error(excinfo) == (
        "InvalidParameterException",
        f"Subnet {public} provided in Fargate Profile is not a private subnet",
        400,
    )


def test_rejected_create_leaves_no_profile_behind(eks: Any, server: Server, cluster: str) -> None:
    with pytest.raises(ClientError):
        _create(eks, server, cluster, "pub", subnets=server.seed["public_subnet_ids"])
    assert eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"] == []


def test_explicit_private_subnets_are_kept(eks: Any, server: Server, cluster: str) -> None:
    chosen = server.seed["private_subnet_ids"][:2]
    assert _create(eks, server, cluster, "two-az", subnets=chosen)["subnets"] == chosen


def test_omitted_subnets_default_to_the_clusters_private_subnets(
    eks: Any, server: Server, cluster: str
) -> None:
    profile = _create(eks, server, cluster, "fargate-game-2048")
    assert sorted(profile["subnets"]) == sorted(server.seed["private_subnet_ids"])
    assert profile["podExecutionRoleArn"] == server.seed["pod_execution_role_arn"]
    assert profile["selectors"] == [{"namespace": "fargate-game-2048"}]


def test_tags_given_on_create_are_kept_and_listed_by_arn(eks: Any, server: Server, cluster: str) -> None:
    profile = _create(eks, server, cluster, "tagged", tags=RUN_TAG)
    assert profile["tags"] == RUN_TAG
    assert (
        eks.describe_fargate_profile(clusterName=cluster, fargateProfileName="tagged")["fargateProfile"][
            "tags"
        ]
        == RUN_TAG
    )
    assert eks.list_tags_for_resource(resourceArn=profile["fargateProfileArn"])["tags"] == RUN_TAG


def test_unknown_cluster_is_resource_not_found_on_create_and_list(eks: Any, server: Server) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(eks, server, "no-such-cluster", "x")
    assert _error(excinfo) == (
        "ResourceNotFoundException",
        "No cluster found for name: no-such-cluster.",
        404,
    )
    with pytest.raises(ClientError) as excinfo:
        eks.list_fargate_profiles(clusterName="no-such-cluster")
    assert _error(excinfo)[0] == "ResourceNotFoundException"


def test_injected_fault_fails_the_next_count_calls_then_stops(eks: Any, server: Server, cluster: str) -> None:
    status, body = server.control(
        "POST",
        "inject",
        {"action": "CreateFargateProfile", "error": "ResourceInUseException", "count": 2, "message": "busy"},
    )
    assert status == 200 and body["pending"][0]["count"] == 2
    for _ in range(2):
        with pytest.raises(ClientError) as excinfo:
            _create(eks, server, cluster, "retry")
        assert _error(excinfo) == ("ResourceInUseException", "busy", 409)
    assert server.control("GET", "inject") == (200, {"pending": []})
    assert eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"] == []
    assert _create(eks, server, cluster, "retry")["status"] == "CREATING"


def test_injected_fault_hits_only_its_action_and_can_override_status(
    eks: Any, server: Server, cluster: str
) -> None:
    server.control(
        "POST", "inject", [{"action": "DeleteFargateProfile", "error": "ServerException", "status": 500}]
    )
    assert _create(eks, server, cluster, "kept")["status"] == "CREATING"
    wait_for(lambda: _status(eks, cluster, "kept") == "ACTIVE")
    with pytest.raises(ClientError) as excinfo:
        eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="kept")
    code, message, status = _error(excinfo)
    assert (code, status) == ("ServerException", 500) and "DeleteFargateProfile" in message
    assert _status(eks, cluster, "kept") == "ACTIVE"


def test_malformed_injection_is_rejected_400(server: Server) -> None:
    assert server.control("POST", "inject", {"action": "CreateFargateProfile"})[0] == 400
    assert server.control("POST", "inject", {"action": "X", "error": "Y", "count": 0})[0] == 400
    assert server.control("GET", "inject") == (200, {"pending": []})


def test_faults_preset_by_env_var_apply_from_the_first_call(launcher: Any) -> None:
    fault = '[{"action": "DescribeCluster", "error": "ResourceNotFoundException", "count": 1}]'
    one = launcher(env={"FARGATELAB_AWS_FAULTS": fault})
    eks = one.client("eks")
    with pytest.raises(ClientError) as excinfo:
        eks.describe_cluster(name="eksworkshop")
    assert _error(excinfo)[::2] == ("ResourceNotFoundException", 404)
    assert eks.describe_cluster(name="eksworkshop")["cluster"]["status"] == "ACTIVE"
