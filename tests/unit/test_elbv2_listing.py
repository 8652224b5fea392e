"""Tags of many load balancers at once, when one of them is deleted meanwhile (by a cleanup, or the controller)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from fargatelab.eks.elbv2 import TAGS_PER_CALL, with_tags


class ElasticLoadBalancing:
    def __init__(self, arns: list[str], gone: set[str]) -> None:
        self.arns, self.gone = arns, gone
        self.batches: list[int] = []

    def describe_tags(self, ResourceArns: list[str]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.batches.append(len(ResourceArns))
        if len(ResourceArns) > TAGS_PER_CALL:
            raise ClientError({"Error": {"Code": "ValidationError"}}, "DescribeTags")
        missing = [a for a in ResourceArns if a in self.gone]
        if missing:
            raise ClientError({"Error": {"Code": "LoadBalancerNotFound", "Message": missing[0]}}, "DescribeTags")
        return {"TagDescriptions": [{"ResourceArn": a, "Tags": [{"Key": "run", "Value": a[-2:]}]}
                                    for a in ResourceArns]}


def test_batches_of_twenty_and_a_resource_deleted_meanwhile_is_left_out() -> None:
    arns = [f"arn:lb/{i:02d}" for i in range(25)]
    elbv2 = ElasticLoadBalancing(arns, gone={"arn:lb/03"})
    tagged = with_tags(elbv2, [{"LoadBalancerArn": a} for a in arns], "LoadBalancerArn")
    assert [t["LoadBalancerArn"] for t in tagged] == [a for a in arns if a != "arn:lb/03"]
    assert tagged[0]["Tags"] == {"run": "00"}
    assert elbv2.batches == [20] + [1] * 20 + [5]


def test_other_errors_are_not_swallowed() -> None:
    class Denied(ElasticLoadBalancing):
        def describe_tags(self, ResourceArns: list[str]) -> dict[str, Any]:  # noqa: N803
            raise ClientError({"Error": {"Code": "AccessDenied"}}, "DescribeTags")

    with pytest.raises(ClientError, match="AccessDenied"):
        with_tags(Denied([], set()), [{"LoadBalancerArn": "arn:lb/00"}], "LoadBalancerArn")
