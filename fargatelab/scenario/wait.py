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
fargatelab.scenario.wait.WaitTimeout: timed out after 0.0s waiting for never; last seen: still no

A check that returns what it found, or something falsy while it has not, waits with :func:`until`:

>>> answers = iter([None, [], ["pod-a"]])
>>> until(lambda: next(answers), timeout=5, what="a pod", interval=0.001)
['pod-a']
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, TypeVar, cast

__all__ = ["Condition", "WaitTimeout", "ComponentDied", "WaitStatus", "condition", "for_", "until",
           "progress_enabled", "add_progress_sink", "remove_progress_sink"]

Probe = Callable[[], tuple[bool, str]]
T = TypeVar("T")

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
    #: how long to wait when the caller does not say (set by conditions bound to a timing profile)
    timeout: float | None = None

    def within(self, timeout: float) -> Condition:
        """The same condition with ``timeout`` as its default."""
        return Condition(self.name, self.probe, timeout)


def condition(name: str, probe: Probe, timeout: float | None = None) -> Condition:
    return Condition(name, probe, timeout)


@dataclass(frozen=True)
class WaitStatus:
    """One look at a running wait, handed to the progress sinks at every poll and once at the end."""

    name: str
    timeout: float
    elapsed: float
    observed: str
    #: None while waiting; then "met", "timed out" or "died"
    outcome: str | None = None
    #: time.time() when the wait began: tells two waits with the same name apart
    started: float = 0.0


ProgressSink = Callable[[WaitStatus], None]
_sinks: list[ProgressSink] = []


def add_progress_sink(sink: ProgressSink) -> None:
    """Send every wait's status to ``sink`` (the pytest plugin's terminal line) instead of stderr."""
    _sinks.append(sink)


def remove_progress_sink(sink: ProgressSink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def progress_enabled() -> bool:
    """Without a sink, the progress line goes to stderr, and only when stderr is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _stderr_line(status: WaitStatus) -> None:
    if status.outcome is not None:
        sys.stderr.write("\r\033[K")
    else:
        sys.stderr.write(f"\r\033[K  waiting for {status.name}: {status.elapsed:.0f}s of {status.timeout:.0f}s"
                         f" ({status.observed[:60]})")
    sys.stderr.flush()


def _progress(status: WaitStatus) -> None:
    if _sinks:
        for sink in list(_sinks):
            try:
                sink(status)
            except Exception:  # a display problem never fails a step
                pass
    elif progress_enabled():
        _stderr_line(status)


def for_(
    cond: Condition,
    timeout: float | None = None,
    interval: float = 0.5,
    liveness: Liveness | None = None,
) -> str:
    """Poll ``cond`` until it holds; return what was observed then.

    ``timeout``: seconds, or None for the condition's own default (a condition without one is a
    programming error, said as such).

    Raises :class:`WaitTimeout` with the last observation, or :class:`ComponentDied` as soon as
    ``liveness`` names a dead component (no waiting out the timeout for a cluster that is gone).
    """
    if timeout is None:
        if cond.timeout is None:
            raise TypeError(f"no timeout for {cond.name}: pass one, or build the condition from lab.conditions")
        timeout = cond.timeout
    limit: float = timeout
    started = time.monotonic()
    wall = time.time()
    observed = "nothing observed yet"

    def status(outcome: str | None = None) -> WaitStatus:
        return WaitStatus(cond.name, limit, time.monotonic() - started, observed, outcome, wall)

    while True:
        try:
            done, observed = cond.probe()
        except Exception as exc:  # an API error is an observation too; the wait goes on
            done, observed = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if done:
            _progress(status("met"))
            return observed
        elapsed = time.monotonic() - started
        if liveness is not None:
            dead = liveness()
            if dead:
                _progress(status("died"))
                raise ComponentDied(f"{dead} died while waiting for {cond.name} (after {elapsed:.0f}s)")
        if elapsed >= limit:
            _progress(status("timed out"))
            raise WaitTimeout(cond.name, limit, observed)
        _progress(status())
        time.sleep(interval)


def until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy, and return that.

    :func:`for_` for a check that returns what it found rather than ``(done, observed)``: ``what`` names
    the wait, an exception counts as "not yet", and a timeout is a :class:`WaitTimeout` with the last
    answer.
    """
    answer: list[T | None] = [None]

    def probe() -> tuple[bool, str]:
        answer[0] = check()
        return bool(answer[0]), repr(answer[0])

    for_(condition(what, probe), timeout, interval)
    return cast(T, answer[0])
