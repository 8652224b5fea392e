"""How many times each service's state has changed: a poller that reads the whole of a service's state asks
first, and skips its pass when nothing changed since the last one (``GET /_fargatelab/generation``).

A service's generation counts the calls that may have changed something (every action but the reads), once
each has been carried out, and the changes no call makes: Fargate profiles finishing CREATING or DELETING
(counted once their time is up, whether or not anyone has looked since) and target health the ALBs'
proxies measured. The numbers only ever grow; a poller compares them for equality.

>>> g = Generations()
>>> g.after_call("elbv2", "DescribeLoadBalancers"); g.snapshot()["elbv2"]
0
>>> g.after_call("elbv2", "CreateLoadBalancer"); g.after_call("eks", "ListFargateProfiles"); g.snapshot()["elbv2"]
1
>>> g.bump("elbv2"); g.snapshot()["elbv2"]
2
"""

from __future__ import annotations

import threading
from typing import Callable

__all__ = ["GENERATIONS", "Generations", "READ_PREFIXES"]

#: actions that read only (AWS names its reads this way throughout)
READ_PREFIXES = ("Describe", "List", "Get")


class Generations:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._extra: dict[str, Callable[[], int]] = {}

    def after_call(self, service: str, action: str) -> None:
        """A call of ``action`` has been carried out (or has failed: counting it once too often is harmless)."""
        if not action.startswith(READ_PREFIXES):
            self.bump(service)

    def bump(self, service: str) -> None:
        with self._lock:
            self._counts[service] = self._counts.get(service, 0) + 1

    def add_source(self, service: str, changes: Callable[[], int]) -> None:
        """Changes of ``service`` that no call makes, counted by ``changes`` (which only ever grows)."""
        self._extra[service] = changes

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self._counts)
        for service, changes in self._extra.items():
            counts[service] = counts.get(service, 0) + changes()
        for service in ("eks", "elbv2"):
            counts.setdefault(service, 0)
        return counts


GENERATIONS = Generations()
