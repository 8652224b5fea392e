"""What the terminal shows while a step waits: the wording, when to print, and the xdist relay.

A wait (:func:`fargatelab.scenario.wait.for_`) hands a :class:`~fargatelab.scenario.wait.WaitStatus` to its sinks at
every poll. Three displays use them:

- one process on a terminal: a live line, rewritten in place, naming what is awaited, for how long,
  and the timeout; once the wait ends it leaves one line saying how it ended;
- one process without a terminal (CI logs): a line when a wait passes ``after`` seconds, another
  every ``every`` seconds, and one when it ends (:class:`LineProgress`);
- pytest-xdist: workers cannot write to the terminal, so each appends its waits to a JSON-lines
  file (:class:`FeedWriter`) and the controller turns them into the same lines (:class:`FeedReader`),
  prefixed with the worker id.

The pytest side (the terminal, output capture, the relay's thread) is :mod:`fargatelab.plugin.progress_line`.

>>> from fargatelab.scenario.wait import WaitStatus
>>> lines = LineProgress(after=5, every=30)
>>> lines.feed("k", WaitStatus("pod a/b Running", 60, 2, "Pending"))
[]
>>> lines.feed("k", WaitStatus("pod a/b Running", 60, 5.2, "Pending"))
['waiting for pod a/b Running: 5s of 60s (last seen: Pending)']
>>> lines.feed("k", WaitStatus("pod a/b Running", 60, 12, "Running", "met"))
['pod a/b Running: met after 12s (timeout 60s)']
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Hashable

from ..scenario.wait import WaitStatus

__all__ = ["waiting", "finished", "LineProgress", "FeedWriter", "FeedReader", "OBSERVED_WIDTH"]

OBSERVED_WIDTH = 80


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 or value == int(value) else f"{value:.1f}s"


def _short(text: str, width: int = OBSERVED_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def waiting(status: WaitStatus) -> str:
    """The line for a wait still going: what, how long so far, the timeout, what the cluster shows.

    >>> waiting(WaitStatus("Fargate profile x ACTIVE", 300.0, 47.3, "status=CREATING"))
    'waiting for Fargate profile x ACTIVE: 47s of 300s (last seen: status=CREATING)'
    """
    return (f"waiting for {status.name}: {status.elapsed:.0f}s of {status.timeout:.0f}s "
            f"(last seen: {_short(status.observed)})")


def finished(status: WaitStatus) -> str:
    """The line for a wait that ended.

    >>> finished(WaitStatus("pod a/b Running", 62.0, 4.25, "Running", "met"))
    'pod a/b Running: met after 4.2s (timeout 62s)'
    >>> finished(WaitStatus("pod a/b Running", 62.0, 62.0, "Pending", "timed out"))
    'pod a/b Running: timed out after 62s (last seen: Pending)'
    """
    how = status.outcome or "ended"
    tail = f"timeout {status.timeout:.0f}s" if how == "met" else f"last seen: {_short(status.observed)}"
    return f"{status.name}: {how} after {_seconds(status.elapsed)} ({tail})"


class LineProgress:
    """Decides which lines a wait prints when the display cannot rewrite a line in place."""

    def __init__(self, after: float = 5.0, every: float = 30.0) -> None:
        self.after = after
        self.every = every
        self._shown: dict[Hashable, float] = {}

    def feed(self, key: Hashable, status: WaitStatus) -> list[str]:
        last = self._shown.get(key)
        if status.outcome is None:
            if (last is None and status.elapsed >= self.after) or (last is not None
                                                                    and status.elapsed - last >= self.every):
                self._shown[key] = status.elapsed
                return [waiting(status)]
            return []
        self._shown.pop(key, None)
        return [finished(status)] if last is not None or status.elapsed >= self.after else []

    def shown(self, key: Hashable) -> bool:
        return key in self._shown

    @property
    def active(self) -> bool:
        """Some wait has printed a line and not yet its end."""
        return bool(self._shown)


class FeedWriter:
    """An xdist worker's side of the relay: appends the waits longer than ``min_elapsed`` to one file.

    While a wait goes on, at most one line per ``period`` seconds; one more when it ends.
    """

    def __init__(self, path: Path, min_elapsed: float = 1.0, period: float = 1.0) -> None:
        self.path = path
        self.min_elapsed = min_elapsed
        self.period = period
        self.test = ""
        self._last: dict[tuple[str, float], float] = {}

    def __call__(self, status: WaitStatus) -> None:
        key = (status.name, status.started)
        last = self._last.get(key)
        if status.outcome is None:
            if status.elapsed < self.min_elapsed or (last is not None and status.elapsed - last < self.period):
                return
            self._last[key] = status.elapsed
        else:
            self._last.pop(key, None)
            if last is None and status.elapsed < self.min_elapsed:
                return
        record = dict(asdict(status), test=self.test, t=time.time())
        line = json.dumps(record, ensure_ascii=False) + "\n"
        # One write of a short line on an O_APPEND file: the reader never sees half a record.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


class FeedReader:
    """The controller's side: reads every worker's file and yields the lines to print.

    A running wait's elapsed time is extrapolated from its last record, so the lines keep coming at
    ``after`` and every ``every`` seconds even while the worker writes only once a second.
    """

    def __init__(self, directory: Path, after: float = 5.0, every: float = 30.0) -> None:
        self.directory = directory
        self.lines = LineProgress(after, every)
        self._offsets: dict[Path, int] = {}
        self._running: dict[tuple[str, str, float], dict[str, Any]] = {}

    def poll(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        out: list[str] = []
        for path in sorted(self.directory.glob("*.jsonl")):
            worker = path.stem
            for record in self._read(path):
                key = (worker, str(record.get("name")), float(record.get("started") or 0.0))
                if record.get("outcome") is None:
                    self._running[key] = record
                    continue
                self._running.pop(key, None)
                out += self._lines(worker, key, record, float(record.get("elapsed") or 0.0))
        for key, record in list(self._running.items()):
            elapsed = float(record.get("elapsed") or 0.0) + max(0.0, now - float(record.get("t") or now))
            out += self._lines(key[0], key, record, min(elapsed, float(record.get("timeout") or elapsed)))
        return out

    def _lines(self, worker: str, key: tuple[str, str, float], record: dict[str, Any], elapsed: float) -> list[str]:
        status = WaitStatus(str(record.get("name")), float(record.get("timeout") or 0.0), elapsed,
                            str(record.get("observed") or ""), record.get("outcome"), key[2])
        test = str(record.get("test") or "")
        prefix = f"[{worker}] " + (f"{test}: " if test else "")
        return [prefix + line for line in self.lines.feed(key, status)]

    def _read(self, path: Path) -> list[dict[str, Any]]:
        offset = self._offsets.get(path, 0)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self._offsets[path] = offset + end
        records = []
        for raw in data[:end].splitlines():
            try:
                records.append(json.loads(raw))
            except ValueError:
                continue
        return records
