"""ARNs as IAM, STS and EKS write them."""

from __future__ import annotations

import re

__all__ = ["arn_partition", "principal_arn"]

_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")


def arn_partition(region: str) -> str:
    """The ARN partition of a region.

    >>> arn_partition("ap-northeast-2"), arn_partition("cn-north-1"), arn_partition("us-gov-west-1")
    ('aws', 'aws-cn', 'aws-us-gov')
    """
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def principal_arn(arn: str) -> str:
    """The IAM principal behind an STS ARN (assumed role -> role), for iam:SimulatePrincipalPolicy.

    >>> principal_arn("arn:aws:sts::123456789012:assumed-role/Admin/alice")
    'arn:aws:iam::123456789012:role/Admin'
    >>> principal_arn("arn:aws:iam::123456789012:user/bob")
    'arn:aws:iam::123456789012:user/bob'
    """
    if m := _ASSUMED_ROLE.match(arn):
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    return arn
