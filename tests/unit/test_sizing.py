"""Fargate pod sizing: requests -> CapacityProvisioned, per AWS "Fargate pod configuration"."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fargatelab.rules.sizing import VALID_COMBINATIONS, PodSize, capacity_provisioned, parse_quantity, pod_requests


def pod(*containers: dict[str, Any], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": list(containers)}
    if init is not None:
        spec["initContainers"] = init
    return spec


def c(cpu: str | None = None, memory: str | None = None, **extra: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": "c", "image": "busybox", **extra}
    if requests:
        container["resources"] = {"requests": requests}
    return container


def mib_for(memory_gb: float) -> str:
    """The request that, with 256 MiB added, exactly fills ``memory_gb``."""
    return f"{int(memory_gb * 1024) - 256}Mi"


# Every combination of the AWS table is reached by a request that exactly fills it.
@pytest.mark.parametrize("size", VALID_COMBINATIONS, ids=[f"exact fit {s}" for s in VALID_COMBINATIONS])
def test_every_table_combination_is_reachable(size: PodSize) -> None:
    assert capacity_provisioned(pod(c(f"{size.vcpu}", mib_for(size.memory_gb)))) == str(size)


TABLE_ROWS: dict[float, list[float]] = {
    0.25: [0.5, 1, 2],
    0.5: [1, 2, 3, 4],
    1: [2, 3, 4, 5, 6, 7, 8],
    2: [float(m) for m in range(4, 17)],
    4: [float(m) for m in range(8, 31)],
    8: [float(m) for m in range(16, 61, 4)],
    16: [float(m) for m in range(32, 121, 8)],
}


@pytest.mark.parametrize("vcpu", TABLE_ROWS, ids=[f"{v}vCPU row" for v in TABLE_ROWS])
def test_table_matches_aws(vcpu: float) -> None:
    assert [s.memory_gb for s in VALID_COMBINATIONS if s.vcpu == vcpu] == TABLE_ROWS[vcpu]


def test_table_is_sorted_smallest_first() -> None:
    assert list(VALID_COMBINATIONS) == sorted(VALID_COMBINATIONS)
    assert len(VALID_COMBINATIONS) == sum(len(m) for m in TABLE_ROWS.values())


CASES = [
    # (id, pod spec, expected annotation)
    ("nothing->0.25vCPU 0.5GB", pod(c()), "0.25vCPU 0.5GB"),
    ("no containers->0.25vCPU 0.5GB", {"containers": []}, "0.25vCPU 0.5GB"),
    ("500m+500Mi->0.5vCPU 1GB (netshoot)", pod(c("500m", "500Mi")), "0.5vCPU 1GB"),
    ("1vCPU+8Gi->2vCPU 9GB (AWS worked example)", pod(c("1", "8Gi")), "2vCPU 9GB"),
    ("250m+256Mi->0.25vCPU 0.5GB", pod(c("250m", "256Mi")), "0.25vCPU 0.5GB"),
    ("250m+257Mi->0.25vCPU 1GB", pod(c("250m", "257Mi")), "0.25vCPU 1GB"),
    ("769Mi just over 1GB->0.25vCPU 2GB", pod(c("250m", "769Mi")), "0.25vCPU 2GB"),
    ("2GB+1Mi->0.5vCPU 3GB", pod(c("250m", "1793Mi")), "0.5vCPU 3GB"),
    ("4GB+1Mi->1vCPU 5GB", pod(c("500m", "3841Mi")), "1vCPU 5GB"),
    ("8GB+1Mi->2vCPU 9GB", pod(c("1", "7937Mi")), "2vCPU 9GB"),
    ("16GB+1Mi->4vCPU 17GB", pod(c("2", "16129Mi")), "4vCPU 17GB"),
    ("30GB+1Mi->8vCPU 32GB", pod(c("4", "30465Mi")), "8vCPU 32GB"),
    ("8vCPU 4GB steps: 16Gi->20GB", pod(c("8", "16Gi")), "8vCPU 20GB"),
    ("60GB+1Mi->16vCPU 64GB", pod(c("8", "61185Mi")), "16vCPU 64GB"),
    ("16vCPU 8GB steps: 64Gi->72GB", pod(c("16", "64Gi")), "16vCPU 72GB"),
    ("251m->0.5vCPU 1GB", pod(c("251m")), "0.5vCPU 1GB"),
    ("501m->1vCPU 2GB", pod(c("501m")), "1vCPU 2GB"),
    ("1001m->2vCPU 4GB", pod(c("1001m")), "2vCPU 4GB"),
    ("2001m->4vCPU 8GB", pod(c("2001m")), "4vCPU 8GB"),
    ("4001m->8vCPU 16GB", pod(c("4001m")), "8vCPU 16GB"),
    ("8001m->16vCPU 32GB", pod(c("8001m")), "16vCPU 32GB"),
    ("cpu 0.5 plain->0.5vCPU 1GB", pod(c("0.5")), "0.5vCPU 1GB"),
    ("cpu as YAML number 2->2vCPU 4GB", pod({"name": "n", "resources": {"requests": {"cpu": 2}}}), "2vCPU 4GB"),
    ("memory 1G decimal->0.25vCPU 2GB", pod(c(None, "1G")), "0.25vCPU 2GB"),
    ("memory 800M decimal fits 1GB", pod(c(None, "800M")), "0.25vCPU 1GB"),
    ("memory 900M decimal->2GB", pod(c(None, "900M")), "0.25vCPU 2GB"),
    ("memory 0.75Gi->1GB", pod(c(None, "0.75Gi")), "0.25vCPU 1GB"),
    ("memory 1.5Gi->2GB", pod(c(None, "1.5Gi")), "0.25vCPU 2GB"),
    ("memory in bytes 805306368->1GB", pod(c(None, "805306368")), "0.25vCPU 1GB"),
    ("memory 786432Ki->1GB", pod(c(None, "786432Ki")), "0.25vCPU 1GB"),
    ("two containers summed 2x500m->1vCPU", pod(c("500m", "1Gi"), c("500m", "1Gi")), "1vCPU 3GB"),
    ("three containers summed memory->0.5vCPU 4GB", pod(c("100m", "1Gi"), c("100m", "1Gi"), c("300m", "1Gi")), "0.5vCPU 4GB"),
]


@pytest.mark.parametrize(("spec", "expected"), [(s, e) for _, s, e in CASES], ids=[i for i, _, _ in CASES])
def test_capacity(spec: dict[str, Any], expected: str) -> None:
    assert capacity_provisioned(spec) == expected


INIT_CASES = [
    ("init 2vCPU beats sum 1vCPU->2vCPU", pod(c("1", "1Gi"), init=[c("2", "1Gi")]), "2vCPU 4GB"),
    ("sum beats init->sum", pod(c("1", "3Gi"), c("1", "3Gi"), init=[c("500m", "1Gi")]), "2vCPU 7GB"),
    ("largest init, not sum of inits", pod(c("250m"), init=[c("1"), c("1")]), "1vCPU 2GB"),
    ("cpu from init, memory from containers", pod(c("250m", "6Gi"), init=[c("2", "100Mi")]), "2vCPU 7GB"),
    ("sidecar counts as long-running", pod(c("500m"), init=[c("500m", restartPolicy="Always")]), "1vCPU 2GB"),
    ("init runs beside earlier sidecar", pod(c("250m"), init=[c("1", restartPolicy="Always"), c("1")]), "2vCPU 4GB"),
]


@pytest.mark.parametrize(("spec", "expected"), [(s, e) for _, s, e in INIT_CASES], ids=[i for i, _, _ in INIT_CASES])
def test_capacity_with_init_containers(spec: dict[str, Any], expected: str) -> None:
    assert capacity_provisioned(spec) == expected


def test_limits_do_not_count_when_requests_are_given() -> None:
    netshoot = {"name": "netshoot", "resources": {"requests": {"cpu": "500m", "memory": "500Mi"},
                                                  "limits": {"cpu": "2", "memory": "2Gi"}}}
    assert capacity_provisioned(pod(netshoot)) == "0.5vCPU 1GB"


def test_limit_without_request_is_defaulted_to_the_request() -> None:
    only_limits = {"name": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
    assert capacity_provisioned(pod(only_limits)) == "1vCPU 2GB"


@pytest.mark.parametrize(
    "spec",
    [pod(c("16001m")), pod(c("1", "120Gi")), pod(c("16", "119.8Gi")), pod(c("1"), init=[c("32")])],
    ids=["cpu over 16vCPU", "memory 120Gi+256Mi over 120GB", "memory just over 120GB", "init container over 16vCPU"],
)
def test_too_big_for_fargate_raises(spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="more than the largest Fargate size 16vCPU 120GB"):
        capacity_provisioned(spec)


def test_largest_combination_still_fits() -> None:
    assert capacity_provisioned(pod(c("16", mib_for(120)))) == "16vCPU 120GB"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", Decimal("0.5")), ("0.5", Decimal("0.5")), ("2", Decimal(2)), (2, Decimal(2)), (0.25, Decimal("0.25")),
        ("1.5Gi", Decimal(3 * 2**29)), ("512Mi", Decimal(512 * 2**20)), ("1G", Decimal(10**9)),
        ("128974848", Decimal(128974848)), ("129e6", Decimal(129 * 10**6)), ("123Ki", Decimal(123 * 1024)),
        ("1k", Decimal(1000)), ("100n", Decimal("1e-7")), (".5", Decimal("0.5")),
    ],
    ids=lambda v: repr(v) if not isinstance(v, Decimal) else str(v),
)
def test_parse_quantity(text: str | int | float, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1 Gi", "1gi", "Mi", "1.2.3", "1KiB"])
def test_parse_quantity_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="invalid Kubernetes quantity"):
        parse_quantity(text)


def test_pod_requests_are_before_overhead() -> None:
    assert pod_requests(pod(c("500m", "500Mi"))) == (Decimal("0.5"), Decimal(500 * 2**20))


@pytest.mark.parametrize(
    ("size", "text"),
    [(PodSize(0.25, 0.5), "0.25vCPU 0.5GB"), (PodSize(0.5, 1.0), "0.5vCPU 1GB"),
     (PodSize(1, 2), "1vCPU 2GB"), (PodSize(2.0, 9.0), "2vCPU 9GB"), (PodSize(16, 120), "16vCPU 120GB")],
    ids=lambda v: str(v),
)
def test_annotation_format_has_no_trailing_zero(size: PodSize, text: str) -> None:
    assert str(size) == text
