"""The progress line's plugin: shows this process's long waits, or relays them to the xdist controller.

The wording, when a line prints, and the relay's files are :mod:`fargatelab.plugin.progress`; this is
where they meet pytest's terminal: pytest's progress letters, output capture, Ctrl-C, and xdist's
workers (which cannot write to the terminal, so they append their waits to a file the controller reads).
Registered by :mod:`fargatelab.plugin.reporting`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..scenario import wait
from .progress import FeedReader, FeedWriter, LineProgress, finished, waiting
from .run import is_worker, run_id, worker_id

__all__ = ["ProgressLine", "RECORD_WAITS_AFTER", "configure_progress"]

#: waits at least this long are recorded on the step (``("wait", "...")`` in its user_properties)
RECORD_WAITS_AFTER = 1.0

#: the key under which xdist hands each worker the directory of the relay
FEED_DIR_KEY = "fargatelab_progress"


class ProgressLine:
    """The display of waits for this process: live line, lines, relay to the controller, or nothing."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.after = float(config.option.progress_after)
        self.mode = config.option.progress
        self.item: pytest.Item | None = None
        self.lock = threading.RLock()
        self.lines = LineProgress(self.after)
        self.live_key: tuple[str, float] | None = None
        self.live_text = ""
        self.feed: FeedWriter | None = None
        self.feed_dir: Path | None = None
        self.reader: FeedReader | None = None
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.display = False
        self._saved_fspath: Path | bool | None = None
        wait.add_progress_sink(self)

    # the sink --------------------------------------------------------------------------------------

    def __call__(self, status: wait.WaitStatus) -> None:
        if status.outcome is not None and status.elapsed >= RECORD_WAITS_AFTER and self.item is not None:
            self.item.user_properties.append(("wait", finished(status)))
        if self.feed is not None:
            self.feed(status)
        elif self.display:
            self._show(status)

    def _terminal(self) -> Any:
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def _show(self, status: wait.WaitStatus) -> None:
        tr = self._terminal()
        if tr is None:
            return
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        key = (status.name, status.started)
        live = self.mode == "live" or (self.mode == "auto" and tr.isatty())
        if live:
            if status.outcome is None and status.elapsed < self.after:
                return
            if status.outcome is None:
                text = "  " + waiting(status)
                width = shutil.get_terminal_size((120, 24)).columns - 1
                text = text if len(text) <= width else text[: width - 1] + "…"
                if text == self.live_text:
                    return
            elif self.live_key != key:
                return
            with self._uncaptured(capman):
                if self.live_key != key:
                    self._begin(tr)
                    self.live_key = key
                if status.outcome is None:
                    tr.rewrite(text, erase=True)
                    self.live_text = text
                    tr.flush()
                else:
                    tr.rewrite("  " + finished(status), erase=True)
                    tr.write("\n", flush=True)
                    self.live_key, self.live_text = None, ""
                    self._end(tr)
            return
        out = self.lines.feed(key, status)
        if out:
            with self._uncaptured(capman):
                self._begin(tr)
                for line in out:
                    tr.write_line("  " + line)
                if not self.lines.active:
                    self._end(tr)
                tr.flush()

    def _begin(self, tr: Any) -> None:
        """Start on a fresh line, wherever pytest's progress letters left the cursor."""
        if self._saved_fspath is None:
            self._saved_fspath = tr.currentfspath if isinstance(tr.currentfspath, Path) else False
        tr.ensure_newline()
        self._newline(tr)

    def _end(self, tr: Any) -> None:
        """Give pytest its line back: the file name its next progress letters follow."""
        saved, self._saved_fspath = self._saved_fspath, None
        if isinstance(saved, Path):
            tr.write(os.path.relpath(saved, self.config.invocation_params.dir) + " ")
            tr.currentfspath = saved

    def _newline(self, tr: Any) -> None:
        tw = self.config.get_terminal_writer()
        if tw.width_of_current_line:
            tw.line()

    @staticmethod
    def _uncaptured(capman: Any) -> Any:
        if capman is None:
            return contextlib.nullcontext()
        return capman.global_and_fixture_disabled()

    # the xdist relay --------------------------------------------------------------------------------

    def session_started(self) -> None:
        if self.mode == "off" or is_worker(self.config):
            return
        if self.config.pluginmanager.has_plugin("dsession"):
            self.reader = FeedReader(self._feed_dir(), self.after)
            self.thread = threading.Thread(target=self._relay, name="fargate-labs-progress", daemon=True)
            self.thread.start()
        else:
            self.display = True

    def _relay(self) -> None:
        assert self.reader is not None
        while not self.stopping.wait(0.5):
            self._print_relayed()

    def _print_relayed(self) -> None:
        assert self.reader is not None
        tr = self._terminal()
        with self.lock:
            lines = self.reader.poll()
            if not lines or tr is None:
                return
            for line in lines:
                self._newline(tr)
                tr.write_line("  " + line)
            tr.flush()

    def session_finished(self) -> None:
        self.display = False
        if self.thread is not None:
            self.stopping.set()
            self.thread.join(timeout=5)
            self.thread = None
            self._print_relayed()

    # hooks ------------------------------------------------------------------------------------------

    def pytest_sessionstart(self) -> None:
        self.session_started()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.session_finished()

    def pytest_unconfigure(self) -> None:
        wait.remove_progress_sink(self)
        if self.feed_dir is not None and not is_worker(self.config):
            shutil.rmtree(self.feed_dir, ignore_errors=True)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        self.item = item
        if self.feed is not None:
            self.feed.test = item.name
        try:
            return (yield)
        finally:
            self.item = None

    # The controller's relay thread writes between these hooks, never inside one.
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Iterator[None]:
        with self.lock:
            if self.reader is not None:
                # A worker writes a wait's end before it sends the report: print it before the result.
                self._print_relayed()
            return (yield)

    def pytest_keyboard_interrupt(self) -> None:
        tr = self._terminal()
        if self.live_key is not None and tr is not None:
            tr.write("\n", flush=True)
            self.live_key = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> Iterator[None]:
        with self.lock:
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> Iterator[None]:
        with self.lock:
            return (yield)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: tell each worker where to relay its waits."""
        if self.mode == "off":
            return
        node.workerinput[FEED_DIR_KEY] = str(self._feed_dir())

    def _feed_dir(self) -> Path:
        if self.feed_dir is None:
            self.feed_dir = Path(tempfile.mkdtemp(prefix=f"fargate-labs-progress-{run_id(self.config)}-"))
        return self.feed_dir


def configure_progress(config: pytest.Config) -> ProgressLine:
    """Register this process's progress line; a worker's relays to the directory its controller handed it."""
    progress = ProgressLine(config)
    worker = worker_id(config)
    if worker is not None:
        # xdist's only way to hand a worker a value: the controller's pytest_configure_node put it there.
        directory = config.workerinput.get(FEED_DIR_KEY)  # type: ignore[attr-defined]
        if directory:
            progress.feed = FeedWriter(Path(directory) / f"{worker}.jsonl")
    config.pluginmanager.register(progress, "fargatelab-progress")
    return progress
