"""What eksctl makes of its own: the CloudFormation stack holding the pod execution role it creates for
``eksctl create fargateprofile`` on a cluster it did not create."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from .aws_errors import error_code

__all__ = ["eksctl_stack_name", "eksctl_stack_role"]


def eksctl_stack_name(cluster: str) -> str:
    """The CloudFormation stack ``eksctl create fargateprofile`` makes for the pod execution role of a
    cluster eksctl did not create."""
    return f"eksctl-{cluster}-fargate"


def eksctl_stack_role(cfn: Any, stack: str) -> str | None:
    """The IAM role (name) in eksctl's stack ``stack``, or None when there is no such stack or role."""
    try:
        resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    except ClientError as exc:
        if error_code(exc) == "ValidationError":  # "Stack with id … does not exist"
            return None
        raise
    return next((r.get("PhysicalResourceId") for r in resources if r["ResourceType"] == "AWS::IAM::Role"), None)
