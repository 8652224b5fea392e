"""Errors a user can cause, each with one line that says what to do and a distinct exit code."""

from __future__ import annotations

__all__ = ["HarnessError", "ExitCode"]


class ExitCode:
    """Process exit codes of the ``fargate-lab`` command; each failure class has its own."""

    OK = 0
    USAGE = 2
    NOT_RUNNING = 3
    ALREADY_RUNNING = 4
    MISSING_BINARY = 5
    PORT_IN_USE = 6
    START_FAILED = 7
    BAD_INPUT = 8
    BACKEND_UNAVAILABLE = 9
    UNSAFE_CLUSTER = 10
    AWS = 11
    NO_CREDENTIALS = 12
    CLUSTER_NOT_ACTIVE = 13
    NOT_FARGATE_READY = 14
    NO_LOAD_BALANCER_CONTROLLER = 15
    MISSING_PERMISSIONS = 16
    LEAKED_RESOURCES = 17
    KUBERNETES_UNAUTHORIZED = 18
    COMPONENT_DIED = 19
    INTERRUPTED = 130


class HarnessError(Exception):
    """A failure the user can act on: ``str(err)`` is the one line shown, ``code`` the exit code."""

    def __init__(self, message: str, code: int = ExitCode.BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code
