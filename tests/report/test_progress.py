"""The wait progress: what the sinks get, which lines print when, and the xdist relay through files."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest

from fargatelab.scenario import wait
from fargatelab.plugin.progress import FeedReader, FeedWriter, LineProgress, finished, waiting
from fargatelab.scenario.wait import WaitStatus


def test_sinks_get_every_poll_and_the_end() -> None:
    seen: list[WaitStatus] = []
    counter = itertools.count()
    cond = wait.condition("counter reaches 2", lambda: (lambda n: (n >= 2, f"counter={n}"))(next(counter)))
    wait.add_progress_sink(seen.append)
    try:
        assert wait.for_(cond, timeout=5, interval=0.001) == "counter=2"
    finally:
        wait.remove_progress_sink(seen.append)
    assert [(s.outcome, s.observed) for s in seen] == [(None, "counter=0"), (None, "counter=1"), ("met", "counter=2")]
    assert {s.name for s in seen} == {"counter reaches 2"} and {s.timeout for s in seen} == {5}
    assert len({s.started for s in seen}) == 1


@pytest.mark.parametrize("liveness,outcome,error", [
    (None, "timed out", wait.WaitTimeout),
    (lambda: "etcd", "died", wait.ComponentDied),
], ids=["timeout", "component died"])
def test_sinks_hear_how_a_failed_wait_ended(liveness: wait.Liveness | None, outcome: str, error: type) -> None:
    seen: list[WaitStatus] = []
    wait.add_progress_sink(seen.append)
    try:
        with pytest.raises(error):
            wait.for_(wait.condition("never", lambda: (False, "still no")), timeout=0.01, interval=0.001,
                      liveness=liveness)
    finally:
        wait.remove_progress_sink(seen.append)
    assert seen[-1].outcome == outcome and seen[-1].observed == "still no"


def test_a_broken_sink_never_fails_the_wait() -> None:
    def broken(status: WaitStatus) -> None:
        raise OSError("terminal gone")

    wait.add_progress_sink(broken)
    try:
        assert wait.for_(wait.condition("now", lambda: (True, "ok")), timeout=1) == "ok"
    finally:
        wait.remove_progress_sink(broken)


def test_without_sinks_stderr_gets_the_line_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(wait, "_sinks", [])  # this pytest run's own progress sink
    for stream, expect_line in ((io.StringIO(), False), (Tty(), True)):
        monkeypatch.setattr("sys.stderr", stream)
        counter = itertools.count()
        wait.for_(wait.condition("two polls", lambda: (next(counter) >= 1, "x")), timeout=5, interval=0.001)
        assert ("waiting for two polls: 0s of 5s" in stream.getvalue()) is expect_line


def test_wording() -> None:
    status = WaitStatus("Fargate profile p ACTIVE", 300, 47.4, "status CREATING\n(second line)")
    assert waiting(status) == "waiting for Fargate profile p ACTIVE: 47s of 300s (last seen: status CREATING (second line))"
    assert finished(WaitStatus("x", 60, 7.0, "y", "met")) == "x: met after 7s (timeout 60s)"
    assert finished(WaitStatus("x", 60, 60.0, "Pending", "timed out")) == "x: timed out after 60s (last seen: Pending)"
    assert waiting(WaitStatus("x", 1, 0, "o" * 200)).endswith("o…)")


def test_line_progress_prints_after_a_few_seconds_then_every_period_then_the_end() -> None:
    lines = LineProgress(after=5, every=30)
    printed = {t: lines.feed("k", WaitStatus("w", 120, t, "Pending")) for t in (0, 4.9, 5, 6, 34.9, 35, 64, 65.5)}
    assert {t: len(v) for t, v in printed.items()} == {0: 0, 4.9: 0, 5: 1, 6: 0, 34.9: 0, 35: 1, 64: 0, 65.5: 1}
    assert lines.active
    assert lines.feed("k", WaitStatus("w", 120, 70, "Running", "met")) == ["w: met after 70s (timeout 120s)"]
    assert not lines.active
    # a short wait prints nothing at all
    assert lines.feed("j", WaitStatus("w", 120, 1, "Pending")) == []
    assert lines.feed("j", WaitStatus("w", 120, 2, "Running", "met")) == []
    # but a wait that failed at once after a long time still says so
    assert lines.feed("m", WaitStatus("w", 5, 6, "Pending", "timed out")) == ["w: timed out after 6s (last seen: Pending)"]


def test_feed_writer_throttles_and_skips_short_waits(tmp_path: Path) -> None:
    path = tmp_path / "gw0.jsonl"
    writer = FeedWriter(path, min_elapsed=1.0, period=1.0)
    writer.test = "test_scale[5->3]"
    for t in (0.2, 0.5, 0.9):
        writer(WaitStatus("short", 60, t, "Pending", started=1.0))
    writer(WaitStatus("short", 60, 0.95, "Running", "met", started=1.0))
    assert not path.exists()
    for t in (1.0, 1.5, 2.0, 2.2, 3.1):
        writer(WaitStatus("long", 60, t, "Pending", started=2.0))
    writer(WaitStatus("long", 60, 3.3, "Running", "met", started=2.0))
    records = path.read_text().splitlines()
    assert len(records) == 4  # 1.0, 2.0, 3.1, and the end
    assert '"test": "test_scale[5->3]"' in records[0] and '"outcome": "met"' in records[-1]


def test_feed_reader_prefixes_the_worker_and_extrapolates_elapsed(tmp_path: Path) -> None:
    writer = FeedWriter(tmp_path / "gw1.jsonl", min_elapsed=0)
    writer.test = "test_wildcard_namespace_selector"
    reader = FeedReader(tmp_path, after=5, every=30)
    writer(WaitStatus("pod p Running", 120, 2.0, "Pending", started=10.0))
    import time

    now = time.time()
    assert reader.poll(now) == []
    # the worker writes nothing new, but 4 s later the wait has gone on for 6 s
    assert reader.poll(now + 4) == [
        "[gw1] test_wildcard_namespace_selector: waiting for pod p Running: 6s of 120s (last seen: Pending)"]
    assert reader.poll(now + 5) == []
    # half a line (a worker mid-write) is left for the next poll
    with open(tmp_path / "gw1.jsonl", "a") as f:
        f.write('{"name": "pod p Running", "timeout": 120, "elapsed": 9.0, "observed": "Running", "outcome": "met", ')
    assert reader.poll(now + 6) == []
    with open(tmp_path / "gw1.jsonl", "a") as f:
        f.write('"started": 10.0, "test": "test_wildcard_namespace_selector", "t": 0}\n')
    assert reader.poll(now + 7) == ["[gw1] test_wildcard_namespace_selector: pod p Running: met after 9s (timeout 120s)"]
    assert reader.poll(now + 60) == []


def test_feed_reader_reads_several_workers(tmp_path: Path) -> None:
    for worker in ("gw0", "gw1"):
        w = FeedWriter(tmp_path / f"{worker}.jsonl", min_elapsed=0)
        w(WaitStatus(f"{worker} wait", 60, 8, "x", started=1.0))
    lines = FeedReader(tmp_path, after=5).poll()
    assert [line.split()[0] for line in lines] == ["[gw0]", "[gw1]"]
