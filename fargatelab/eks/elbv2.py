"""Listing Elastic Load Balancing resources with their tags, as both the cleanup and the load balancer
controller emulation find theirs: by tags, since names are the controller's own hashes."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

__all__ = ["paged", "with_tags"]

#: DescribeTags takes at most 20 ARNs
TAGS_PER_CALL = 20


def paged(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list call."""
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page[key])
    return items


def _not_found(exc: ClientError) -> bool:
    return "NotFound" in str(exc.response.get("Error", {}).get("Code", ""))


def with_tags(elbv2: Any, items: list[dict[str, Any]], arn_key: str) -> list[dict[str, Any]]:
    """``items`` with their ``Tags`` as a dict; one deleted between the list and the tags is left out."""
    arns = [i[arn_key] for i in items]
    tags: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), TAGS_PER_CALL):
        batch = arns[start:start + TAGS_PER_CALL]
        try:
            descriptions = elbv2.describe_tags(ResourceArns=batch)["TagDescriptions"]
        except ClientError as exc:
            if not _not_found(exc):
                raise
            # One of the batch is gone, and DescribeTags fails the whole batch for it: ask one by one.
            descriptions = []
            for arn in batch:
                try:
                    descriptions += elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
                except ClientError as inner:
                    if not _not_found(inner):
                        raise
        for desc in descriptions:
            tags[desc["ResourceArn"]] = {t["Key"]: t.get("Value", "") for t in desc.get("Tags") or []}
    return [{**i, "Tags": tags[i[arn_key]]} for i in items if i[arn_key] in tags]
