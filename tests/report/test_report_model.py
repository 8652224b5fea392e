"""The report model and its renderings, from synthetic pytest reports (no pytest run, no cluster).

How each kind of failure is shown (fact, missing, timeout, bare assert, harness error): test_report_failures.py.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _pytest.reports import CollectReport, TestReport

from fargatelab.report.model import RunInfo, RunReport, step_title
from fargatelab.report.page import render_html
from fargatelab.report.summary import render_summary_md, summary_json
from fargatelab.report.write import write_reports
from fargatelab.scenario.failures import Missing
from fargatelab.scenario.lab import expect
from report_fakes import LAB1, FakeReport, failing, longrepr_of, model_of, phases, raised, report

LAB5 = ["Lab 5 — root-shell", "002"]
EVENTS = ("LAST SEEN   TYPE      REASON             OBJECT           MESSAGE\n"
          "3s          Warning   FailedScheduling   pod/root-shell   Pod not supported on Fargate: <hostNetwork>")


def scale_failure() -> list[TestReport]:
    exc, longrepr = raised(lambda: expect("Fargate nodes after scaling", 5, 3))
    props: list[tuple[str, object]] = [
        ("step", "kubectl -n fargate-game-2048 deployment fargate-game-2048 --replicas=3  =>  "
                 "kubectl -n fargate-game-2048 scale deployment deployment-2048 --replicas=3"),
        ("documentation defect", "000-1: no verb"),
    ]
    sections = [("diagnostics: events in fargate-game-2048", EVENTS),
                ("diagnostics: describe pods in fargate-game-2048", "Name: root-shell\nStatus: Pending"),
                ("Captured stdout call", "hello from the step")]
    reps = phases("labs/test_scaling.py::test_scale[5->3]", "failed", longrepr, props=props, sections=sections,
                  failure=exc)
    # the teardown report holds a wait recorded during cleanup as well
    reps[-1].user_properties = [*props, ("wait", "namespace x deleted: met after 2.0s (timeout 120s)")]
    return reps


# --- reading reports ----------------------------------------------------------------------------

def test_step_title() -> None:
    assert step_title("test_profile_rule[eks- prefix->InvalidParameterException]") == \
        "profile rule [eks- prefix->InvalidParameterException]"
    assert step_title("test_create_profile") == "create profile"
    # pytest escapes non-ASCII characters of parametrise ids in node ids; the reports show them
    assert step_title(r"test_in_pod[resolv.conf search <ns>.svc.cluster.local \u2026 compute.internal]") == \
        "in pod [resolv.conf search <ns>.svc.cluster.local … compute.internal]"


def test_numbered_labs_first_then_the_extras() -> None:
    model = RunReport()
    for nodeid, lab in [("labs/test_coredns.py::test_patch", ["Documented extras — CoreDNS on Fargate", "001"]),
                        ("labs/test_scaling.py::test_scale", ["Lab 3 — scaling", "000"]),
                        ("labs/test_fargate_profile.py::test_create_profile", LAB1)]:
        for rep in phases(nodeid, lab=lab):
            model.add(rep)
    assert [lab.title for lab in model.labs()] == [
        "Lab 1 — Fargate profile", "Lab 3 — scaling", "Documented extras — CoreDNS on Fargate"]


# --- the model ----------------------------------------------------------------------------------

@pytest.mark.parametrize("roundtrip", [False, True], ids=["one process", "through xdist serialisation"])
def test_failure_keeps_diagnostics_commands_and_expected_actual(roundtrip: bool) -> None:
    model = model_of(scale_failure(), roundtrip=roundtrip)
    [lab] = model.labs()
    [step] = lab.steps
    assert (lab.title, lab.document, lab.module) == ("Lab 1 — Fargate profile", "000", "labs/test_scaling.py")
    assert (step.outcome, step.phase, step.fact, step.expected, step.actual) == (
        "failed", "call", "Fargate nodes after scaling", "3", "5")
    assert step.diagnostics == [("events in fargate-game-2048", EVENTS),
                                ("describe pods in fargate-game-2048", "Name: root-shell\nStatus: Pending")]
    assert step.output == [("Captured stdout call", "hello from the step")]
    assert step.commands[0].startswith("kubectl -n fargate-game-2048 deployment")
    assert step.defects == ["000-1: no verb"]
    assert step.waits == ["namespace x deleted: met after 2.0s (timeout 120s)"]
    assert step.duration == pytest.approx(1.5)
    assert "expect(" in step.longrepr
    assert model.cluster["kubernetes_version"] == "v1.30.8-eks"


def test_outcomes_of_every_phase() -> None:
    setup_error = failing("labs/a.py::test_setup", RuntimeError("cluster gone"), when="setup")
    cleanup = failing("labs/a.py::test_cleanup", AssertionError("cleanup failed: ns x"), when="teardown")
    skipped = phases("labs/a.py::test_skip", "skipped", ("labs/a.py", 3, "Skipped: needs pod-network: no pods"),
                     when="setup")
    xfail = [report("labs/a.py::test_xfail", "setup"),
             report("labs/a.py::test_xfail", "call", "skipped", ("labs/a.py", 3, "reason"), wasxfail="known bug")]
    model = model_of([*setup_error, *cleanup, *skipped, *xfail])
    steps = {s.name: s for s in model.steps()}
    assert (steps["test_setup"].outcome, steps["test_setup"].phase) == ("error", "setup")
    assert steps["test_setup"].fact == "RuntimeError: cluster gone"
    assert (steps["test_cleanup"].outcome, steps["test_cleanup"].fact) == ("error", "cleanup failed: ns x")
    assert (steps["test_skip"].outcome, steps["test_skip"].fact) == ("skipped", "needs pod-network: no pods")
    assert (steps["test_xfail"].outcome, steps["test_xfail"].ok) == ("xfailed", True)
    # errors, and no documented outcome that failed
    assert (model.totals()["error"], model.totals()["failed"], model.verdict()) == (2, 0, "ERROR")


def test_reads_only_what_crosses_the_wire() -> None:
    """A report with nothing but the attributes xdist serialises: no longrepr object, no pytest class."""
    model = RunReport(RunInfo(run_id="r1", backend="local"))
    model.add(FakeReport("labs/test_a.py::test_ok", "call", "passed", fargatelab={"lab": LAB1, "worker": "gw1"},
                         user_properties=[("step", "kubectl get pods")], start=10.0, stop=12.0, duration=2.0))
    model.add(FakeReport("labs/test_a.py::test_bad", "call", "failed",
                         fargatelab={"failure": {"kind": "fact", "fact": "replicas", "expected": "3", "actual": "2",
                                                 "message": "replicas\n  expected: 3\n  actual:   2"}}))
    ok, bad = model.steps()
    assert (ok.outcome, ok.worker, ok.commands, ok.duration, ok.started, ok.finished) == (
        "passed", "gw1", ["kubectl get pods"], 2.0, 10.0, 12.0)
    assert (bad.outcome, bad.fact, bad.expected, bad.actual, bad.lab) == ("failed", "replicas", "3", "2", LAB1[0])
    assert model.verdict() == "FAILED"


def test_labs_grouped_by_module_and_marker_in_collection_order() -> None:
    order = ["labs/test_fargate_profile.py::test_create_profile", "labs/test_root_shell.py::test_pending",
             "labs/test_fargate_profile.py::test_profile_rule[6 selectors]"]
    model = RunReport()
    model.expect(order)
    # reports arrive out of order, as from two xdist workers
    for nodeid, lab in [(order[2], LAB1), (order[1], LAB5), (order[0], LAB1)]:
        for rep in phases(nodeid, lab=lab):
            model.add(rep)
    assert [(lab.title, [s.name for s in lab.steps]) for lab in model.labs()] == [
        ("Lab 1 — Fargate profile", ["test_create_profile", "test_profile_rule[6 selectors]"]),
        ("Lab 5 — root-shell", ["test_pending"]),
    ]


def test_interrupted_run_shows_what_did_not_run() -> None:
    ids = ["labs/test_a.py::test_one", "labs/test_a.py::test_two", "labs/test_a.py::test_three"]
    model = RunReport(RunInfo(run_id="r", interrupted=True, stop_reason="interrupted by Ctrl-C"))
    model.expect(ids)
    for rep in phases(ids[0]):
        model.add(rep)
    model.add(report(ids[1], "setup"))  # running when Ctrl-C came
    steps = model.steps()
    assert [s.outcome for s in steps] == ["passed", "not run", "not run"]
    assert steps[1].fact == "started, but the run stopped before it finished"
    # a step without any report takes the lab of its module
    assert steps[2].lab == LAB1[0]
    assert model.verdict() == "INTERRUPTED"
    page = render_html(model)
    assert 'id="interrupted"' in page and "The run was interrupted: interrupted by Ctrl-C" in page
    md = render_summary_md(model)
    assert "**The run was interrupted** (interrupted by Ctrl-C)" in md and "- · three" in md
    assert summary_json(model)["run"]["interrupted"] is True


def test_collection_error_is_reported() -> None:
    rep = CollectReport("labs/test_broken.py", "failed", longrepr_of(SyntaxError("invalid syntax")), [])
    model = model_of([rep], roundtrip=False)
    assert model.totals()["error"] == 1 and not model.ok
    assert "could not be loaded" in render_summary_md(model)
    assert "Collection errors" in render_html(model)


# --- renderings ---------------------------------------------------------------------------------

def _check_mode_model() -> RunReport:
    info = RunInfo(run_id="stud1", backend="eks", mode="check", cluster="eksworkshop", region="ap-northeast-2",
                   kubernetes_version="v1.30.8-eks-2d5f260")
    return model_of([
        *phases("labs/test_fargate_profile.py::test_create_profile",
                props=[("step", "eksctl create fargateprofile --name fargate-game-2048")]),
        *failing("labs/test_netshoot.py::test_netshoot",
                 Missing("Deployment study-aews/netshoot", "kubectl apply -f netshoot.yaml"),
                 lab=["Lab 4 — netshoot", "002"]),
        *phases("labs/test_netshoot.py::test_in_pod", "skipped", ("x", 1, "Skipped: needs pod-network"),
                when="setup", lab=["Lab 4 — netshoot", "002"]),
    ], info, roundtrip=True)


def test_summary_md_for_students() -> None:
    md = render_summary_md(_check_mode_model())
    assert md.startswith("# fargate-labs: check of cluster `eksworkshop` — FAILED\n")
    assert "Kubernetes v1.30.8-eks-2d5f260" in md and "backend eks" in md
    assert "**1 of 2 steps ✔**, 1 skipped." in md
    assert "## ✔ Lab 1 — Fargate profile (document 000)\n\n- ✔ create profile\n" in md
    assert ("## ✘ Lab 4 — netshoot (document 002)\n\n- ✘ netshoot — missing: Deployment study-aews/netshoot\n"
            "  - fix: `kubectl apply -f netshoot.yaml`\n- – in pod — needs pod-network\n") in md


def test_summary_json_for_students() -> None:
    data = summary_json(_check_mode_model())
    assert data["verdict"] == "FAILED" and data["run"]["mode"] == "check"
    lab4 = data["labs"][1]
    assert (lab4["lab"], lab4["ok"]) == ("Lab 4 — netshoot", False)
    step = lab4["steps"][0]
    assert {k: step[k] for k in ("step", "ok", "mark", "missing", "fix")} == {
        "step": "netshoot", "ok": False, "mark": "✘", "missing": "Deployment study-aews/netshoot",
        "fix": "kubectl apply -f netshoot.yaml"}
    assert data["labs"][0]["steps"][0]["commands"] == ["eksctl create fargateprofile --name fargate-game-2048"]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_and_escaped() -> None:
    model = model_of(scale_failure())
    model.info.kubernetes_version = "v1.34.4"
    page = render_html(model)
    parser = _Elements()
    parser.feed(page)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert not [a for _, a in parser.tags for k, v in a.items() if k == "src" or (k == "href" and v and ":" in v)]
    assert not re.search(r"url\(", page)
    # the event text is escaped, not markup
    assert "&lt;hostNetwork&gt;" in page and "<hostNetwork>" not in page
    # the failing step is open, with its diagnostics
    failed = [a for t, a in parser.tags if t == "details" and "failed" in (a.get("class") or "")]
    assert len(failed) == 1 and "open" in failed[0]
    for text in ("Fargate nodes after scaling", "events in fargate-game-2048", "describe pods in fargate-game-2048",
                 "v1.34.4", "abc123", "ran instead: <code>kubectl -n fargate-game-2048 scale deployment",
                 "000-1: no verb", "namespace x deleted: met after 2.0s"):
        assert text in page, text
    assert re.search(r'<tr class="expected"><th>expected</th><td>3</td></tr>'
                     r'<tr class="actual"><th>actual</th><td>5</td></tr>', page)


def test_write_reports_and_latest(tmp_path: Path) -> None:
    junit = tmp_path / "staging.xml"
    junit.write_text("<testsuites/>")
    (tmp_path / "reports" / "run1").mkdir(parents=True)
    (tmp_path / "reports" / "run1" / "cost.json").write_text("{}")  # written by another part of the harness
    first = model_of(scale_failure(), RunInfo(run_id="run1"))
    run1 = write_reports(first, tmp_path / "reports", junit)
    assert sorted(p.name for p in run1.iterdir()) == ["cost.json", "junit.xml", "report.html", "summary.json",
                                                      "summary.md"]
    assert '<a href="cost.json">cost.json</a>' in (run1 / "report.html").read_text()
    latest = tmp_path / "reports" / "latest"
    assert latest.is_symlink() and latest.resolve() == run1.resolve()
    run2 = write_reports(model_of(scale_failure(), RunInfo(run_id="run2")), tmp_path / "reports", None)
    assert latest.resolve() == run2.resolve() and run1.exists()
    assert json.loads((latest / "summary.json").read_text())["run"]["run_id"] == "run2"
    assert not [p for p in (tmp_path / "reports").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("roundtrip", [False, True], ids=["in-process", "from an xdist worker"])
def test_lab_wall_time_spans_its_steps_not_their_sum(roundtrip: bool) -> None:
    """Steps of one lab that overlap (two workers) or wait between them: the lab's wall time is the span."""
    def timed(nodeid: str, when: str, start: float, stop: float) -> TestReport:
        rep = report(nodeid, when, duration=stop - start)
        rep.start, rep.stop = start, stop
        return rep

    reports = [timed("labs/test_job_ttl.py::test_a", "setup", 1000.0, 1002.0),
               timed("labs/test_job_ttl.py::test_a", "call", 1002.0, 1050.0),
               timed("labs/test_job_ttl.py::test_a", "teardown", 1050.0, 1051.0),
               timed("labs/test_job_ttl.py::test_b", "call", 1040.0, 1071.5)]
    model = model_of(reports, roundtrip=roundtrip)
    [lab] = model.labs()
    assert lab.wall == pytest.approx(71.5)
    assert lab.duration == pytest.approx(82.5)
    assert summary_json(model)["labs"][0]["wall_seconds"] == 71.5


@pytest.mark.parametrize("roundtrip", [False, True], ids=["one process", "through xdist serialisation"])
def test_a_failed_step_says_when_it_failed_before_its_cleanup(roundtrip: bool) -> None:
    """A step whose wait failed at 1004 and whose cleanup ran until 1019 failed at 1004: summary.json keeps both."""
    exc, longrepr = raised(lambda: expect("pods Running", 5, 3))
    setup, call, teardown = phases("labs/test_scaling.py::test_scale[5->3]", "failed", longrepr, failure=exc)
    for rep, (start, stop) in zip((setup, call, teardown), ((1000.0, 1001.0), (1001.0, 1004.0), (1004.0, 1019.0))):
        rep.start, rep.stop = start, stop
    passed = report("labs/test_scaling.py::test_scale[3->5]", "call")
    passed.start, passed.stop = 1019.0, 1020.0
    steps = summary_json(model_of([setup, call, teardown, passed], roundtrip=roundtrip))["labs"][0]["steps"]
    assert [(s["finished_at"], s["failed_at"]) for s in steps] == [(1019.0, 1004.0), (1020.0, None)]


def test_a_component_that_died_fails_a_run_whose_steps_all_passed() -> None:
    nodeid = "labs/test_fargate_profile.py::test_profile_created"
    died = ["kubelet-10-11-72-34 (node fargate-ip-10-11-72-34.ap-northeast-2.compute.internal)"]
    model = model_of(phases(nodeid), RunInfo(run_id="abc123", backend="local", died=died))
    model.expect([nodeid])
    assert model.totals()["passed"] == 1 and model.verdict() == "ERROR"
    assert "**A component died during the run**: kubelet-10-11-72-34" in render_summary_md(model)
    assert 'id="died"' in render_html(model) and json.loads(json.dumps(summary_json(model)))["run"]["died"] == died
    assert model_of(phases(nodeid)).verdict() != "ERROR"


def test_a_step_picture_is_inside_the_page(tmp_path: Path) -> None:
    import base64

    png = tmp_path / "game.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nnot really a picture")
    nodeid = "labs/test_game_2048_ingress.py::test_game_in_a_browser"
    model = model_of(phases(nodeid, props=[("step", "open http://x in a browser"), ("picture", f"{png}\tthe game")]))
    page = render_html(model)
    assert f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"' in page
    assert "<figcaption>the game</figcaption>" in page
    png.unlink()
    assert "picture not found" in render_html(model_of(phases(nodeid, props=[("picture", f"{png}\tthe game")])))


@pytest.mark.parametrize("roundtrip", [False, True], ids=["one process", "through xdist serialisation"])
def test_what_ran_is_reported_beside_the_documented_line(roundtrip: bool) -> None:
    """A documented line replayed through its real CLI: summary.json lists it under ``ran`` with its exit
    code, output and the compared fields; report.html shows them beside the documented commands."""
    from fargatelab.scenario.commands import Ran

    documented = "eksctl get fargateprofile --cluster $EKSCLUSTER_NAME -o yaml"
    ran = Ran("eksctl get fargateprofile --cluster eksworkshop -o yaml", 0, "- name: fargate-game-2048-r1\n  status: ACTIVE",
              ["status: 'ACTIVE' (as documented)"])
    props: list[tuple[str, object]] = [("step", f"{documented}  =>  {ran.command}"), ("ran", ran.record())]
    model = model_of(phases("labs/test_fargate_profile.py::test_create_profile", props=props), roundtrip=roundtrip)
    step = summary_json(model)["labs"][0]["steps"][0]
    assert step["commands"] == [f"{documented}  =>  {ran.command}"]
    assert step["ran"] == [{"command": ran.command, "exit_code": 0, "output": ran.output,
                            "compared": ["status: 'ACTIVE' (as documented)"]}]
    model.info.tools = {"eksctl": "v0.215.0", "helm": "v3.22.0"}
    page = render_html(model)
    assert "Ran as documented" in page and "exit 0" in page and "status: ACTIVE" in page
    assert "eksctl v0.215.0 · helm v3.22.0" in page and summary_json(model)["run"]["tools"]["eksctl"] == "v0.215.0"
    assert "status: &#x27;ACTIVE&#x27; (as documented)" in page


def test_a_long_output_is_cut_in_the_report() -> None:
    from fargatelab.scenario.commands import Ran

    recorded = json.loads(Ran("helm install x", 0, "y" * 10000).record())
    assert len(recorded["output"]) < 6100 and recorded["output"].endswith("(4000 more characters)")
    assert "stdout" not in recorded


def test_a_coloured_output_is_shown_as_text() -> None:
    from fargatelab.scenario.commands import Ran

    recorded = json.loads(Ran("ip -c a", 0, "2: \x1b[1;36meth0@if5: \x1b[0m<UP> mtu 9001").record())
    assert recorded["output"] == "2: eth0@if5: <UP> mtu 9001"
