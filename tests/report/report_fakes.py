"""Synthetic pytest reports for the report model's tests: what a worker's plugin sends, without a pytest run."""

from __future__ import annotations

import json
from typing import Any, Callable

from _pytest._code import ExceptionInfo
from _pytest.reports import CollectReport, TestReport

from fargatelab.plugin.reporting import failure_data
from fargatelab.report.model import RunInfo, RunReport

LAB1 = ["Lab 1 — Fargate profile", "000"]
CLUSTER = {"cluster": "eksworkshop", "kubernetes_version": "v1.30.8-eks"}


class FakeReport:
    """The least a report needs for the model: what survives xdist's serialisation, and nothing of pytest's."""

    def __init__(self, nodeid: str, when: str, outcome: str, **attrs: Any) -> None:
        self.nodeid, self.when, self.outcome = nodeid, when, outcome
        self.longrepr = None
        self.sections: list[tuple[str, str]] = []
        self.user_properties: list[tuple[str, object]] = []
        self.duration = 0.0
        self.__dict__.update(attrs)


def longrepr_of(exc: BaseException) -> Any:
    try:
        raise exc
    except BaseException:
        return ExceptionInfo.from_current().getrepr(style="short")


def raised(fn: Callable[[], Any]) -> tuple[BaseException, Any]:
    """What ``fn`` raised, and pytest's rendering of it with ``fn``'s frames in the traceback."""
    try:
        fn()
    except BaseException as exc:
        return exc, ExceptionInfo.from_current().getrepr(style="short")
    raise AssertionError("no failure")


def report(nodeid: str, when: str = "call", outcome: str = "passed", longrepr: Any = None,
           sections: list[tuple[str, str]] | None = None, props: list[tuple[str, object]] | None = None,
           lab: list[str] | None = None, duration: float = 0.5, failure: BaseException | None = None,
           **extra: Any) -> TestReport:
    """One phase's report as the plugin leaves it: with the ``fargatelab`` attribute, and for a phase that raised
    ``failure``, its failure data."""
    rep = TestReport(nodeid, (nodeid.split("::")[0], 1, nodeid), {}, outcome, longrepr, when,  # type: ignore[arg-type]
                     sections or [], duration, 0, duration, props or [], **extra)
    sent: dict[str, Any] = {"lab": lab or LAB1, "cluster": CLUSTER}
    if failure is not None:
        sent["failure"] = failure_data(failure)
    rep.fargatelab = sent  # type: ignore[attr-defined]
    return rep


def phases(nodeid: str, outcome: str = "passed", longrepr: Any = None, when: str = "call",
           props: list[tuple[str, object]] | None = None, failure: BaseException | None = None,
           **kw: Any) -> list[TestReport]:
    """setup, call, teardown reports of one test, the failure (if any) in phase ``when``."""
    out = []
    for phase in ("setup", "call", "teardown"):
        if phase == when:
            out.append(report(nodeid, phase, outcome, longrepr, props=props, failure=failure, **kw))
            if outcome != "passed" and phase == "setup":
                out.append(report(nodeid, "teardown", "passed", props=props, lab=kw.get("lab")))
                break
        else:
            out.append(report(nodeid, phase, "passed", props=props, lab=kw.get("lab")))
    return out


def failing(nodeid: str, exc: BaseException, when: str = "call", **kw: Any) -> list[TestReport]:
    """The reports of a test whose phase ``when`` raised ``exc``."""
    return phases(nodeid, "failed", longrepr_of(exc), when=when, failure=exc, **kw)


def xdist_roundtrip(rep: Any) -> Any:
    """What the controller gets from a worker: the report through pytest's serialisation and JSON."""
    data = json.loads(json.dumps(rep._to_json()))
    return (TestReport if isinstance(rep, TestReport) else CollectReport)._from_json(data)


def model_of(reports: list[Any], info: RunInfo | None = None, roundtrip: bool = False) -> RunReport:
    model = RunReport(info or RunInfo(run_id="abc123", backend="local", mode="replay", cluster="eksworkshop"))
    for rep in reports:
        model.add(xdist_roundtrip(rep) if roundtrip else rep)
    return model
