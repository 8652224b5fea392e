"""One wait helper with named conditions, in the shape of e2e-framework's ``wait.For``.

A condition is a callable returning ``(done, observed)``: ``observed`` says what the cluster shows
right now, so a timeout reports expected vs actual instead of just "timed out".

>>> import itertools
>>> counter = itertools.count()
>>> reaches_three = condition("counter reaches 3", lambda: (lambda n: (n >= 3, f"counter={n}"))(next(counter)))
>>> for_(reaches_three, timeout=5, interval=0.001)
'counter=3'
>>> for_(condition("never", lambda: (False, "still no")), timeout=0.01, interval=0.001)
Traceback (most recent call last):
...
fargatelab.wait.WaitTimeout: timed out after 0.0s waiting for never; last seen: still no
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["Condition", "WaitTimeout", "ComponentDied", "condition", "for_", "progress_enabled"]

Probe = Callable[[], tuple[bool, str]]

#: A liveness check of the environment: returns the name of a dead component, or None.
Liveness = Callable[[], "str | None"]


class WaitTimeout(AssertionError):
    """A wait ran out: carries the condition's name and what was last observed."""

    def __init__(self, name: str, timeout: float, observed: str) -> None:
        super().__init__(f"timed out after {timeout:.1f}s waiting for {name}; last seen: {observed}")
        self.name = name
        self.observed = observed


class ComponentDied(AssertionError):
    """The environment lost a component while a step was waiting on it."""


@dataclass(frozen=True)
class Condition:
    name: str
    probe: Probe


def condition(name: str, probe: Probe) -> Condition:
    return Condition(name, probe)


progress_enabled = sys.stderr.isatty()


def for_(
    cond: Condition,
    timeout: float,
    interval: float = 0.5,
    liveness: Liveness | None = None,
) -> str:
    """Poll ``cond`` until it holds; return what was observed then.

    Raises :class:`WaitTimeout` with the last observation, or :class:`ComponentDied` as soon as
    ``liveness`` names a dead component (no waiting out the timeout for a cluster that is gone).
    """
    started = time.monotonic()
    observed = "nothing observed yet"
    while True:
        try:
            done, observed = cond.probe()
        except Exception as exc:  # an API error is an observation too; the wait goes on
            done, observed = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if done:
            if progress_enabled:
                sys.stderr.write("\r\033[K")
            return observed
        elapsed = time.monotonic() - started
        if liveness is not None:
            dead = liveness()
            if dead:
                raise ComponentDied(f"{dead} died while waiting for {cond.name} (after {elapsed:.0f}s)")
        if elapsed >= timeout:
            raise WaitTimeout(cond.name, timeout, observed)
        if progress_enabled:
            sys.stderr.write(f"\r\033[K  waiting for {cond.name}: {elapsed:.0f}s of {timeout:.0f}s ({observed[:60]})")
            sys.stderr.flush()
        time.sleep(interval)
