"""``report.html``: the run for instructors and the nightly job, on one self-contained page.

Inline CSS, no script, no external asset. Grouped by lab and step, with every failure's parts (the fact,
expected vs actual, or what is missing and the command that makes it), every error of the harness shown
apart from them, the diagnostics, the documented commands, timings, backend, Kubernetes version, run id,
and whether the run was interrupted.

>>> from fargatelab.report.model import RunInfo, RunReport
>>> page = render_html(RunReport(RunInfo(run_id="r1")))
>>> page.startswith("<!DOCTYPE html>") and '<span class="verdict PASSED">PASSED</span>' in page
True
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any, Iterable

from .model import OUTCOMES, RunReport, Step, step_title

__all__ = ["render_html"]

ERROR_MARK = OUTCOMES["error"][0]


def _fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--err:#bc4c00;--skip:#6e7781;--bg:#f6f8fa;--line:#d0d7de;--warn:#9a6700}
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
.verdict.PASSED{background:var(--ok)}.verdict.FAILED{background:var(--bad)}.verdict.ERROR{background:var(--err)}
.verdict.INTERRUPTED,.verdict.INCOMPLETE{background:var(--warn)}
.banner{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:10px 14px;margin:14px 0;font-weight:600}
table.meta{border-collapse:collapse;margin:12px 0}
table.meta th{text-align:left;font-weight:600;padding:2px 16px 2px 0;color:#59636e}
table.meta td{padding:2px 0}
.totals span{margin-right:14px;font-weight:600}
.totals .passed{color:var(--ok)}.totals .failed{color:var(--bad)}.totals .error{color:var(--err)}
.totals .skipped,.totals .notrun{color:var(--skip)}
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
details.step.error .mark{color:var(--err)}
details.step.skipped .mark,details.step.notrun .mark{color:var(--skip)}
details.step.failed>summary{background:#ffebe9}details.step.error>summary{background:#fff1e5}
.body{padding:4px 14px 14px 40px}
.body h3{font-size:14px;margin:14px 0 4px;color:#59636e;text-transform:uppercase;letter-spacing:.03em}
.fact{font-weight:600;margin:8px 0}
table.diff{border-collapse:collapse;margin:6px 0}
table.diff th{text-align:left;padding:4px 12px 4px 0;vertical-align:top;width:6em}
table.diff td{padding:4px 8px;font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;
 word-break:break-word}
table.diff tr.expected td{background:#dafbe1}table.diff tr.actual td{background:#ffebe9}
.error-message{background:#fff1e5;border:1px solid #fb8f44;border-radius:6px;padding:8px 10px;margin:6px 0}
.fix{background:#ddf4ff;border:1px solid #54aeff;border-radius:6px;padding:8px 10px;margin:6px 0}
figure.picture{margin:8px 0}figure.picture img{max-width:480px;border:1px solid #ccc}
ol.commands{margin:4px 0;padding-left:22px}ol.commands li{margin:2px 0}
.ran{color:#59636e;font-size:13px}
span.exit-ok{color:var(--ok,#1a7f37)}span.exit-bad{color:var(--bad,#cf222e);font-weight:600}
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


def _picture_html(png: str, caption: str) -> str:
    """The picture inside the page (a data URI), so report.html stays one file that can be mailed."""
    try:
        data = base64.b64encode(Path(png).read_bytes()).decode()
    except OSError:
        return f'<p class="picture-missing">picture not found: {_e(png)}</p>'
    return (f'<figure class="picture"><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _command_html(command: str) -> str:
    documented, arrow, executed = command.partition("  =>  ")
    ran = f'<br><span class="ran">ran instead: <code>{_e(executed)}</code></span>' if arrow else ""
    return f"<li><code>{_e(documented)}</code>{ran}</li>"


def _ran_html(ran: dict[str, Any]) -> str:
    """One command line run through its real CLI: the line, its exit code, its output, and what was
    compared with the document's own output."""
    code = ran.get("exit_code")
    status = f'<span class="{"exit-ok" if code == 0 else "exit-bad"}">exit {_e(str(code))}</span>'
    output = str(ran.get("output") or "")
    body = (f'<details class="section"><summary>output ({len(output.splitlines())} lines)</summary>'
            f'<pre class="table">{_e(output)}</pre></details>') if output.strip() else ""
    compared = "".join(f"<li>{_e(c)}</li>" for c in ran.get("compared") or [])
    return (f'<li><code>{_e(str(ran.get("command", "")))}</code> · {status}{body}'
            + (f'<ul class="compared">{compared}</ul>' if compared else "") + "</li>")


def _failure_html(s: Step) -> list[str]:
    """The parts of what went wrong, as data: fact, expected vs actual, missing and its fix, or the error."""
    if s.outcome == "error":
        why = ("its cleanup failed: what the step made may still be there" if s.phase == "teardown"
               else "the harness or the cluster failed here: the step could not check its documented outcome")
        parts = [f'<h3>Error</h3><div class="error-message"><div class="fact">{_e(s.fact)}</div>{_e(why)}</div>']
        if s.message.strip() != s.fact.strip():
            parts.append(f"<pre>{_e(s.message)}</pre>")
        return parts
    parts = [f'<h3>{"Failure" if s.bad else "Skipped"}</h3>', f'<div class="fact">{_e(s.fact)}</div>']
    if s.expected is not None or s.actual is not None:
        parts.append('<table class="diff">'
                     f'<tr class="expected"><th>expected</th><td>{_e(s.expected or "")}</td></tr>'
                     f'<tr class="actual"><th>actual</th><td>{_e(s.actual or "")}</td></tr></table>')
    if s.missing:
        parts.append(f'<div class="fix">missing: <b>{_e(s.missing)}</b>'
                     + (f'<br>run: <code>{_e(s.fix)}</code>' if s.fix else "") + "</div>")
    if s.message.strip() != s.fact.strip() and s.expected is None and not s.missing:
        parts.append(f"<pre>{_e(s.message)}</pre>")
    return parts


def _step_html(s: Step) -> str:
    cls = OUTCOMES.get(s.outcome, ("", "", ""))[1]
    why = f' <span class="why">— {_e(s.fact)}</span>' if s.fact and not s.ok else ""
    parts = [f'<details class="step {cls}" id="{_e(_anchor(s.nodeid))}"{" open" if s.bad else ""}>',
             f'<summary><span class="mark" title="{_e(s.outcome)}">{_e(s.mark)}</span>'
             f'<span class="name">{_e(step_title(s.name))}{why}</span>'
             f'<span class="time">{_e(s.outcome)} · {_e(_fmt_seconds(s.duration))}</span></summary>',
             '<div class="body">', f'<div><code>{_e(s.nodeid)}</code>'
             + (f' · {_e(s.worker)}' if s.worker else "") + "</div>"]
    if s.description:
        parts.append(f"<p>{_e(s.description)}</p>")
    if s.bad or (s.outcome == "skipped" and s.message):
        parts += _failure_html(s)
    if s.commands:
        parts.append('<h3>Documented commands</h3><ol class="commands">'
                     + "".join(_command_html(c) for c in s.commands) + "</ol>")
    if s.ran:
        parts.append('<h3>Ran as documented</h3><ol class="commands">' + "".join(_ran_html(r) for r in s.ran) + "</ol>")
    for png, caption in s.pictures:
        parts.append(_picture_html(png, caption))
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
    if i.tools:
        meta.insert(4, ("Tools", " · ".join(f"{name} {version}" for name, version in i.tools.items())))
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>fargate-labs {_e(i.run_id)}: {verdict}</title>", f"<style>{CSS}</style></head><body><main>",
           f'<h1>fargate-labs run {_e(i.run_id)} <span class="verdict {verdict}">{verdict}</span></h1>']
    if i.interrupted:
        out.append(f'<div class="banner" id="interrupted">The run was interrupted'
                   f'{": " + _e(i.stop_reason) if i.stop_reason else ""}. '
                   f'{t["not run"]} step(s) did not run; the results below are incomplete.</div>')
    if i.died:
        out.append(f'<div class="banner" id="died">A component of the environment died during the run: '
                   f'{_e(", ".join(i.died))}. The run fails; what needed it may not have been checked.</div>')
    if verdict == "INCOMPLETE":
        out.append(f'<div class="banner" id="incomplete">{t["not run"]} step(s) did not run: '
                   "what they assert was not checked.</div>")
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
        n_ok, n_bad, n_error = lab.count("passed", "xfailed"), lab.count("failed", "xpassed"), lab.count("error")
        rest = len(lab.steps) - n_ok - n_bad - n_error
        counts = (f"{n_ok} ✔" + (f" · {n_bad} ✘" if n_bad else "")
                  + (f" · {n_error} {ERROR_MARK}" if n_error else "") + (f" · {rest} –" if rest else ""))
        out.append(f'<tr><td>{lab.mark}</td><td><a href="#{_e(_anchor(lab.module + lab.title))}">'
                   f"{_e(lab.title)}</a></td><td>{_e(lab.document)}</td><td><code>{_e(lab.module)}</code></td>"
                   f'<td class="n">{counts}</td><td class="n">{_e(_fmt_seconds(lab.duration))}</td></tr>')
    out.append("</table>")
    for lab in labs:
        out.append(f'<section class="lab" id="{_e(_anchor(lab.module + lab.title))}"><header>'
                   f"<h2>{lab.mark} {_e(lab.title)}</h2>"
                   f'<div class="sub">document {_e(lab.document or "–")} · <code>{_e(lab.module)}</code> · '
                   f"{len(lab.steps)} steps · {_e(_fmt_seconds(lab.duration))}</div></header>")
        out.extend(_step_html(s) for s in lab.steps)
        out.append("</section>")
    links = "".join(f' · <a href="{_e(name)}">{_e(name)}</a>' for name in files)
    out.append(f"<footer>Written by the fargate-labs pytest plugin. Beside this file: junit.xml, summary.json, "
               f"summary.md{links}.</footer></main></body></html>")
    return "\n".join(out) + "\n"
