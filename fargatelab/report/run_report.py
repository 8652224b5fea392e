"""The run report: a model built from pytest's test reports, and its three renderings.

- ``report.html`` for instructors and the nightly job: self-contained (inline CSS, no script, no
  external asset), grouped by lab and step, with every failure's diagnostics, the documented commands,
  timings, backend, Kubernetes version, run id, and whether the run was interrupted;
- ``summary.json`` and ``summary.md`` for students: ✔/✘ per lab step, what is missing and the command
  that would fix it.

The model reads only what survives pytest-xdist's report serialisation (``nodeid``, ``when``,
``outcome``, ``longrepr``, ``sections``, ``user_properties``, ``duration`` and the ``fargatelab``
attribute the plugin adds), so the controller builds it from the workers' reports.

>>> model = RunReport(RunInfo(run_id="r1", backend="local"))
>>> model.add(_Fake("labs/test_a.py::test_ok", "call", "passed",
...                 fargatelab={"lab": ["Lab 1 — Fargate profile", "000"]}))
>>> [(lab.title, [s.outcome for s in lab.steps]) for lab in model.labs()]
[('Lab 1 — Fargate profile', ['passed'])]
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

__all__ = ["RunInfo", "Step", "LabResult", "RunReport", "parse_failure", "render_html", "render_summary_md",
           "summary_json", "write_reports", "step_title"]

DIAGNOSTICS_PREFIX = "diagnostics: "

#: outcome -> (mark for students, css class, words)
OUTCOMES = {
    "passed": ("✔", "passed", "passed"),
    "xfailed": ("✔", "passed", "expected failure"),
    "failed": ("✘", "failed", "failed"),
    "error": ("✘", "failed", "error"),
    "xpassed": ("✘", "failed", "passed unexpectedly"),
    "skipped": ("–", "skipped", "skipped"),
    "not run": ("·", "notrun", "not run"),
}


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
    command: str = ""
    workers: int = 0
    timing: str = ""


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
    defects: list[str] = field(default_factory=list)
    waits: list[str] = field(default_factory=list)
    diagnostics: list[tuple[str, str]] = field(default_factory=list)
    output: list[tuple[str, str]] = field(default_factory=list)
    worker: str = ""
    index: int = 1 << 30
    #: epoch seconds: when its setup started and its teardown ended (0: not known)
    started: float = 0.0
    finished: float = 0.0

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


# --- reading pytest reports ---------------------------------------------------------------------

_EXC_PREFIX = re.compile(r"^(?:[\w.]*\.)?(?:AssertionError|Failed|WaitTimeout|ComponentDied): ?")
_EXPECTED = re.compile(r"^\s*expected:\s?(.*)$", re.MULTILINE)
_ACTUAL = re.compile(r"^\s*actual:\s*(.*)$", re.MULTILINE)
_MISSING = re.compile(r"missing: (?P<missing>.+?);\s*(?:run|create it with|fix):\s*(?P<fix>.+)", re.DOTALL)
_TIMEOUT = re.compile(r"timed out after [\d.]+s waiting for (?P<name>.+?); last seen: (?P<seen>.*)", re.DOTALL)


def parse_failure(message: str) -> dict[str, str | None]:
    """The parts of a failure message the harness writes in a known shape.

    >>> parse_failure("AssertionError: profile status\\n  expected: 'ACTIVE'\\n  actual:   'CREATING'")
    {'message': "profile status\\n  expected: 'ACTIVE'\\n  actual:   'CREATING'", 'fact': 'profile status', \
'expected': "'ACTIVE'", 'actual': "'CREATING'", 'missing': None, 'fix': None}
    >>> parse_failure("Failed: missing: Deployment study-aews/netshoot; run: kubectl apply -f netshoot.yaml")["fix"]
    'kubectl apply -f netshoot.yaml'
    >>> parse_failure("fargatelab.scenario.wait.WaitTimeout: timed out after 60.0s waiting for pod x Running; last seen: Pending")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'message': 'timed out after 60.0s waiting for pod x Running; last seen: Pending', 'fact': 'timed out after 60.0s',
     'expected': 'pod x Running', 'actual': 'Pending', 'missing': None, 'fix': None}
    """
    text = _EXC_PREFIX.sub("", message.strip(), count=1)
    out: dict[str, str | None] = {"message": text, "fact": text.splitlines()[0] if text else "",
                                  "expected": None, "actual": None, "missing": None, "fix": None}
    expected, actual = _EXPECTED.search(text), _ACTUAL.search(text)
    if expected and actual:
        out["expected"], out["actual"] = expected.group(1).strip(), actual.group(1).strip()
    missing = _MISSING.search(text)
    if missing:
        out["missing"] = missing.group("missing").strip()
        out["fix"] = missing.group("fix").strip().splitlines()[0].strip()
        out["fact"] = f"missing: {out['missing']}"
    timeout = _TIMEOUT.search(text)
    if timeout and not (expected and actual):
        out["fact"] = text.split(" waiting for ")[0]
        out["expected"], out["actual"] = timeout.group("name").strip(), timeout.group("seen").strip()
    return out


def _longrepr_text(report: Any) -> str:
    longrepr = getattr(report, "longrepr", None)
    if longrepr is None:
        return ""
    if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3:  # a skip: (path, lineno, reason)
        return str(longrepr[2])
    try:
        return str(getattr(report, "longreprtext", None) or longrepr)
    except Exception:
        return str(longrepr)


def _crash_message(report: Any) -> str:
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3:
        return re.sub(r"^Skipped: ", "", str(longrepr[2]))
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message)
    text = _longrepr_text(report)
    errors = [line[2:] for line in text.splitlines() if line.startswith("E ")]
    return "\n".join(errors) if errors else text.strip()[-2000:]


def _properties(report: Any) -> list[tuple[str, str]]:
    out = []
    for prop in getattr(report, "user_properties", None) or []:
        if isinstance(prop, (tuple, list)) and len(prop) == 2:
            out.append((str(prop[0]), str(prop[1])))
    return out


def step_title(name: str) -> str:
    """``test_profile_rule[6 selectors]`` -> ``profile rule [6 selectors]``.

    >>> step_title("test_label_selector[all selector labels->fargate]")
    'label selector [all selector labels->fargate]'
    >>> step_title("test_in_pod[search <ns> \\\\u2026 compute.internal]")  # pytest escapes non-ASCII ids
    'in pod [search <ns> … compute.internal]'
    """
    name = re.sub(r"\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|x([0-9a-fA-F]{2}))",
                  lambda m: chr(int(m.group(1) or m.group(2) or m.group(3), 16)), name)
    base, bracket, param = name.partition("[")
    base = re.sub(r"^test_?", "", base).replace("_", " ").strip() or name
    return f"{base} [{param}" if bracket else base


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
        for nodeid in nodeids:
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
                step.fact = step.message.splitlines()[0] if step.message else "collection failed"
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
        self._outcome(step, report, when)

    def _outcome(self, step: Step, report: Any, when: str) -> None:
        outcome = report.outcome
        wasxfail = getattr(report, "wasxfail", None)
        if outcome == "failed":
            if step.bad and step.phase != "":  # the first failure decides; a teardown error keeps it
                step.longrepr += "\n\n" + f"--- {when} ---\n" + _longrepr_text(report)
                return
            step.outcome = "failed" if when == "call" else "error"
            step.phase = when
            step.longrepr = _longrepr_text(report)
            parsed = parse_failure(_crash_message(report))
            step.message = parsed["message"] or ""
            step.fact = parsed["fact"] or ""
            step.expected, step.actual = parsed["expected"], parsed["actual"]
            step.missing, step.fix = parsed["missing"], parsed["fix"]
            if when == "teardown" and not step.fact.startswith("cleanup failed"):
                step.fact = f"cleanup failed: {step.fact}"
        elif outcome == "skipped" and not step.bad:
            step.outcome, step.phase = ("xfailed" if wasxfail is not None else "skipped"), when
            step.message = str(wasxfail) if wasxfail else _crash_message(report)
            step.fact = step.message.splitlines()[0] if step.message else ""
        elif outcome == "passed" and when == "call":
            step.outcome, step.phase = ("xpassed" if wasxfail is not None else "passed"), when
            if wasxfail is not None:
                step.message = step.fact = f"expected to fail ({wasxfail}) but passed"
        elif outcome == "passed" and when == "setup" and step.outcome == "not run":
            step.phase = "setup"  # set up; the call report decides, unless the run stops first

    def _step(self, nodeid: str) -> Step:
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
            step.waits = [v for k, v in props if k == "wait"]
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
        t = self.totals()
        return not self.info.interrupted and t["failed"] + t["error"] + t["xpassed"] == 0

    def verdict(self) -> str:
        if self.info.interrupted:
            return "INTERRUPTED"
        return "PASSED" if self.ok else "FAILED"


def _module_title(module: str) -> str:
    return Path(module).stem.removeprefix("test_").replace("_", " ") or module


# --- renderings ---------------------------------------------------------------------------------

def _fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def summary_json(model: RunReport) -> dict[str, Any]:
    """The students' summary as data: per lab, per step, ok or not, and what to do."""
    info = asdict(model.info)
    return {
        "run": info,
        "verdict": model.verdict(),
        "totals": model.totals(),
        "labs": [
            {
                "lab": lab.title, "document": lab.document, "module": lab.module, "ok": lab.ok,
                "wall_seconds": round(lab.wall, 3),
                "steps": [
                    {
                        "step": step_title(s.name), "test": s.nodeid, "outcome": s.outcome, "ok": s.ok,
                        "mark": s.mark, "description": s.description, "message": s.message or None,
                        "expected": s.expected, "actual": s.actual, "missing": s.missing, "fix": s.fix,
                        "commands": s.commands, "documentation_defects": s.defects,
                        "duration_seconds": round(s.duration, 3),
                        "worker": s.worker or None,
                        "started_at": round(s.started, 3) or None, "finished_at": round(s.finished, 3) or None,
                    }
                    for s in lab.steps
                ],
            }
            for lab in model.labs()
        ],
        "collection_errors": [{"module": s.module, "message": s.message} for s in model.collection_errors],
    }


def _md(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def render_summary_md(model: RunReport) -> str:
    """The students' summary: a ✔/✘ line per lab step; each ✘ says what is missing and what to run."""
    i = model.info
    t = model.totals()
    done = t["passed"] + t["xfailed"]
    counted = done + t["failed"] + t["error"] + t["xpassed"]
    what = "check of" if i.mode == "check" else "replay on"
    lines = [f"# fargate-labs: {what} cluster `{i.cluster or '?'}` — {model.verdict()}", ""]
    facts = [f"run `{i.run_id}`", f"backend {i.backend or '?'}", f"mode {i.mode}"]
    if i.kubernetes_version:
        facts.append(f"Kubernetes {i.kubernetes_version}")
    if i.region:
        facts.append(i.region)
    if i.started:
        facts.append(i.started)
    lines += [" · ".join(facts), ""]
    if i.interrupted:
        lines += [f"**The run was interrupted** ({i.stop_reason or 'stopped early'}): steps marked · did not run.", ""]
    lines += [f"**{done} of {counted} steps ✔**" + (f", {t['skipped']} skipped" if t["skipped"] else "")
              + (f", {t['not run']} not run" if t["not run"] else "") + ".", ""]
    if counted > done and i.mode == "check":
        lines += ["Each ✘ below names what is missing or wrong and, where the documents give one, "
                  "the command that fixes it. Fix, then run the check again.", ""]
    elif counted > done:
        lines += ["Each ✘ below names the documented outcome that did not hold; `report.html` has its "
                  "events, describe and logs.", ""]
    for s in model.collection_errors:
        lines += [f"- ✘ `{s.module}` could not be loaded: {_md(s.fact)}"]
    for lab in model.labs():
        doc = f" (document {lab.document})" if lab.document else ""
        lines += [f"## {'✔' if lab.ok else '✘'} {lab.title}{doc}", ""]
        for s in lab.steps:
            line = f"- {s.mark} {step_title(s.name)}"
            if s.missing:
                line += f" — missing: {_md(s.missing)}"
            elif s.bad and s.expected is not None:
                line += f" — {_md(s.fact)}: expected {_md(s.expected)}, got {_md(s.actual or '')}"
            elif s.bad or s.outcome in ("skipped", "not run"):
                line += f" — {_md(s.fact)}" if s.fact else ""
            lines.append(line)
            if s.fix:
                lines.append(f"  - fix: `{s.fix}`")
            elif s.bad and s.commands:
                lines.append(f"  - documented step: `{s.commands[-1].split('  =>  ')[0]}`")
        lines.append("")
    lines.append("The full report, with events, describe and logs of every failed step: `report.html`.")
    return "\n".join(lines) + "\n"


CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--skip:#6e7781;--bg:#f6f8fa;--line:#d0d7de;--warn:#9a6700}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK KR",sans-serif;
 margin:0;color:#1f2328;background:#fff}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:19px;margin:0}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px;overflow:auto;
 white-space:pre-wrap;word-break:break-word;margin:6px 0;max-height:480px}
.verdict{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600;font-size:14px;
 vertical-align:middle;margin-left:8px}
.verdict.PASSED{background:var(--ok)}.verdict.FAILED{background:var(--bad)}.verdict.INTERRUPTED{background:var(--warn)}
.banner{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:10px 14px;margin:14px 0;font-weight:600}
table.meta{border-collapse:collapse;margin:12px 0}
table.meta th{text-align:left;font-weight:600;padding:2px 16px 2px 0;color:#59636e}
table.meta td{padding:2px 0}
.totals span{margin-right:14px;font-weight:600}
.totals .passed{color:var(--ok)}.totals .failed{color:var(--bad)}.totals .skipped,.totals .notrun{color:var(--skip)}
table.index{border-collapse:collapse;width:100%;margin:14px 0 24px}
table.index th,table.index td{border-bottom:1px solid var(--line);padding:6px 8px;text-align:left}
table.index td.n{text-align:right;white-space:nowrap}
section.lab{border:1px solid var(--line);border-radius:8px;margin:18px 0;padding:0}
section.lab>header{padding:10px 14px;background:var(--bg);border-bottom:1px solid var(--line);border-radius:8px 8px 0 0}
section.lab>header .sub{color:#59636e;font-size:13px}
details.step{border-top:1px solid var(--line)}
details.step:first-of-type{border-top:0}
details.step>summary{cursor:pointer;padding:8px 14px;display:flex;gap:10px;align-items:baseline;list-style:none}
details.step>summary::-webkit-details-marker{display:none}
details.step>summary .mark{width:1.2em;font-weight:700}
details.step>summary .name{flex:1;font-weight:600}
details.step>summary .time{color:#59636e;font-size:13px;white-space:nowrap}
details.step>summary .why{color:#59636e;font-weight:400}
details.step.passed .mark{color:var(--ok)}details.step.failed .mark{color:var(--bad)}
details.step.skipped .mark,details.step.notrun .mark{color:var(--skip)}
details.step.failed>summary{background:#ffebe9}
.body{padding:4px 14px 14px 40px}
.body h3{font-size:14px;margin:14px 0 4px;color:#59636e;text-transform:uppercase;letter-spacing:.03em}
.fact{font-weight:600;margin:8px 0}
table.diff{border-collapse:collapse;margin:6px 0}
table.diff th{text-align:left;padding:4px 12px 4px 0;vertical-align:top;width:6em}
table.diff td{padding:4px 8px;font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;
 word-break:break-word}
table.diff tr.expected td{background:#dafbe1}table.diff tr.actual td{background:#ffebe9}
.fix{background:#ddf4ff;border:1px solid #54aeff;border-radius:6px;padding:8px 10px;margin:6px 0}
ol.commands{margin:4px 0;padding-left:22px}ol.commands li{margin:2px 0}
.ran{color:#59636e;font-size:13px}
pre.table{white-space:pre;word-break:normal}
ul.defects li{color:var(--warn)}
details.section{margin:4px 0}
details.section>summary{cursor:pointer;font-weight:600}
footer{color:#59636e;font-size:13px;margin-top:24px}
@media print{details.step{break-inside:avoid}pre{max-height:none}}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _anchor(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower() or "x"


def _command_html(command: str) -> str:
    documented, arrow, executed = command.partition("  =>  ")
    ran = f'<br><span class="ran">ran instead: <code>{_e(executed)}</code></span>' if arrow else ""
    return f"<li><code>{_e(documented)}</code>{ran}</li>"


def _step_html(s: Step) -> str:
    cls = OUTCOMES.get(s.outcome, ("", "", ""))[1]
    why = ""
    if s.outcome in ("skipped", "not run") and s.fact:
        why = f' <span class="why">— {_e(s.fact)}</span>'
    elif s.bad and s.fact:
        why = f' <span class="why">— {_e(s.fact)}</span>'
    parts = [f'<details class="step {cls}" id="{_e(_anchor(s.nodeid))}"{" open" if s.bad else ""}>',
             f'<summary><span class="mark" title="{_e(s.outcome)}">{_e(s.mark)}</span>'
             f'<span class="name">{_e(step_title(s.name))}{why}</span>'
             f'<span class="time">{_e(s.outcome)} · {_e(_fmt_seconds(s.duration))}</span></summary>',
             '<div class="body">', f'<div><code>{_e(s.nodeid)}</code>'
             + (f' · {_e(s.worker)}' if s.worker else "") + "</div>"]
    if s.description:
        parts.append(f"<p>{_e(s.description)}</p>")
    if s.bad or (s.outcome == "skipped" and s.message):
        parts.append(f'<h3>{"Failure" if s.bad else "Skipped"}</h3>')
        parts.append(f'<div class="fact">{_e(s.fact)}</div>')
        if s.expected is not None or s.actual is not None:
            parts.append('<table class="diff">'
                         f'<tr class="expected"><th>expected</th><td>{_e(s.expected or "")}</td></tr>'
                         f'<tr class="actual"><th>actual</th><td>{_e(s.actual or "")}</td></tr></table>')
        if s.missing:
            parts.append(f'<div class="fix">missing: <b>{_e(s.missing)}</b>'
                         + (f'<br>run: <code>{_e(s.fix)}</code>' if s.fix else "") + "</div>")
        if s.message.strip() != s.fact.strip() and s.expected is None and not s.missing:
            parts.append(f"<pre>{_e(s.message)}</pre>")
    if s.commands:
        parts.append('<h3>Documented commands</h3><ol class="commands">'
                     + "".join(_command_html(c) for c in s.commands) + "</ol>")
    if s.defects:
        parts.append('<h3>Documentation defects</h3><ul class="defects">'
                     + "".join(f"<li>{_e(d)}</li>" for d in s.defects) + "</ul>")
    if s.waits:
        parts.append('<h3>Waits</h3><ul class="waits">' + "".join(f"<li>{_e(w)}</li>" for w in s.waits) + "</ul>")
    if s.diagnostics:
        parts.append("<h3>Diagnostics</h3>")
        for title, body in s.diagnostics:
            parts.append(f'<details class="section diagnostics" open><summary>{_e(title)}</summary>'
                         f'<pre class="table">{_e(body if body.strip() else "(empty)")}</pre></details>')
    if s.output:
        parts.append("<h3>Output</h3>")
        for title, body in s.output:
            parts.append(f'<details class="section"><summary>{_e(title)}</summary><pre>{_e(body)}</pre></details>')
    if s.longrepr and s.bad:
        parts.append(f'<details class="section traceback"><summary>traceback ({_e(s.phase)})</summary>'
                     f"<pre>{_e(s.longrepr)}</pre></details>")
    parts.append("</div></details>")
    return "\n".join(parts)


def render_html(model: RunReport, files: Iterable[str] = ()) -> str:
    """The instructors' report: one self-contained page (inline CSS, no script, no external asset).

    ``files`` are other files of the run's directory (cost.json, leaks.json, ...), linked at the bottom.
    """
    i = model.info
    t = model.totals()
    labs = model.labs()
    verdict = model.verdict()
    meta = [("Run id", i.run_id), ("Backend", i.backend), ("Mode", i.mode),
            ("Kubernetes", i.kubernetes_version or "unknown"),
            ("Cluster", " · ".join(x for x in (i.cluster, i.region) if x) or "unknown"),
            ("Timing", i.timing), ("Started", i.started), ("Duration", _fmt_seconds(i.duration)),
            ("Workers", str(i.workers) if i.workers else "1"), ("Command", i.command)]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>fargate-labs {_e(i.run_id)}: {verdict}</title>", f"<style>{CSS}</style></head><body><main>",
           f'<h1>fargate-labs run {_e(i.run_id)} <span class="verdict {verdict}">{verdict}</span></h1>']
    if i.interrupted:
        out.append(f'<div class="banner" id="interrupted">The run was interrupted'
                   f'{": " + _e(i.stop_reason) if i.stop_reason else ""}. '
                   f'{t["not run"]} step(s) did not run; the results below are incomplete.</div>')
    out.append('<table class="meta">' + "".join(
        f"<tr><th>{_e(k)}</th><td>{'<code>' + _e(v) + '</code>' if k == 'Command' else _e(v)}</td></tr>"
        for k, v in meta if v) + "</table>")
    out.append('<p class="totals">' + "".join(
        f'<span class="{OUTCOMES[k][1]}">{t[k]} {OUTCOMES[k][2]}</span>' for k in OUTCOMES if t.get(k)) + "</p>")
    if model.collection_errors:
        out.append("<h2>Collection errors</h2>")
        for s in model.collection_errors:
            out.append(f"<p><code>{_e(s.module)}</code>: {_e(s.fact)}</p><pre>{_e(s.longrepr)}</pre>")
    out.append('<table class="index"><tr><th></th><th>Lab</th><th>Document</th><th>Module</th>'
               '<th class="n">Steps</th><th class="n">Time</th></tr>')
    for lab in labs:
        n_ok, n_bad = lab.count("passed", "xfailed"), lab.count("failed", "error", "xpassed")
        rest = len(lab.steps) - n_ok - n_bad
        counts = f"{n_ok} ✔" + (f" · {n_bad} ✘" if n_bad else "") + (f" · {rest} –" if rest else "")
        out.append(f'<tr><td>{"✔" if lab.ok else "✘"}</td><td><a href="#{_e(_anchor(lab.module + lab.title))}">'
                   f"{_e(lab.title)}</a></td><td>{_e(lab.document)}</td><td><code>{_e(lab.module)}</code></td>"
                   f'<td class="n">{counts}</td><td class="n">{_e(_fmt_seconds(lab.duration))}</td></tr>')
    out.append("</table>")
    for lab in labs:
        out.append(f'<section class="lab" id="{_e(_anchor(lab.module + lab.title))}"><header>'
                   f"<h2>{'✔' if lab.ok else '✘'} {_e(lab.title)}</h2>"
                   f'<div class="sub">document {_e(lab.document or "–")} · <code>{_e(lab.module)}</code> · '
                   f"{len(lab.steps)} steps · {_e(_fmt_seconds(lab.duration))}</div></header>")
        out.extend(_step_html(s) for s in lab.steps)
        out.append("</section>")
    links = "".join(f' · <a href="{_e(name)}">{_e(name)}</a>' for name in files)
    out.append(f"<footer>Written by the fargate-labs pytest plugin. Beside this file: junit.xml, summary.json, "
               f"summary.md{links}.</footer></main></body></html>")
    return "\n".join(out) + "\n"


def write_reports(model: RunReport, reports_dir: Path, junit: Path | None = None) -> Path:
    """Write ``<reports_dir>/<run id>/`` and point ``<reports_dir>/latest`` at it; returns the run's directory."""
    run_dir = reports_dir / (model.info.run_id or "run")
    run_dir.mkdir(parents=True, exist_ok=True)
    ours = {"report.html", "summary.json", "summary.md", "junit.xml"}
    others = sorted(p.name for p in run_dir.iterdir() if p.is_file() and p.name not in ours
                    and not p.name.startswith("."))
    _atomic_write(run_dir / "report.html", render_html(model, others))
    _atomic_write(run_dir / "summary.json", json.dumps(summary_json(model), indent=2, ensure_ascii=False) + "\n")
    _atomic_write(run_dir / "summary.md", render_summary_md(model))
    if junit is not None and junit.exists() and junit.resolve() != (run_dir / "junit.xml").resolve():
        _atomic_write(run_dir / "junit.xml", junit.read_text(encoding="utf-8"))
    latest = reports_dir / "latest"
    tmp = reports_dir / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, latest)
    except OSError:  # a filesystem without symlinks: a plain file naming the run
        tmp.unlink(missing_ok=True)
        if latest.is_symlink() or latest.is_file():
            latest.unlink()
        if not latest.exists():
            latest.write_text(run_dir.name + "\n")
    return run_dir


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class _Fake:
    """A stand-in for a pytest report in doctests."""

    def __init__(self, nodeid: str, when: str, outcome: str, **attrs: Any) -> None:
        self.nodeid, self.when, self.outcome = nodeid, when, outcome
        self.longrepr = None
        self.sections: list[tuple[str, str]] = []
        self.user_properties: list[tuple[str, object]] = []
        self.duration = 0.0
        self.__dict__.update(attrs)
