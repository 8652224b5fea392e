"""Retrying the EKS calls that fail only while something else is in transition."""

from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["ROLE_NOT_YET_PROPAGATED", "retry_transient"]

#: what CreateFargateProfile answers while IAM has not yet propagated a just-created pod execution role
#: (InvalidParameterException; the same text as for a role that really lacks the principal)
ROLE_NOT_YET_PROPAGATED = "Misconfigured PodExecutionRole Trust Policy"


def retry_transient(call: Callable[[], Any], attempts: int = 8, first_delay: float = 1.0) -> Any:
    """Retry ``call`` while EKS says another profile is in transition, with exponential backoff.

    A pod execution role refused as misconfigured is retried the same way: the eks backend checks that
    the role trusts ``eks-fargate-pods.amazonaws.com`` before the run, and a role made just before is
    refused so until IAM propagates it. About 90 s of retries in all, then the refusal is raised.
    """
    delay = first_delay
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            message = str(exc)
            transient = ((code == "ResourceInUseException" and "already exists" not in message)
                         or (code == "InvalidParameterException" and ROLE_NOT_YET_PROPAGATED in message))
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")
