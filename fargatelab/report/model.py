"""The run report's model: what each lab step did, built from pytest's test reports.

The model reads only what survives pytest-xdist's report serialisation (``nodeid``, ``when``,
``outcome``, ``longrepr``, ``sections``, ``user_properties``, ``duration`` and the ``fargatelab``
attribute the plugin adds), so the controller builds it from the workers' reports. What went wrong in a
step arrives as data, ``fargatelab["failure"]`` (see :func:`fargatelab.plugin.reporting.failure_data`):
a fact with expected and actual, something missing and the command that makes it, or an error of the
harness; the model shows those parts as they are and never reads them back out of a message.

>>> from types import SimpleNamespace as Report
>>> model = RunReport(RunInfo(run_id="r1", backend="local"))
>>> model.add(Report(nodeid="labs/test_a.py::test_ok", when="call", outcome="passed",
...                  fargatelab={"lab": ["Lab 1 — Fargate profile", "000"]}))
>>> model.add(Report(nodeid="labs/test_a.py::test_get", when="call", outcome="failed",
...                  fargatelab={"failure": {"kind": "error", "message": "`kubectl get pods` failed (1): refused"}}))
>>> [(lab.title, len(lab.steps)) for lab in model.labs()]
[('Lab 1 — Fargate profile', 2)]
>>> [(s.name, s.outcome, s.fact) for s in model.steps()]
[('test_ok', 'passed', ''), ('test_get', 'error', '`kubectl get pods` failed (1): refused')]
>>> model.verdict()
'ERROR'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .names import step_title, without_xdist_group

__all__ = ["OUTCOMES", "RunInfo", "Step", "LabResult", "RunReport", "step_title", "without_xdist_group"]

DIAGNOSTICS_PREFIX = "diagnostics: "

#: outcome -> (mark for students, css class, words). "failed": a documented outcome did not hold;
#: "error": the harness or the cluster broke (kubectl, the API server, a component of the environment),
#: a cleanup failed, or a lab module could not be loaded, so the step could not say.
OUTCOMES = {
    "passed": ("✔", "passed", "passed"),
    "xfailed": ("✔", "passed", "expected failure"),
    "failed": ("✘", "failed", "failed"),
    "error": ("⚠", "error", "with an error"),
    "xpassed": ("✘", "failed", "passed unexpectedly"),
    "skipped": ("–", "skipped", "skipped"),
    "not run": ("·", "notrun", "not run"),
}

#: kinds of failure data that are a documented outcome not met, wherever it was checked: in the test, or
#: in a module's shared setup (a check-mode ``Missing`` there is the student's step, not the harness's).
#: A bare assert or ``pytest.fail`` in a fixture keeps pytest's word for it: an error.
FACT_KINDS = frozenset({"fact", "missing", "failure", "timeout"})


@dataclass
class RunInfo:
    """What the run was: printed at the top of every report."""

    run_id: str = ""
    backend: str = ""
    mode: str = "replay"
    kubernetes_version: str = ""
    cluster: str = ""
    region: str = ""
    started: str = ""
    duration: float = 0.0
    #: the run was stopped (Ctrl-C, or pytest.exit) before every step ran
    interrupted: bool = False
    #: why it stopped: "interrupted by Ctrl-C", "stopped: <message>"
    stop_reason: str = ""
    exitstatus: int = 0
    #: components of the run's environment that died during the run (it fails even if every step passed)
    died: list[str] = field(default_factory=list)
    command: str = ""
    workers: int = 0
    timing: str = ""
    #: the real CLIs the documented lines ran through, and their versions ({} when none ran)
    tools: dict[str, str] = field(default_factory=dict)


@dataclass
class Step:
    """One test (a lab step): its outcome over setup, call and teardown, and everything recorded."""

    nodeid: str
    module: str
    name: str
    lab: str = ""
    document: str = ""
    description: str = ""
    outcome: str = "not run"
    #: the phase that decided the outcome: setup, call or teardown
    phase: str = ""
    duration: float = 0.0
    message: str = ""
    fact: str = ""
    expected: str | None = None
    actual: str | None = None
    missing: str | None = None
    fix: str | None = None
    longrepr: str = ""
    commands: list[str] = field(default_factory=list)
    #: what really ran for the documented commands: {"command", "exit_code", "output"} (and "compared")
    ran: list[dict[str, Any]] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)
    #: (PNG file, caption): what the step saw, shown in the report (the game in a browser, say)
    pictures: list[tuple[str, str]] = field(default_factory=list)
    diagnostics: list[tuple[str, str]] = field(default_factory=list)
    output: list[tuple[str, str]] = field(default_factory=list)
    worker: str = ""
    index: int = 1 << 30
    #: epoch seconds: when its setup started and its teardown ended (0: not known)
    started: float = 0.0
    finished: float = 0.0
    #: when the phase that failed it ended (epoch seconds): the moment it failed, before any cleanup after
    failed_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome in ("passed", "xfailed")

    @property
    def bad(self) -> bool:
        return self.outcome in ("failed", "error", "xpassed")

    @property
    def mark(self) -> str:
        return OUTCOMES.get(self.outcome, ("?", "", ""))[0]


@dataclass
class LabResult:
    title: str
    document: str
    module: str
    steps: list[Step]

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.steps)

    @property
    def wall(self) -> float:
        """From its first step's start to its last step's end: what the lab adds to a run's wall time."""
        timed = [s for s in self.steps if s.started and s.finished]
        return max(s.finished for s in timed) - min(s.started for s in timed) if timed else self.duration

    def count(self, *outcomes: str) -> int:
        return sum(1 for s in self.steps if s.outcome in outcomes)

    @property
    def ok(self) -> bool:
        return not any(s.bad for s in self.steps)

    @property
    def mark(self) -> str:
        """✔ all held; ✘ a documented outcome did not; ⚠ none failed, but errors left some unchecked; · none
        failed, but some never ran."""
        if self.ok:
            return OUTCOMES["not run"][0] if self.count("not run") else "✔"
        return "✘" if self.count("failed", "xpassed") else OUTCOMES["error"][0]


# --- reading pytest reports ---------------------------------------------------------------------

def _longrepr_text(report: Any) -> str:
    longrepr = getattr(report, "longrepr", None)
    if longrepr is None:
        return ""
    if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3:  # a skip: (path, lineno, reason)
        return str(longrepr[2])
    try:
        return str(getattr(report, "longreprtext", None) or longrepr)
    except Exception:  # noqa: BLE001 - a longrepr that cannot render itself still has a repr
        return str(longrepr)


def _crash_message(report: Any) -> str:
    """What pytest says went wrong, for a report without the plugin's failure data (a skip, a collection error)."""
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message)
    text = _longrepr_text(report)
    errors = [line[2:] for line in text.splitlines() if line.startswith("E ")]
    return "\n".join(errors) if errors else text.strip()[-2000:]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _properties(report: Any) -> list[tuple[str, str]]:
    out = []
    for prop in getattr(report, "user_properties", None) or []:
        if isinstance(prop, (tuple, list)) and len(prop) == 2:
            out.append((str(prop[0]), str(prop[1])))
    return out


def _failed_outcome(when: str, kind: str) -> str:
    """``failed`` for a documented outcome not met; ``error`` for the harness breaking or a cleanup failing.

    Without failure data (a test outside the labs' plugin), pytest's rule: failed in the call, else error.
    """
    if kind == "error" or when == "teardown":
        return "error"
    return "failed" if when == "call" or kind in FACT_KINDS else "error"


def _describe(step: Step, failure: dict[str, Any]) -> None:
    """Copy the parts of a failure onto its step; absent parts stay None, so the renderings leave them out."""
    def part(key: str) -> str | None:
        value = failure.get(key)
        return None if value is None else str(value)

    step.message = str(failure.get("message") or "")
    step.expected, step.actual = part("expected"), part("actual")
    step.missing, step.fix = part("missing"), part("fix")
    step.fact = part("fact") or (f"missing: {step.missing}" if step.missing else _first_line(step.message))


class RunReport:
    """Collects the reports of one run, in the controller (or the only process)."""

    def __init__(self, info: RunInfo | None = None) -> None:
        self.info = info or RunInfo()
        self._steps: dict[str, Step] = {}
        self._order: dict[str, int] = {}
        self._module_lab: dict[str, tuple[str, str]] = {}
        self._properties: dict[str, list[tuple[str, str]]] = {}
        self.collection_errors: list[Step] = []
        self.cluster: dict[str, Any] = {}

    # --- input --------------------------------------------------------------------------------

    def expect(self, nodeids: Iterable[str], labs: dict[str, tuple[str, str]] | None = None) -> None:
        """The collected tests, in collection order: any without a report is shown as not run."""
        for nodeid in map(without_xdist_group, nodeids):
            if nodeid not in self._order:
                self._order[nodeid] = len(self._order)
            step = self._step(nodeid)
            if labs and nodeid in labs:
                step.lab, step.document = labs[nodeid]
                self._module_lab.setdefault(step.module, labs[nodeid])

    def add(self, report: Any) -> None:
        """One ``TestReport`` (setup, call or teardown) or a failed ``CollectReport``."""
        when = getattr(report, "when", None)
        if when is None or when == "collect":
            if getattr(report, "outcome", "") == "failed":
                module = report.nodeid.split("::")[0] or report.nodeid
                step = Step(nodeid=report.nodeid, module=module, name="collection", outcome="error",
                            phase="collect", message=_crash_message(report), longrepr=_longrepr_text(report))
                step.fact = _first_line(step.message) or "collection failed"
                self.collection_errors.append(step)
            return
        step = self._step(report.nodeid)
        extra = getattr(report, "fargatelab", None) or {}
        if extra.get("lab"):
            step.lab, step.document = str(extra["lab"][0]), str(extra["lab"][1])
            self._module_lab.setdefault(step.module, (step.lab, step.document))
        if extra.get("description"):
            step.description = str(extra["description"])
        if extra.get("cluster"):
            self.cluster.update(extra["cluster"])
        step.worker = str(extra.get("worker") or getattr(report, "worker_id", None) or step.worker)
        step.duration += float(getattr(report, "duration", 0.0) or 0.0)
        start, stop = getattr(report, "start", 0.0) or 0.0, getattr(report, "stop", 0.0) or 0.0
        if start:
            step.started = min(step.started or start, start)
        step.finished = max(step.finished, stop)
        # user_properties only grow during a test: the latest phase's list holds them all.
        props = _properties(report)
        if len(props) >= len(self._properties.get(step.nodeid, [])):
            self._properties[step.nodeid] = props
        for title, body in getattr(report, "sections", None) or []:
            title, body = str(title), str(body)
            if title.startswith(DIAGNOSTICS_PREFIX):
                entry = (title[len(DIAGNOSTICS_PREFIX):], body)
                if entry not in step.diagnostics:
                    step.diagnostics.append(entry)
            elif (title, body) not in step.output:
                step.output.append((title, body))
        self._outcome(step, report, when, extra.get("failure"))

    def _outcome(self, step: Step, report: Any, when: str, failure: dict[str, Any] | None) -> None:
        outcome = report.outcome
        wasxfail = getattr(report, "wasxfail", None)
        if outcome == "failed":
            if step.bad and step.phase != "":  # the first failure decides; a teardown error keeps it
                step.longrepr += "\n\n" + f"--- {when} ---\n" + _longrepr_text(report)
                return
            failure = failure or {"message": _crash_message(report)}
            step.outcome = _failed_outcome(when, str(failure.get("kind") or ""))
            step.phase = when
            step.failed_at = getattr(report, "stop", 0.0) or 0.0
            step.longrepr = _longrepr_text(report)
            _describe(step, failure)
            if when == "teardown" and not step.fact.startswith("cleanup failed"):
                step.fact = f"cleanup failed: {step.fact}"
        elif outcome == "skipped" and not step.bad:
            step.outcome, step.phase = ("xfailed" if wasxfail is not None else "skipped"), when
            step.message = str(wasxfail) if wasxfail else _crash_message(report)
            step.fact = _first_line(step.message)
        elif outcome == "passed" and when == "call":
            step.outcome, step.phase = ("xpassed" if wasxfail is not None else "passed"), when
            if wasxfail is not None:
                step.message = step.fact = f"expected to fail ({wasxfail}) but passed"
        elif outcome == "passed" and when == "setup" and step.outcome == "not run":
            step.phase = "setup"  # set up; the call report decides, unless the run stops first

    def _step(self, nodeid: str) -> Step:
        nodeid = without_xdist_group(nodeid)
        step = self._steps.get(nodeid)
        if step is None:
            module, _, name = nodeid.partition("::")
            step = Step(nodeid=nodeid, module=module, name=name or nodeid)
            if nodeid not in self._order:
                self._order[nodeid] = len(self._order) + (1 << 20)
            self._steps[nodeid] = step
        return step

    # --- output -------------------------------------------------------------------------------

    def steps(self) -> list[Step]:
        out = []
        for nodeid, step in self._steps.items():
            props = self._properties.get(nodeid, [])
            step.commands = [v for k, v in props if k == "step"]
            step.defects = [v for k, v in props if k == "documentation defect"]
            step.ran = [json.loads(v) for k, v in props if k == "ran"]
            step.waits = [v for k, v in props if k == "wait"]
            step.pictures = [(v.split("\t", 1)[0], v.split("\t", 1)[-1]) for k, v in props if k == "picture"]
            step.index = self._order.get(nodeid, 1 << 30)
            if step.outcome == "not run" and step.phase == "setup":
                step.fact = "started, but the run stopped before it finished"
            if not step.lab and step.module in self._module_lab:
                step.lab, step.document = self._module_lab[step.module]
            out.append(step)
        return sorted(out, key=lambda s: (s.index, s.nodeid))

    def labs(self) -> list[LabResult]:
        """Steps grouped by module and lab marker, labs in the order of their first step."""
        groups: dict[tuple[str, str, str], list[Step]] = {}
        for step in self.steps():
            key = (step.module, step.lab or _module_title(step.module), step.document)
            groups.setdefault(key, []).append(step)
        labs = [LabResult(title, document, module, steps) for (module, title, document), steps in groups.items()]
        # "Lab 1 — …" to "Lab 6 — …" in their order, then the others (extras) in collection order
        numbered = [re.match(r"Lab (\d+)\b", lab.title) for lab in labs]
        order = {id(lab): (0, int(m.group(1)), i) if m else (1, 0, i) for i, (lab, m) in enumerate(zip(labs, numbered))}
        return sorted(labs, key=lambda lab: order[id(lab)])

    def totals(self) -> dict[str, int]:
        counts = {k: 0 for k in OUTCOMES}
        for step in self.steps():
            counts[step.outcome] = counts.get(step.outcome, 0) + 1
        counts["error"] += len(self.collection_errors)
        return counts

    @property
    def ok(self) -> bool:
        return self.verdict() == "PASSED"

    def verdict(self) -> str:
        """INTERRUPTED; else FAILED when a documented outcome did not hold; else ERROR when the harness or the
        cluster broke, or a component of the environment died during the run (what it left unchecked may hold
        or not); else INCOMPLETE when a step never ran (a
        worker lost, ``-x``): what it would have asserted is unknown; else PASSED."""
        if self.info.interrupted:
            return "INTERRUPTED"
        t = self.totals()
        if t["failed"] + t["xpassed"]:
            return "FAILED"
        if t["error"] or self.info.died:
            return "ERROR"
        return "INCOMPLETE" if t["not run"] else "PASSED"


def _module_title(module: str) -> str:
    return Path(module).stem.removeprefix("test_").replace("_", " ") or module
