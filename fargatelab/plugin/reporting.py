"""The labs' reports and the terminal progress line: the second pytest plugin of the harness.

Reports (``reports/<run id>/``: ``junit.xml``, ``report.html``, ``summary.json``, ``summary.md``, and
``reports/latest`` pointing at the newest run) are written by the process that owns the run: the only
process, or the pytest-xdist controller, which builds them from the reports its workers send. A
worker adds to each of its test reports what the controller cannot see (the lab marker, the step's
description, the worker id, the cluster's name and Kubernetes version) as the ``fargatelab``
attribute, which xdist carries across like the report's ``user_properties`` and ``sections``.

Reports are written when ``--reports-dir`` is given, or when the run has lab scenarios (tests marked
``lab``), to ``reports/`` under the root directory; ``--no-reports`` turns them off.

Waits show a progress line (see :mod:`fargatelab.plugin.progress`); under xdist the workers relay their waits
through files in a directory the controller makes, and the controller prints them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..scenario import wait
from .progress import FeedReader, FeedWriter, LineProgress, finished, waiting
from ..report.run_report import RunInfo, RunReport, write_reports

__all__ = ["pytest_addoption", "pytest_configure"]

_CLUSTER = pytest.StashKey[dict[str, Any]]()

#: waits at least this long are recorded on the step (``("wait", "...")`` in its user_properties)
RECORD_WAITS_AFTER = 1.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fargate-labs", "EKS-on-Fargate workshop labs")
    group.addoption("--reports-dir", default=None, metavar="DIR",
                    help="write junit.xml, report.html, summary.json and summary.md to DIR/<run id>/ and point "
                         "DIR/latest at it (default: reports/ under the root directory when labs run)")
    group.addoption("--no-reports", action="store_true", help="write no reports")
    group.addoption("--progress", choices=("auto", "live", "lines", "off"), default="auto",
                    help="progress of long waits: a live line on a terminal (auto), lines, or off")
    group.addoption("--progress-after", type=float, default=10.0, metavar="SECONDS",
                    help="show a wait once it has taken this long (default 10)")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


# --- the report ---------------------------------------------------------------------------------

class _Reporter:
    """The controller's (or single process's) collector of the run's reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.model = RunReport()
        self.explicit = config.option.reports_dir is not None
        root = Path(str(config.rootpath))
        self.reports_dir = Path(config.option.reports_dir) if self.explicit else root / "reports"
        if not self.reports_dir.is_absolute():
            self.reports_dir = Path(config.invocation_params.dir) / self.reports_dir
        self.junit: Path | None = None
        self.staging: Path | None = None
        self.started = time.time()
        self.stop_reason = ""
        self.run_dir: Path | None = None
        self.has_labs = False

    def configure_junit(self) -> None:
        """Point pytest's junitxml at the run's directory (or at a staging file copied there later)."""
        if self.config.option.xmlpath:
            self.junit = Path(self.config.option.xmlpath)
            return
        if self.explicit:
            run_dir = self.reports_dir / self.config.option.run_id
            run_dir.mkdir(parents=True, exist_ok=True)
            self.junit = run_dir / "junit.xml"
        else:
            self.staging = Path(tempfile.mkdtemp(prefix="fargate-labs-junit-"))
            self.junit = self.staging / "junit.xml"
        self.config.option.xmlpath = str(self.junit)

    def info(self, exitstatus: int) -> RunInfo:
        o = self.config.option
        own: dict[str, Any] | None = self.config.stash.get(_CLUSTER, None)
        cluster: dict[str, Any] = dict(self.model.cluster) or dict(own or {})
        workers = {s.worker for s in self.model.steps() if s.worker}
        interrupted = bool(self.stop_reason) or exitstatus == pytest.ExitCode.INTERRUPTED
        scale = getattr(o, "timing_scale", 1.0)
        return RunInfo(
            run_id=o.run_id or "",
            backend=getattr(o, "backend", "") or "",
            mode=getattr(o, "mode", "replay") or "replay",
            kubernetes_version=str(cluster.get("kubernetes_version") or ""),
            cluster=str(cluster.get("cluster") or getattr(o, "cluster", "") or ""),
            region=str(cluster.get("region") or getattr(o, "region", "") or ""),
            started=datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            duration=time.time() - self.started,
            interrupted=interrupted,
            stop_reason=self.stop_reason or ("interrupted" if interrupted else ""),
            exitstatus=int(exitstatus),
            command="pytest " + shlex.join(str(a) for a in self.config.invocation_params.args),
            workers=len(workers),
            timing=f"{getattr(o, 'timing', '')}" + (f" ×{scale:g}" if scale != 1.0 else ""),
        )

    def write(self, exitstatus: int) -> None:
        steps = self.model.steps()
        self.has_labs = self.has_labs or any(s.lab for s in steps)
        if not (self.explicit or self.has_labs):
            return
        self.model.info = self.info(exitstatus)
        self.run_dir = write_reports(self.model, self.reports_dir, self.junit)

    # --- hooks (registered in the controller or the only process) ---------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # after -k/-m deselection: only what will run is expected
        items = session.items
        labs = {}
        for item in items:
            mark = item.get_closest_marker("lab")
            if mark is not None and len(mark.args) >= 2:
                labs[item.nodeid] = (str(mark.args[0]), str(mark.args[1]))
        self.has_labs = self.has_labs or bool(labs)
        self.model.expect([i.nodeid for i in items], labs)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.model.expect(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.model.add(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.model.add(report)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        if isinstance(excinfo.value, KeyboardInterrupt):
            self.stop_reason = "interrupted by Ctrl-C"
        else:
            self.stop_reason = f"stopped: {getattr(excinfo.value, 'msg', None) or excinfo.value}"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # trylast: after junitxml has written its file.
        try:
            self.write(int(exitstatus))
        except OSError as err:
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            if tr is not None:
                tr.write_line(f"fargate-labs: could not write the reports to {self.reports_dir}: {err}", red=True)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.run_dir is None:
            return
        try:
            shown = self.run_dir.relative_to(Path(self.config.invocation_params.dir))
        except ValueError:
            shown = self.run_dir
        if self.model.info.mode == "check":
            terminalreporter.write_sep("-", "self-check")
            for line in (self.run_dir / "summary.md").read_text(encoding="utf-8").splitlines():
                if line.startswith(("- ", "  - ", "## ")):
                    terminalreporter.write_line(line)
        terminalreporter.write_sep("-", "fargate-labs reports")
        if self.model.info.interrupted:
            terminalreporter.write_line(f"the run was {self.model.info.stop_reason}: the reports are incomplete")
        terminalreporter.write_line(f"report:  {shown / 'report.html'}")
        terminalreporter.write_line(f"summary: {shown / 'summary.md'}  (and summary.json, junit.xml)")

    def pytest_unconfigure(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: the run id and junit path must be set before pytest's junitxml plugin reads them.
    if not _is_worker(config):
        if not config.option.run_id:
            config.option.run_id = uuid.uuid4().hex[:8]
        if not config.option.no_reports and not config.option.collectonly:
            reporter = _Reporter(config)
            reporter.configure_junit()
            config.pluginmanager.register(reporter, "fargatelab-report")
    _configure_progress(config)


# --- what a worker adds to its reports ------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    extra: dict[str, Any] = {}
    mark = item.get_closest_marker("lab")
    if mark is not None and len(mark.args) >= 2:
        extra["lab"] = [str(mark.args[0]), str(mark.args[1])]
    doc = getattr(getattr(item, "obj", None), "__doc__", None)
    if doc and doc.strip():
        extra["description"] = doc.strip().split("\n\n")[0].replace("\n", " ")
        extra["description"] = " ".join(extra["description"].split())
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        extra["worker"] = worker
    cluster = _cluster_info(item.config)
    if cluster:
        extra["cluster"] = cluster
    report.fargatelab = extra  # type: ignore[attr-defined]
    return report  # type: ignore[no-any-return]


def _cluster_info(config: pytest.Config) -> dict[str, Any] | None:
    """Name, region and Kubernetes version of the cluster under test, once the backend is open."""
    cached = config.stash.get(_CLUSTER, None)
    if cached is not None:
        return cached
    from .fixtures import _BACKEND_KEY

    backend = config.stash.get(_BACKEND_KEY, None)
    if backend is None:
        return None
    handle = backend.handle
    info = {"cluster": handle.cluster_name, "region": handle.region, "run_id": handle.run_id,
            "kubernetes_version": handle.kubernetes_version or _server_version(handle.kubeconfig),
            "capabilities": sorted(handle.capabilities)}
    config.stash[_CLUSTER] = info
    return info


def _server_version(kubeconfig: str) -> str:
    """The API server's ``/version`` (what ``kubectl version`` prints as Server Version), or ''."""
    try:
        from ..scenario.kube import Kube

        return str(Kube(kubeconfig).get("/version").get("gitVersion") or "")
    except Exception:
        return ""


# --- the progress line ----------------------------------------------------------------------------

class _Progress:
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
            import contextlib

            return contextlib.nullcontext()
        return capman.global_and_fixture_disabled()

    # the xdist relay --------------------------------------------------------------------------------

    def session_started(self) -> None:
        if self.mode == "off" or _is_worker(self.config):
            return
        if self.config.pluginmanager.has_plugin("dsession"):
            if self.feed_dir is None:
                self.feed_dir = Path(tempfile.mkdtemp(prefix=f"fargate-labs-progress-{self.config.option.run_id}-"))
            self.reader = FeedReader(self.feed_dir, self.after)
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
        if self.feed_dir is not None and not _is_worker(self.config):
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
        if self.feed_dir is None:
            self.feed_dir = Path(tempfile.mkdtemp(prefix=f"fargate-labs-progress-{self.config.option.run_id}-"))
        node.workerinput["fargatelab_progress"] = str(self.feed_dir)


def _configure_progress(config: pytest.Config) -> None:
    progress = _Progress(config)
    if _is_worker(config):
        directory = config.workerinput.get("fargatelab_progress")  # type: ignore[attr-defined]
        if directory:
            worker = config.workerinput["workerid"]  # type: ignore[attr-defined]
            progress.feed = FeedWriter(Path(directory) / f"{worker}.jsonl")
    config.pluginmanager.register(progress, "fargatelab-progress")
