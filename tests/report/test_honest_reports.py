"""Reports say only what happened: no report for a run that ran nothing, INCOMPLETE when steps did not run,
and step names as the lab module wrote them (without pytest-xdist's ``@group``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from report_fakes import phases
from test_report_integration import make_lab_dir, run_pytest

from fargatelab.report.model import RunInfo, RunReport
from fargatelab.report.page import render_html
from fargatelab.report.summary import render_summary_md, summary_json

GROUPED = '''
import pytest

pytestmark = [pytest.mark.lab("Lab 8 — grouped", "002"), pytest.mark.xdist_group("aws-observability")]


@pytest.mark.parametrize("fact", ["requests 0.5 vCPU"])
def test_netshoot_pod(fact):
    pass


def test_events():
    pass
'''


@pytest.mark.parametrize("args", [["--fixtures"], ["--collect-only"], ["-k", "no_step_is_called_this"]],
                         ids=["--fixtures", "--collect-only", "everything deselected"])
def test_a_run_that_runs_no_test_writes_no_report_and_keeps_latest(args: list[str], tmp_path: Path) -> None:
    lab_dir = make_lab_dir(tmp_path)
    first = run_pytest(lab_dir, "-k", "apply", "--reports-dir", "out", "--run-id", "first")
    assert first.returncode == 0, first.stdout + first.stderr
    for reports in (["--reports-dir", "out"], []):  # asked for, and by default (the run has labs)
        proc = run_pytest(lab_dir, *args, *reports, "--run-id", "nothing")
        assert proc.returncode in (0, pytest.ExitCode.NO_TESTS_COLLECTED), proc.stdout + proc.stderr
        assert not (lab_dir / "out" / "nothing").exists() and not (lab_dir / "reports").exists(), proc.stdout
        assert os.readlink(lab_dir / "out" / "latest") == "first"
        assert "fargate-labs reports" not in proc.stdout and "generated xml file" not in proc.stdout


def test_step_names_have_no_xdist_group_suffix(tmp_path: Path) -> None:
    lab_dir = make_lab_dir(tmp_path)
    (lab_dir / "test_grouped.py").write_text(GROUPED)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_grouped.py", "-n", "2",
                           "--dist", "loadgroup", "--reports-dir", "out", "--run-id", "grp"],
                          cwd=lab_dir, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = lab_dir / "out" / "grp"
    summary = json.loads((run / "summary.json").read_text())
    [grouped] = summary["labs"]
    assert [(s["step"], s["test"]) for s in grouped["steps"]] == [
        ("netshoot pod [requests 0.5 vCPU]", "test_grouped.py::test_netshoot_pod[requests 0.5 vCPU]"),
        ("events", "test_grouped.py::test_events")]
    for name in ("summary.json", "summary.md", "report.html"):
        assert "@aws-observability" not in (run / name).read_text(), name
    assert "- ✔ netshoot pod [requests 0.5 vCPU]\n" in (run / "summary.md").read_text()
    assert "junit.xml" in proc.stdout.split("generated xml file:")[1].splitlines()[0]
    assert "out/grp/junit.xml" in proc.stdout  # the copy in the run's directory, not the staging file


def test_steps_that_did_not_run_make_the_run_incomplete_never_passed() -> None:
    model = RunReport(RunInfo(run_id="r", backend="local", cluster="c"))
    model.expect(["labs/test_a.py::test_one", "labs/test_a.py::test_two@grp"],
                 {"labs/test_a.py::test_one": ("Lab 1 — a", "000"), "labs/test_a.py::test_two@grp": ("Lab 1 — a", "000")})
    for rep in phases("labs/test_a.py::test_one", lab=["Lab 1 — a", "000"]):
        model.add(rep)
    assert model.verdict() == "INCOMPLETE" and not model.ok
    [lab] = model.labs()
    assert [s.outcome for s in lab.steps] == ["passed", "not run"] and lab.mark == "·"
    assert summary_json(model)["verdict"] == "INCOMPLETE" and summary_json(model)["labs"][0]["ok"] is False
    md = render_summary_md(model)
    assert md.startswith("# fargate-labs: replay on cluster `c` — INCOMPLETE")
    assert "**The run is incomplete**: 1 step(s) marked · did not run" in md
    page = render_html(model, [])
    assert '<span class="verdict INCOMPLETE">INCOMPLETE</span>' in page and 'id="incomplete"' in page
    for rep in phases("labs/test_a.py::test_two@grp", lab=["Lab 1 — a", "000"]):  # as an xdist worker sends it
        model.add(rep)
    assert model.verdict() == "PASSED" and len(model.steps()) == 2
