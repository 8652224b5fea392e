"""The reports of a real pytest run of a synthetic lab (no cluster), checked on disk and in headless Chromium.

The synthetic lab (``synthetic/lab_synthetic.py`` with ``synthetic/conftest_synthetic.py``) has a
passing step, a failing step with expected vs actual (``FactMismatch``), documented commands, a
documentation defect and diagnostics sections attached by the real plugin, a check-mode ``Missing``, a
bare ``assert``, a step whose kubectl fails (``KubectlFailed``) and one whose fixture raises a
``HarnessError`` (both errors, not failures), a skipped step, and a step that waits. It runs in a subprocess, with pytest-xdist like ``nox -s labs``.

Chromium: Debian's ``chromium`` package (``apt-get update && apt-get install -y chromium``), or set
``FARGATE_LABS_CHROMIUM`` to a Chromium/Chrome binary. Without one, the browser test is skipped saying so,
unless ``FARGATE_LABS_REQUIRE_CHROMIUM=1`` (set by ``.ci/run``), which makes it fail instead.
"""

from __future__ import annotations

import json
import html
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

SYNTHETIC = Path(__file__).resolve().parent / "synthetic"
INSTALL_CHROMIUM = "apt-get update && apt-get install -y chromium"


def make_lab_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(SYNTHETIC / "conftest_synthetic.py", path / "conftest.py")
    shutil.copy(SYNTHETIC / "lab_synthetic.py", path / "test_synthetic_lab.py")
    (path / "pytest.ini").write_text("[pytest]\n")
    return path


def pytest_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_synthetic_lab.py", *args]


def run_pytest(lab_dir: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(pytest_argv(*args), cwd=lab_dir, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "120", **(env or {})})


@pytest.fixture(scope="module")
def xdist_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lab_dir = make_lab_dir(tmp_path_factory.mktemp("synthetic-lab"))
    proc = run_pytest(lab_dir, "-n", "2", "--reports-dir", "out", "--run-id", "synth-1", "--progress-after", "1",
                      env={"SYNTHETIC_WAIT": "2.5"})
    return {"dir": lab_dir, "proc": proc, "run": lab_dir / "out" / "synth-1"}


def test_xdist_run_writes_every_report(xdist_run: dict[str, Any]) -> None:
    proc, run = xdist_run["proc"], xdist_run["run"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert sorted(p.name for p in run.iterdir()) == ["junit.xml", "report.html", "summary.json", "summary.md"]
    latest = run.parent / "latest"
    assert latest.is_symlink() and os.readlink(latest) == "synth-1"
    assert "report:  out/synth-1/report.html" in proc.stdout

    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    # pytest's own view: an exception in a test's body is a failure, one in its setup an error
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "10", "4", "1", "1")

    summary = json.loads((run / "summary.json").read_text())
    assert {k: summary["run"][k] for k in ("run_id", "backend", "kubernetes_version", "cluster", "workers")} == {
        "run_id": "synth-1", "backend": "local", "kubernetes_version": "v1.34.4-synthetic",
        "cluster": "synthetic-cluster", "workers": 2}
    [lab] = summary["labs"]
    assert (lab["lab"], lab["document"]) == ("Lab 9 — synthetic scaling", "000")
    steps = {s["step"]: s for s in lab["steps"]}
    assert (steps["scale [5->3]"]["expected"], steps["scale [5->3]"]["actual"]) == ("3", "5")
    assert (steps["netshoot present"]["missing"], steps["netshoot present"]["fix"]) == (
        "Deployment study-aews/netshoot", "kubectl apply -f netshoot.yaml")
    assert steps["apply"]["commands"] == ["kubectl apply -f fargate_2048_full.yaml"]
    assert (steps["bare assert"]["outcome"], steps["bare assert"]["expected"]) == ("failed", None)
    # the harness's errors are errors, with their message, and count apart from the failed facts
    assert {name: steps[name]["outcome"] for name in ("kubectl breaks", "unreachable")} == {
        "kubectl breaks": "error", "unreachable": "error"}
    assert steps["kubectl breaks"]["message"] == (
        "`kubectl -n fargate-game-2048 get pods` failed (1): The connection to the server 127.0.0.1:6443 was refused")
    assert {k: summary["totals"][k] for k in ("passed", "failed", "error", "skipped")} == {
        "passed": 4, "failed": 3, "error": 2, "skipped": 1}
    assert summary["verdict"] == "FAILED"

    md = (run / "summary.md").read_text()
    assert "- ✘ netshoot present — missing: Deployment study-aews/netshoot\n  - fix: `kubectl apply -f netshoot.yaml`" in md
    assert "- ✔ apply\n" in md
    assert "- ✘ bare assert — two pods of deployment-2048\n" in md
    assert ("- ⚠ unreachable — error: the API server at https://127.0.0.1:6443 refused the connection\n") in md
    assert "**4 of 9 steps ✔**, 2 ⚠ with an error, 1 skipped." in md

    page = (run / "report.html").read_text()
    assert '<details class="step error" id="test-synthetic-lab-py-test-kubectl-breaks" open>' in page
    assert '<span class="error">2 with an error</span>' in page


def test_xdist_controller_prints_the_workers_waits(xdist_run: dict[str, Any]) -> None:
    out = xdist_run["proc"].stdout
    worker = r"  \[gw[01]\] test_slow_wait: "
    assert re.search(f"^{worker}waiting for pod fargate-game-2048/slow Running: 1s of 32s \\(last seen: Pending\\)$",
                     out, re.MULTILINE), out
    assert re.search(f"^{worker}pod fargate-game-2048/slow Running: met after 2\\.[5-9]s \\(timeout 32s\\)$",
                     out, re.MULTILINE), out
    # and the wait is on the step in the report
    html_text = (xdist_run["run"] / "report.html").read_text()
    assert re.search(r"pod fargate-game-2048/slow Running: met after 2\.[5-9]s", html_text)


def test_single_process_without_a_terminal_prints_lines(tmp_path: Path) -> None:
    proc = run_pytest(make_lab_dir(tmp_path), "--no-reports", "--progress-after", "1", "-k", "slow_wait",
                      env={"SYNTHETIC_WAIT": "1.5"})
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    start = lines.index("  waiting for pod fargate-game-2048/slow Running: 1s of 32s (last seen: Pending)")
    assert lines[start - 1] == "test_synthetic_lab.py "
    assert re.fullmatch(r"  pod fargate-game-2048/slow Running: met after 1\.[5-9]s \(timeout 32s\)", lines[start + 1])
    assert lines[start + 2].startswith("test_synthetic_lab.py .")
    assert not (tmp_path / "reports").exists()


def test_single_process_on_a_terminal_rewrites_one_line(tmp_path: Path) -> None:
    lab_dir = make_lab_dir(tmp_path)
    master, slave = pty.openpty()
    proc = subprocess.Popen(pytest_argv("--no-reports", "--progress-after", "1", "-k", "slow_wait"), cwd=lab_dir,
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env={**os.environ, "SYNTHETIC_WAIT": "3", "COLUMNS": "120"})
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    out = b"".join(chunks).decode()
    # rewritten in place (\r), each second, and ended by one line saying how the wait ended
    assert "\r  waiting for pod fargate-game-2048/slow Running: 1s of 33s (last seen: Pending)" in out
    assert "\r  waiting for pod fargate-game-2048/slow Running: 2s of 33s (last seen: Pending)" in out
    assert re.search(r"\r  pod fargate-game-2048/slow Running: met after 3\.[0-4]s \(timeout 33s\) *\r\n", out)
    assert "waiting for pod fargate-game-2048/slow Running: 2s of 33s (last seen: Pending)\r\n" not in out


def _ctrl_c_as_a_terminal_sends_it() -> None:
    # An ignored SIGINT is inherited, and Python then installs no KeyboardInterrupt for it: these tests,
    # started from the background of a script, would send a Ctrl-C nobody hears.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_says_the_run_was_interrupted(tmp_path: Path) -> None:
    lab_dir = make_lab_dir(tmp_path)
    started = tmp_path / "sleeping"
    proc = subprocess.Popen(pytest_argv("--reports-dir", "out", "--run-id", "int-1"), cwd=lab_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "SYNTHETIC_SLEEP": "60", "SYNTHETIC_STARTED": str(started)},
                            preexec_fn=_ctrl_c_as_a_terminal_sends_it)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert started.exists(), "test_sleep never started"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    run = lab_dir / "out" / "int-1"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["verdict"], summary["run"]["interrupted"], summary["run"]["stop_reason"]) == (
        "INTERRUPTED", True, "interrupted by Ctrl-C")
    outcomes = {s["step"]: s["outcome"] for s in summary["labs"][0]["steps"]}
    assert (outcomes["apply"], outcomes["sleep"], outcomes["after sleep"]) == ("passed", "not run", "not run")
    assert "The run was interrupted: interrupted by Ctrl-C" in (run / "report.html").read_text()
    assert "the run was interrupted by Ctrl-C: the reports are incomplete" in out


CTRL_C_AT_THE_END = """
import os, signal, time
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C while the run's end is under way
    time.sleep(0.2)
"""


def test_ctrl_c_during_the_runs_end_lets_it_finish_and_says_so(tmp_path: Path) -> None:
    """Every step ran; a Ctrl-C during the run's end (final cleanup, leak check, reports) is held back until
    it ends, and the report says where it came."""
    lab_dir = make_lab_dir(tmp_path)
    (lab_dir / "ctrl_c_at_the_end.py").write_text(CTRL_C_AT_THE_END)
    proc = run_pytest(lab_dir, "-k", "apply", "--reports-dir", "out", "--run-id", "int-2", "-p", "ctrl_c_at_the_end",
                      env={"PYTHONPATH": str(lab_dir)})
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, proc.stdout + proc.stderr
    summary = json.loads((lab_dir / "out" / "int-2" / "summary.json").read_text())
    assert summary["run"]["interrupted"] is True
    assert summary["run"]["stop_reason"].startswith("interrupted by Ctrl-C during the run's end"), summary["run"]
    assert [s["outcome"] for s in summary["labs"][0]["steps"]] == ["passed"]


def test_no_reports_without_labs_unless_asked(tmp_path: Path) -> None:
    lab_dir = make_lab_dir(tmp_path)
    (lab_dir / "test_plain.py").write_text("def test_plain():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_plain.py"], cwd=lab_dir,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and not (lab_dir / "reports").exists(), proc.stdout
    proc = run_pytest(lab_dir, "-k", "apply")
    assert proc.returncode == 0 and (lab_dir / "reports" / "latest" / "report.html").exists(), proc.stdout
    # deselected steps are not "not run"
    summary = json.loads((lab_dir / "reports" / "latest" / "summary.json").read_text())
    assert [s["step"] for s in summary["labs"][0]["steps"]] == ["apply"] and summary["totals"]["not run"] == 0


# --- the HTML report in headless Chromium -------------------------------------------------------

def chromium() -> str:
    found = os.environ.get("FARGATE_LABS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found and os.access(found, os.X_OK):
        return found
    message = (f"headless Chromium not found: install Debian's chromium (`{INSTALL_CHROMIUM}`) "
               "or set FARGATE_LABS_CHROMIUM=/path/to/chromium")
    if os.environ.get("FARGATE_LABS_REQUIRE_CHROMIUM") == "1":
        pytest.fail(message)
    pytest.skip(message)


def run_chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


class _StepText(HTMLParser):
    """The text and attributes of each ``details.step`` of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: dict[str, dict[str, Any]] = {}
        self._stack: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "details" and "step" in (a.get("class") or "").split():
            self.steps[a["id"] or ""] = {"attrs": a, "text": ""}
            self._stack.append(a["id"])
        elif tag == "details":
            self._stack.append(None)

    def handle_endtag(self, tag: str) -> None:
        if tag == "details" and self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        for sid in self._stack:
            if sid:
                self.steps[sid]["text"] += data + " "  # cells and lines apart, as a reader sees them


VISIBILITY_PAGE = """<!DOCTYPE html><html><body>
<iframe id="f" src="report.html" style="width:1200px;height:3000px"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {
  var d = this.contentDocument, out = {};
  d.querySelectorAll("details.step").forEach(function (s) {
    out[s.id] = {open: s.open, text: s.innerText,
                 diagnostics: Array.from(s.querySelectorAll("details.diagnostics pre")).map(function (p) {
                   return {height: p.getBoundingClientRect().height, text: p.innerText}; })};
  });
  var pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body></html>
"""


def test_failing_step_shows_its_diagnostics_in_chromium(xdist_run: dict[str, Any], tmp_path: Path) -> None:
    report_html = xdist_run["run"] / "report.html"
    chromium()

    # 1. The DOM Chromium builds from the page: the failing step is open and holds its diagnostics.
    dom = run_chromium(tmp_path / "profile-dom", "--dump-dom", report_html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    parser = _StepText()
    parser.feed(dom.stdout)
    failing = parser.steps["test-synthetic-lab-py-test-scale-5-3"]
    assert "open" in failing["attrs"] and "failed" in failing["attrs"]["class"]
    text = " ".join(failing["text"].split())
    for part in ("Fargate nodes after scaling", "expected 3", "actual 5", "events in fargate-game-2048",
                 "Warning FailedScheduling pod/deployment-2048-7d9c-x", "describe pods in fargate-game-2048",
                 "logs in fargate-game-2048", "kubectl -n fargate-game-2048 deployment fargate-game-2048 --replicas=3",
                 "000-1: the documented scale command has no verb"):
        assert part in text, part
    passing = parser.steps["test-synthetic-lab-py-test-apply"]
    assert "open" not in passing["attrs"]

    # 2. What is rendered (innerText leaves out what a closed <details> hides), via a page that frames it.
    shutil.copy(report_html, tmp_path / "report.html")
    (tmp_path / "visible.html").write_text(VISIBILITY_PAGE)
    page = run_chromium(tmp_path / "profile-visible", "--allow-file-access-from-files", "--virtual-time-budget=5000",
                        "--dump-dom", (tmp_path / "visible.html").as_uri())
    assert page.returncode == 0, page.stderr[-2000:]
    marker = '<pre id="result">'
    assert marker in page.stdout, page.stdout[-2000:]
    result = json.loads(html.unescape(page.stdout.split(marker, 1)[1].split("</pre>", 1)[0]))
    shown = result["test-synthetic-lab-py-test-scale-5-3"]
    assert shown["open"] is True
    assert "expected\t3" in shown["text"] or "expected 3" in " ".join(shown["text"].split())
    assert [d["height"] > 0 for d in shown["diagnostics"]] == [True, True, True]
    assert "FailedScheduling" in shown["diagnostics"][0]["text"]
    assert "FailedScheduling" not in result["test-synthetic-lab-py-test-apply"]["text"]

    # 3. A screenshot, kept for a person to look at (FARGATE_LABS_SCREENSHOT=path copies it there).
    shot = tmp_path / "report.png"
    done = run_chromium(tmp_path / "profile-shot", "--hide-scrollbars", "--window-size=1200,2000",
                        f"--screenshot={shot}", report_html.as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 20_000, done.stderr[-2000:]
    if os.environ.get("FARGATE_LABS_SCREENSHOT"):
        shutil.copy(shot, os.environ["FARGATE_LABS_SCREENSHOT"])
