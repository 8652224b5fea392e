"""What an AWS API error says, read the same way by the eks backend's preflight and by the cleanup."""

from __future__ import annotations

__all__ = ["error_code", "access_denied"]

# Not every service says AccessDenied (EC2 answers UnauthorizedOperation, for one); a refusal must be
# told apart from a failure, since only the first is a missing permission to report as such.
_DENIED_CODES = ("UnauthorizedOperation", "AuthorizationError", "UnauthorizedException")


def error_code(exc: BaseException) -> str:
    """The ``Error.Code`` of a botocore ``ClientError``; "" for any other exception.

    >>> error_code(ValueError("no response"))
    ''
    """
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def access_denied(exc: BaseException) -> bool:
    """Whether the call was refused for lack of permission (as opposed to failing)."""
    code = error_code(exc)
    return "AccessDenied" in code or code in _DENIED_CODES
