"""The students' summary: ``summary.json`` (data) and ``summary.md`` (a ✔/✘ line per lab step).

A ✘ is a documented outcome that did not hold: the fact with what was expected and what the cluster
showed, or (check mode) what is missing and the command that makes it. A ⚠ is an error: the harness or
the cluster broke (kubectl, the API server, a component of the environment), so the step could not say.

>>> from fargatelab.report.model import RunInfo, RunReport
>>> print(render_summary_md(RunReport(RunInfo(run_id="r1", backend="local", cluster="c"))), end="")
# fargate-labs: replay on cluster `c` — PASSED
<BLANKLINE>
run `r1` · backend local · mode replay
<BLANKLINE>
**0 of 0 steps ✔**.
<BLANKLINE>
The full report, with events, describe and logs of every failed step: `report.html`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .model import OUTCOMES, RunReport, Step, step_title

__all__ = ["summary_json", "render_summary_md"]

ERROR_MARK = OUTCOMES["error"][0]


def summary_json(model: RunReport) -> dict[str, Any]:
    """The students' summary as data: per lab, per step, ok or not, and what to do."""
    return {
        "run": asdict(model.info),
        "verdict": model.verdict(),
        "totals": model.totals(),
        "labs": [
            {
                "lab": lab.title, "document": lab.document, "module": lab.module,
                "ok": lab.ok and not lab.count("not run"),
                "wall_seconds": round(lab.wall, 3),
                "steps": [
                    {
                        "step": step_title(s.name), "test": s.nodeid, "outcome": s.outcome, "ok": s.ok,
                        "mark": s.mark, "description": s.description, "message": s.message or None,
                        "expected": s.expected, "actual": s.actual, "missing": s.missing, "fix": s.fix,
                        "commands": s.commands, "ran": s.ran, "documentation_defects": s.defects,
                        "duration_seconds": round(s.duration, 3),
                        "worker": s.worker or None,
                        "started_at": round(s.started, 3) or None, "finished_at": round(s.finished, 3) or None,
                        "failed_at": round(s.failed_at, 3) or None,
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


def _step_lines(s: Step) -> list[str]:
    line = f"- {s.mark} {step_title(s.name)}"
    if s.outcome == "error":
        line += f" — error: {_md(s.fact)}" if s.fact else " — error"
    elif s.missing:
        line += f" — missing: {_md(s.missing)}"
    elif s.bad and s.expected is not None:
        line += f" — {_md(s.fact)}: expected {_md(s.expected)}, got {_md(s.actual or '')}"
    elif s.bad or s.outcome in ("skipped", "not run"):
        line += f" — {_md(s.fact)}" if s.fact else ""
    lines = [line]
    if s.fix:
        lines.append(f"  - fix: `{s.fix}`")
    elif s.bad and s.commands:
        lines.append(f"  - documented step: `{s.commands[-1].split('  =>  ')[0]}`")
    return lines


def render_summary_md(model: RunReport) -> str:
    """The students' summary: a ✔/✘ line per lab step; each ✘ says what is missing and what to run."""
    i = model.info
    t = model.totals()
    done = t["passed"] + t["xfailed"]
    failed = t["failed"] + t["xpassed"]
    counted = done + failed + t["error"]
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
    if i.died:
        lines += [f"**A component died during the run**: {', '.join(i.died)}. The run fails; what needed it may "
                  "not have been checked.", ""]
    if i.interrupted:
        lines += [f"**The run was interrupted** ({i.stop_reason or 'stopped early'}): steps marked · did not run.", ""]
    elif t["not run"]:
        lines += [f"**The run is incomplete**: {t['not run']} step(s) marked · did not run, so what they assert "
                  "was not checked.", ""]
    lines += [f"**{done} of {counted} steps ✔**"
              + (f", {t['error']} {ERROR_MARK} with an error" if t["error"] else "")
              + (f", {t['skipped']} skipped" if t["skipped"] else "")
              + (f", {t['not run']} not run" if t["not run"] else "") + ".", ""]
    if failed and i.mode == "check":
        lines += ["Each ✘ below names what is missing or wrong and, where the documents give one, "
                  "the command that fixes it. Fix, then run the check again.", ""]
    elif failed:
        lines += ["Each ✘ below names the documented outcome that did not hold; `report.html` has its "
                  "events, describe and logs.", ""]
    if t["error"]:
        lines += [f"Each {ERROR_MARK} is an error of the harness or the cluster (kubectl, the API server, a "
                  "component of the environment, a cleanup), not a documented outcome: the step could not say "
                  "whether it holds. Fix the cause, then run again.", ""]
    for s in model.collection_errors:
        lines += [f"- {ERROR_MARK} `{s.module}` could not be loaded: {_md(s.fact)}"]
    for lab in model.labs():
        doc = f" (document {lab.document})" if lab.document else ""
        lines += [f"## {lab.mark} {lab.title}{doc}", ""]
        for s in lab.steps:
            lines += _step_lines(s)
        lines.append("")
    lines.append("The full report, with events, describe and logs of every failed step: `report.html`.")
    return "\n".join(lines) + "\n"
