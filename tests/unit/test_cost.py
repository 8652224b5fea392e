"""The cost estimate: CapacityProvisioned x lifetime per pod (per second, one-minute minimum), ALB hours."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from fargatelab.cleanup.leftovers import belongs_to_run
from fargatelab.report.cost import (PRICES,
    CostMeter,
    LoadBalancerRecord,
    PodRecord,
    estimate,
    merge_observations,
    parse_capacity,
    summary_line)

UTC = dt.timezone.utc


def test_capacity_parsing() -> None:
    assert parse_capacity("0.25vCPU 0.5GB") == (0.25, 0.5)
    assert parse_capacity("2vCPU 8GB") == (2.0, 8.0)
    with pytest.raises(ValueError):
        parse_capacity("lots")


def test_estimate_sums_capacity_times_billed_lifetime() -> None:
    pods = [PodRecord("a", "ns-r", "short", "0.25vCPU 0.5GB", start=1000.0, end=1010.0),   # 60 s minimum
            PodRecord("b", "ns-r", "long", "1vCPU 2GB", start=1000.0, end=1000.0 + 3600.2)]  # rounded up
    lbs = [LoadBalancerRecord("arn:lb", "k8s-x", created=0.0, gone=5400.0)]                # 2 started hours
    report = estimate(pods, lbs, "ap-northeast-2")
    vcpu = 0.25 * 60 / 3600 + 1 * 3601 / 3600
    gb = 0.5 * 60 / 3600 + 2 * 3601 / 3600
    assert report["fargate"]["vcpu_hours"] == pytest.approx(vcpu, abs=1e-6)
    assert report["fargate"]["gb_hours"] == pytest.approx(gb, abs=1e-6)
    assert report["alb"]["hours"] == 2
    p = PRICES["ap-northeast-2"]
    assert report["total_cost"] == pytest.approx(vcpu * p.fargate_vcpu_hour + gb * p.fargate_gb_hour + 2 * p.alb_hour,
                                                 abs=1e-5)
    assert report["prices"]["source"] and report["prices"]["as_of"]
    assert "ap-northeast-2 list prices" in summary_line(report)


def test_unknown_region_uses_the_recorded_prices_and_says_so() -> None:
    assert "ap-northeast-2 prices used" in estimate([], [], "eu-west-1")["prices_note"]


def _pod(uid: str, namespace: str, capacity: str | None, phase: str = "Running",
         finished: dt.datetime | None = None) -> Any:
    statuses = [SimpleNamespace(state=SimpleNamespace(terminated=SimpleNamespace(finished_at=finished)))] \
        if finished else []
    return SimpleNamespace(
        metadata=SimpleNamespace(uid=uid, namespace=namespace, name=f"pod-{uid}",
                                 annotations={"CapacityProvisioned": capacity} if capacity else {},
                                 creation_timestamp=dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)),
        status=SimpleNamespace(phase=phase, container_statuses=statuses))


def test_meter_records_only_the_runs_fargate_pods() -> None:
    meter = CostMeter("unused", "r1", None, [])
    start = dt.datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    meter.observe_pod(_pod("a", "game-r1", None))                  # not on Fargate yet
    assert meter.pods == {}
    meter.observe_pod(_pod("a", "game-r1", "0.25vCPU 0.5GB"))
    meter.observe_pod(_pod("b", "other", "0.25vCPU 0.5GB"))        # another run's namespace
    meter.observe_pod(_pod("a", "game-r1", "0.25vCPU 0.5GB"), deleted=True, now=start + 90)
    assert list(meter.pods) == ["a"]
    assert meter.pods["a"].seconds == 90 and meter.pods["a"].end_reason == "deleted"
    done = dt.datetime(2026, 1, 1, 0, 2, tzinfo=UTC)
    meter.observe_pod(_pod("c", "jobs-r1", "0.5vCPU 1GB", phase="Succeeded", finished=done))
    assert meter.pods["c"].end == done.timestamp() and meter.pods["c"].end_reason == "succeeded"


def test_merge_prefers_the_first_precise_end() -> None:
    a = {"pods": [dict(uid="u", namespace="n-r", name="p", capacity="0.25vCPU 0.5GB", start=10.0, end=70.0,
                       end_reason="deleted")], "load_balancers": []}
    b = {"pods": [dict(uid="u", namespace="n-r", name="p", capacity="0.25vCPU 0.5GB", start=10.0, end=95.0,
                       end_reason="gone")],
         "load_balancers": [dict(arn="x", name="lb", created=0.0, gone=None)]}
    pods, lbs = merge_observations([b, a])
    assert pods[0].end == 70.0 and pods[0].end_reason == "deleted"
    assert lbs[0].gone is None


def test_elbv2_resources_of_a_run() -> None:
    assert belongs_to_run({"fargate-labs/run-id": "r1"}, "r1", None)
    stack = "game-2048-r1/ingress-2048"
    assert belongs_to_run({"ingress.k8s.aws/stack": stack, "elbv2.k8s.aws/cluster": "c"}, "r1", ["c"])
    assert not belongs_to_run({"ingress.k8s.aws/stack": stack, "elbv2.k8s.aws/cluster": "d"}, "r1", ["c"])
    assert not belongs_to_run({"ingress.k8s.aws/stack": "game-2048-r11/x"}, "r1", None)
    assert not belongs_to_run({"ingress.k8s.aws/stack": "shared-group"}, "r1", None)
