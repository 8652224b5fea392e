"""Typed failures: a documented fact not met, a documented step not yet done, the harness itself broken.

The first two are assertion failures (the cluster is not as the documents record); they carry their
parts as data, which the report shows as they are instead of parsing text. A harness failure — kubectl
failing, the API unreachable — is a :class:`~fargatelab.errors.HarnessError`: the run reports it as an
error, never as a wrong documented fact.
"""

from __future__ import annotations

from typing import Any

from ..errors import ExitCode, HarnessError

__all__ = ["Failure", "FactMismatch", "Missing", "CommandFailed", "KubectlFailed"]


class Failure(AssertionError):
    """A documented outcome not met; :meth:`data` is what the report shows."""

    kind = "failure"

    def data(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": str(self)}


class FactMismatch(Failure):
    """One documented fact, with what the documents record and what the cluster shows.

    >>> str(FactMismatch("replicas", 3, 2))
    'replicas\\n  expected: 3\\n  actual:   2'
    """

    kind = "fact"

    def __init__(self, fact: str, expected: Any, actual: Any) -> None:
        super().__init__(f"{fact}\n  expected: {expected!r}\n  actual:   {actual!r}")
        self.fact, self.expected, self.actual = fact, expected, actual

    def data(self) -> dict[str, Any]:
        return {"kind": self.kind, "fact": self.fact, "expected": repr(self.expected), "actual": repr(self.actual),
                "message": str(self)}


class Missing(Failure):
    """Check mode: something a documented step makes is not there; ``fix`` is the command that makes it.

    >>> str(Missing("Deployment study-aews/netshoot", "kubectl apply -f netshoot.yaml"))
    'missing: Deployment study-aews/netshoot; run: kubectl apply -f netshoot.yaml'
    """

    kind = "missing"

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"missing: {what}; run: {fix}")
        self.what, self.fix = what, fix

    def data(self) -> dict[str, Any]:
        return {"kind": self.kind, "missing": self.what, "fix": self.fix, "message": str(self)}


class CommandFailed(FactMismatch):
    """A documented command line, run as written through its real CLI, did not succeed: the workshop's
    students would see the same.

    >>> str(CommandFailed("eksctl get cluster", 1, "Error: boom"))
    'exit code of `eksctl get cluster` (its output ends: Error: boom)\\n  expected: 0\\n  actual:   1'
    """

    kind = "command"

    def __init__(self, command: str, exit_code: int, output: str) -> None:
        tail = " | ".join(output.strip().splitlines()[-3:])
        super().__init__(f"exit code of `{command}`" + (f" (its output ends: {tail})" if tail else ""), 0, exit_code)
        self.command, self.exit_code, self.output = command, exit_code, output


class KubectlFailed(HarnessError):
    """kubectl itself failed where the step needed it to work: the harness or cluster is broken."""

    def __init__(self, command: str, returncode: int, stderr: str) -> None:
        super().__init__(f"`{command}` failed ({returncode}): {stderr.strip()}", ExitCode.START_FAILED)
        self.command, self.returncode, self.stderr = command, returncode, stderr
