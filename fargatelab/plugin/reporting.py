"""The labs' reports: written from pytest's test reports by the process that owns the run.

Reports (``reports/<run id>/``: ``junit.xml``, ``report.html``, ``summary.json``, ``summary.md``, and
``reports/latest`` pointing at the newest run) are written by the process that owns the run: the only
process, or the pytest-xdist controller, which builds them from the reports its workers send. A
worker adds to each of its test reports what the controller cannot see (the lab marker, the step's
description, the worker id, the cluster's name and Kubernetes version, and what went wrong as data:
:func:`failure_data`) as the ``fargatelab`` attribute, which xdist carries across like the report's
``user_properties`` and ``sections``.

Reports are written when ``--reports-dir`` is given, or when the run has lab scenarios (tests marked
``lab``), to ``reports/`` under the root directory; ``--no-reports`` turns them off. A run that starts no
test (``--collect-only``, ``--fixtures``, ``--list-labs``, everything deselected) writes none.

Waits show a progress line (:mod:`fargatelab.plugin.progress_line`), registered here too.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generator

import pytest

from ..errors import HarnessError
from ..report.model import RunInfo, RunReport
from ..report.write import write_reports
from ..scenario.failures import Failure
from ..scenario.wait import ComponentDied, WaitTimeout
from .progress_line import configure_progress
from .run_end import RUN_END
from .run import END_INTERRUPTED, backend_of, owns_run, run_id, worker_id

__all__ = ["pytest_addoption", "pytest_configure", "failure_data"]

_CLUSTER = pytest.StashKey[dict[str, Any]]()


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


# --- the report ---------------------------------------------------------------------------------

#: junit.xml is staged in ``<tmp>/fargate-labs-junit-<pid>-<random>/``
STAGING_PREFIX = "fargate-labs-junit-"


def _remove_stale_staging() -> None:
    """Staging directories of runs whose process is gone (killed before its end could remove them)."""
    for path in Path(tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*"):
        pid = path.name.removeprefix(STAGING_PREFIX).partition("-")[0]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
        #: a test started (``--fixtures``, ``--collect-only``, ``--list-labs`` or everything deselected: none)
        self.executed = False

    def configure_junit(self) -> None:
        """Point pytest's junitxml at a staging file (copied into the run's directory when the run is reported),
        unless ``--junitxml`` names a file of its own."""
        if self.config.option.xmlpath:
            self.junit = Path(self.config.option.xmlpath)
            return
        # Staged, not written into the run's directory: a run that executes no test leaves no directory.
        _remove_stale_staging()
        self.staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
        self.junit = self.staging / "junit.xml"
        self.config.option.xmlpath = str(self.junit)

    def info(self, exitstatus: int) -> RunInfo:
        o = self.config.option
        own: dict[str, Any] | None = self.config.stash.get(_CLUSTER, None)
        cluster: dict[str, Any] = dict(self.model.cluster) or dict(own or {})
        workers = {s.worker for s in self.model.steps() if s.worker}
        if self.config.stash.get(END_INTERRUPTED, None) and not self.stop_reason:
            self.stop_reason = "interrupted by Ctrl-C during the run's end (every step had run; its cleanup ran to its end)"
        interrupted = bool(self.stop_reason) or exitstatus == pytest.ExitCode.INTERRUPTED
        scale = getattr(o, "timing_scale", 1.0)
        return RunInfo(
            run_id=run_id(self.config),
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
            died=list(getattr(self.config.stash.get(RUN_END, None), "died", [])),
            command="pytest " + shlex.join(str(a) for a in self.config.invocation_params.args),
            workers=len(workers),
            timing=f"{getattr(o, 'timing', '')}" + (f" ×{scale:g}" if scale != 1.0 else ""),
            tools=self._tools(),
        )

    def _tools(self) -> dict[str, str]:
        """The CLIs' versions, when a step ran a documented line through one (a check runs the user's own)."""
        if not any(s.ran for s in self.model.steps()):
            return {}
        if getattr(self.config.option, "mode", "replay") == "check":
            return {"tools": "the user's own, from PATH"}
        from ..local.cli_tools import provisioned_versions

        return provisioned_versions()

    def write(self, exitstatus: int) -> None:
        if not self.executed:
            return  # nothing was checked: an empty report would replace the last real one as latest
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

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        # Before the first setup: a backend that refuses in its setup still makes a (stopped) report.
        self.executed = True

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
            # The run's end (in another hook, before this one) may have failed a run whose steps all passed.
            self.write(int(session.exitstatus or exitstatus))
            if self.run_dir is not None and self.staging is not None:
                _junit_named(self.config, self.run_dir / "junit.xml")
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


def _junit_named(config: pytest.Config, path: Path | None) -> None:
    """Point pytest's junitxml at where its file ended up (``path``), or, with None, drop it unwritten."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    if path is not None:
        xml.logfile = str(path)  # "generated xml file:" names the run's copy, not the staging one
        return
    del config.stash[xml_key]
    config.pluginmanager.unregister(xml)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    reporter = session.config.pluginmanager.get_plugin("fargatelab-report")
    if isinstance(reporter, _Reporter) and not reporter.executed and reporter.staging is not None:
        # tryfirst, before junitxml writes: a run that started no test leaves no junit.xml and no line naming one
        _junit_named(session.config, None)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: the run id and junit path must be set before pytest's junitxml plugin reads them.
    if owns_run(config):
        run_id(config)
        if not (config.option.no_reports or config.option.collectonly or config.option.list_labs):
            reporter = _Reporter(config)
            reporter.configure_junit()
            config.pluginmanager.register(reporter, "fargatelab-report")
    configure_progress(config)


# --- what a worker adds to its reports ------------------------------------------------------------

def failure_data(exc: BaseException) -> dict[str, str]:
    """What went wrong in a phase, as the run report shows it: never parsed back out of a message.

    ``kind`` is ``fact`` (expected vs actual), ``missing`` (and the command that makes it), ``timeout``
    (a wait's condition vs what it last saw), ``assertion`` (a bare ``assert`` or ``pytest.fail``: its
    message), ``error`` (the harness or the cluster broke: the step's outcome is *error*, not *failed*)
    or ``exception`` (anything else).

    >>> from fargatelab.scenario.failures import FactMismatch, KubectlFailed, Missing
    >>> data = failure_data(FactMismatch("replicas", 3, 2))
    >>> data["kind"], data["fact"], data["expected"], data["actual"]
    ('fact', 'replicas', '3', '2')
    >>> failure_data(Missing("Deployment a/b", "kubectl apply -f b.yaml"))["fix"]
    'kubectl apply -f b.yaml'
    >>> failure_data(KubectlFailed("kubectl get pods", 1, "connection refused\\n"))
    {'kind': 'error', 'exception': 'KubectlFailed', 'message': '`kubectl get pods` failed (1): connection refused'}
    >>> failure_data(AssertionError("assert 2 == 3\\n +  where 2 = len(pods)"))["message"]
    'assert 2 == 3\\n +  where 2 = len(pods)'
    """
    if isinstance(exc, (HarnessError, ComponentDied)):
        return {"kind": "error", "exception": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, Failure):
        # str: the data crosses xdist's wire, and the report shows text
        return {str(k): str(v) for k, v in exc.data().items() if v is not None}
    if isinstance(exc, WaitTimeout):
        return {"kind": "timeout", "fact": "timed out", "expected": exc.name, "actual": exc.observed,
                "message": str(exc)}
    if isinstance(exc, (AssertionError, pytest.fail.Exception)):
        return {"kind": "assertion", "message": str(exc)}
    return {"kind": "exception", "message": f"{type(exc).__name__}: {exc}"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    extra: dict[str, Any] = {}
    mark = item.get_closest_marker("lab")
    if mark is not None and len(mark.args) >= 2:
        extra["lab"] = [str(mark.args[0]), str(mark.args[1])]
    doc = getattr(getattr(item, "obj", None), "__doc__", None)
    if doc and doc.strip():
        extra["description"] = " ".join(doc.strip().split("\n\n")[0].split())
    worker = worker_id(item.config)
    if worker:
        extra["worker"] = worker
    cluster = _cluster_info(item.config)
    if cluster:
        extra["cluster"] = cluster
    if report.failed and call.excinfo is not None:
        extra["failure"] = failure_data(call.excinfo.value)
    report.fargatelab = extra  # type: ignore[attr-defined]
    return report


def _cluster_info(config: pytest.Config) -> dict[str, Any] | None:
    """Name, region and Kubernetes version of the cluster under test, once the backend is open."""
    cached = config.stash.get(_CLUSTER, None)
    if cached is not None:
        return cached
    backend = backend_of(config)
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
    except Exception:  # noqa: BLE001 - the version is a nicety of the report, never a reason to fail a step
        return ""
