"""How many times each service's state has changed: a poller that reads the whole of a service's state asks
first, and skips its pass when nothing changed since the last one (``GET /_fargatelab/generation``).

A service's generation counts the calls that may have changed something (every action but the reads), once
each has been carried out, and the changes no call makes: Fargate profiles finishing CREATING or DELETING
(counted once their time is up, whether or not anyone has looked since) and target health the ALBs'
proxies measured. The numbers only ever grow, from zero when the server starts; ``boot`` names that
start, so a poller that compares both for equality is not fooled by a restarted server.

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
import uuid
from typing import Callable, Union

__all__ = ["GENERATIONS", "Generations", "READ_PREFIXES"]

#: actions that read only (AWS names its reads this way throughout)
READ_PREFIXES = ("Describe", "List", "Get")


class Generations:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._extra: dict[str, Callable[[], int]] = {}
        self.boot = uuid.uuid4().hex[:12]

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

    def snapshot(self) -> dict[str, Union[int, str]]:
        with self._lock:
            counts: dict[str, Union[int, str]] = dict(self._counts)
        for service, changes in self._extra.items():
            counts[service] = int(counts.get(service, 0)) + changes()
        for service in ("eks", "elbv2"):
            counts.setdefault(service, 0)
        counts["boot"] = self.boot
        return counts


GENERATIONS = Generations()
