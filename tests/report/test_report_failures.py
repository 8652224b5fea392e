"""What went wrong in a step, as each report shows it: taken from the exception's data, never from its text.

A documented fact not met shows the fact with expected and actual; something missing (check mode) shows
what and the command that makes it; a wait that ran out shows its condition and what it last saw; a bare
``assert`` shows its message's first line; an error of the harness or the cluster (``HarnessError``,
``KubectlFailed``, ``ComponentDied``) is an *error*, counted apart from the failures.
"""

from __future__ import annotations

from typing import Any

import pytest

from fargatelab.errors import ExitCode, HarnessError
from fargatelab.plugin.reporting import failure_data
from fargatelab.report.model import RunReport, Step
from fargatelab.report.page import render_html
from fargatelab.report.summary import render_summary_md, summary_json
from fargatelab.scenario.failures import FactMismatch, KubectlFailed, Missing
from fargatelab.scenario.wait import ComponentDied, WaitTimeout
from report_fakes import failing, model_of, phases, xdist_roundtrip

KUBECTL = KubectlFailed("kubectl -n study-aews get pods", 1, "The connection to the server 127.0.0.1:6443 was refused\n")


def only_step(model: RunReport) -> Step:
    [step] = model.steps()
    return step


def json_step(model: RunReport) -> dict[str, Any]:
    [lab] = summary_json(model)["labs"]
    [step] = lab["steps"]
    return step  # type: ignore[no-any-return]


@pytest.mark.parametrize("roundtrip", [False, True], ids=["one process", "through xdist serialisation"])
def test_fact_mismatch_shows_expected_and_actual(roundtrip: bool) -> None:
    model = model_of(failing("labs/test_profile.py::test_status", FactMismatch("profile status", "ACTIVE", "CREATING")),
                     roundtrip=roundtrip)
    step = only_step(model)
    assert (step.outcome, step.fact, step.expected, step.actual, step.missing) == (
        "failed", "profile status", "'ACTIVE'", "'CREATING'", None)
    assert "- ✘ status — profile status: expected 'ACTIVE', got 'CREATING'\n" in render_summary_md(model)
    assert ('<tr class="expected"><th>expected</th><td>&#x27;ACTIVE&#x27;</td></tr>'
            '<tr class="actual"><th>actual</th><td>&#x27;CREATING&#x27;</td></tr>') in render_html(model)
    assert {k: json_step(model)[k] for k in ("outcome", "expected", "actual")} == {
        "outcome": "failed", "expected": "'ACTIVE'", "actual": "'CREATING'"}


@pytest.mark.parametrize("when", ["call", "setup"], ids=["in the step", "in the module's shared setup"])
def test_missing_shows_what_and_the_fix(when: str) -> None:
    missing = Missing("Fargate profile fargate-game-2048 in cluster eksworkshop",
                      "eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048")
    model = model_of(failing("labs/test_game.py::test_profile", missing, when=when), roundtrip=True)
    step = only_step(model)
    # a documented step not done is the student's failure wherever it was found, not an error of the harness
    assert (step.outcome, step.fact, step.missing, step.fix) == (
        "failed", "missing: Fargate profile fargate-game-2048 in cluster eksworkshop",
        "Fargate profile fargate-game-2048 in cluster eksworkshop",
        "eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048")
    assert ("- ✘ profile — missing: Fargate profile fargate-game-2048 in cluster eksworkshop\n"
            "  - fix: `eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048`\n"
            ) in render_summary_md(model)
    assert ('<div class="fix">missing: <b>Fargate profile fargate-game-2048 in cluster eksworkshop</b><br>run: '
            '<code>eksctl create fargateprofile --cluster $EKSCLUSTER_NAME --name fargate-game-2048</code></div>'
            ) in render_html(model)
    assert json_step(model)["fix"] == missing.fix


def test_wait_timeout_shows_the_condition_and_what_it_last_saw() -> None:
    model = model_of(failing("labs/test_pods.py::test_running", WaitTimeout("pod a/b Running", 60, "Pending")))
    step = only_step(model)
    assert (step.outcome, step.fact, step.expected, step.actual) == ("failed", "timed out", "pod a/b Running", "Pending")
    assert "- ✘ running — timed out: expected pod a/b Running, got Pending\n" in render_summary_md(model)


def test_bare_assert_shows_its_first_line_and_nothing_parsed() -> None:
    # a message shaped like expect()'s is still only a message: the parts come from typed failures alone
    text = "profile status\n  expected: 'ACTIVE'\n  actual:   'CREATING'"
    model = model_of(failing("labs/test_profile.py::test_status", AssertionError(text)), roundtrip=True)
    step = only_step(model)
    assert (step.outcome, step.fact, step.message, step.expected, step.actual, step.missing) == (
        "failed", "profile status", text, None, None, None)
    assert "- ✘ status — profile status\n" in render_summary_md(model)
    assert "<pre>profile status\n  expected: &#x27;ACTIVE&#x27;" in render_html(model)


@pytest.mark.parametrize("exc,outcome", [
    (WaitTimeout("pods of study-aews Running", 60, "0 of 2 Running"), "failed"),
    (AssertionError("setup of study failed earlier in this session"), "error"),
], ids=["a documented wait", "a bare assert"])
def test_in_a_shared_setup(exc: BaseException, outcome: str) -> None:
    step = only_step(model_of(failing("labs/test_pods.py::test_running", exc, when="setup")))
    assert (step.outcome, step.phase) == (outcome, "setup")


def test_pytest_fail_message_is_the_fact() -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        pytest.fail("the webhook accepted the manifest", pytrace=False)
    model = model_of(failing("labs/test_logging.py::test_denied", failed.value))
    assert (only_step(model).outcome, only_step(model).fact) == ("failed", "the webhook accepted the manifest")


@pytest.mark.parametrize("exc,when", [
    (KUBECTL, "call"),
    (HarnessError("the API server at https://127.0.0.1:6443 refused the connection", ExitCode.START_FAILED), "setup"),
    (ComponentDied("etcd died while waiting for pod a/b Running (after 3s)"), "call"),
], ids=["kubectl failed", "harness error in setup", "component died"])
def test_harness_errors_are_errors_not_failed_facts(exc: BaseException, when: str) -> None:
    model = model_of(failing("labs/test_pods.py::test_running", exc, when=when), roundtrip=True)
    step = only_step(model)
    assert (step.outcome, step.phase, step.fact, step.mark) == ("error", when, str(exc).strip(), "⚠")
    assert (step.expected, step.actual, step.missing, step.fix) == (None, None, None, None)
    totals = model.totals()
    assert (totals["error"], totals["failed"], model.verdict(), model.ok) == (1, 0, "ERROR", False)
    md = render_summary_md(model)
    assert md.startswith("# fargate-labs: replay on cluster `eksworkshop` — ERROR\n")
    assert f"- ⚠ running — error: {str(exc).strip()}\n" in md
    assert "**0 of 1 steps ✔**, 1 ⚠ with an error." in md and "Each ⚠ is an error of the harness" in md
    page = render_html(model)
    assert '<details class="step error"' in page and '<span class="verdict ERROR">ERROR</span>' in page
    assert '<span class="error">1 with an error</span>' in page and "<h3>Error</h3>" in page
    assert json_step(model)["outcome"] == "error" and summary_json(model)["verdict"] == "ERROR"


def test_errors_and_failures_are_counted_apart() -> None:
    model = model_of([*failing("labs/test_a.py::test_fact", FactMismatch("replicas", 3, 2)),
                      *failing("labs/test_a.py::test_kubectl", KUBECTL),
                      *phases("labs/test_a.py::test_ok")], roundtrip=True)
    totals = model.totals()
    assert (totals["passed"], totals["failed"], totals["error"]) == (1, 1, 1)
    # a documented outcome that did not hold decides the verdict; the error is still counted and shown
    assert model.verdict() == "FAILED"
    [lab] = model.labs()
    assert lab.mark == "✘"
    assert "1 ✔ · 1 ✘ · 1 ⚠" in render_html(model)


def test_a_failure_in_teardown_is_a_cleanup_error() -> None:
    model = model_of(failing("labs/test_a.py::test_x", KUBECTL, when="teardown"))
    step = only_step(model)
    assert (step.outcome, step.fact) == ("error", f"cleanup failed: {KUBECTL}")


def test_failure_data_crosses_xdist_as_plain_strings() -> None:
    class Odd(FactMismatch):
        def data(self) -> dict[str, Any]:
            return {**super().data(), "extra": object(), "nothing": None}

    [_, call, _] = failing("labs/test_a.py::test_x", Odd("replicas", 3, 2))
    sent = xdist_roundtrip(call).fargatelab["failure"]
    assert all(isinstance(v, str) for v in sent.values()) and "nothing" not in sent
    assert failure_data(Odd("replicas", 3, 2))["expected"] == "3"
