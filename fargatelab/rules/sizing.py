"""Fargate pod sizing: from a pod spec's requests to the ``CapacityProvisioned`` annotation.

AWS sizes a Fargate pod from requests only (limits never count):

* per resource, the larger of the biggest init container request and the sum of the
  long-running containers' requests;
* plus 256 MB of memory for kubelet, kube-proxy and containerd;
* rounded up to the smallest vCPU/memory combination in :data:`VALID_COMBINATIONS`
  that covers both.

Units: the AWS table says "GB", but Fargate sizes tasks in MiB (0.5 GB is 512 MiB,
1 GB is 1024 MiB), so the table is compared in binary units and the 256 MB overhead is
256 MiB. A decimal request is converted exactly: ``1G`` is 10^9 bytes, about 954 MiB,
so ``1G`` and ``1Gi`` both fit in 2 GB after the overhead, while ``768Mi`` fits in 1 GB.

Two Kubernetes rules are applied because a spec read from YAML has not been through
the API server yet: a container with a limit but no request for a resource gets the
limit as its request (API defaulting; this is the only way a limit matters), and init
containers with ``restartPolicy: Always`` (sidecars) count as long-running, also
while later init containers run.

>>> capacity_provisioned({"containers": [{"name": "netshoot",
...     "resources": {"requests": {"cpu": "500m", "memory": "500Mi"},
...                   "limits": {"cpu": "2", "memory": "2Gi"}}}]})
'0.5vCPU 1GB'
>>> capacity_provisioned({"containers": [{"name": "big",
...     "resources": {"requests": {"cpu": "1", "memory": "8Gi"}}}]})
'2vCPU 9GB'
>>> capacity_provisioned({"containers": [{"name": "kube-ops-view"}]})
'0.25vCPU 0.5GB'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "PodSize",
    "VALID_COMBINATIONS",
    "KUBERNETES_COMPONENTS_MIB",
    "parse_quantity",
    "pod_requests",
    "pod_size",
    "capacity_provisioned",
]

KUBERNETES_COMPONENTS_MIB = 256
_MIB = Decimal(1024 * 1024)


@dataclass(frozen=True, order=True)
class PodSize:
    """One vCPU/memory combination; ``str()`` gives the annotation form.

    >>> str(PodSize(0.25, 0.5)), str(PodSize(2, 9.0))
    ('0.25vCPU 0.5GB', '2vCPU 9GB')
    """

    vcpu: float
    memory_gb: float

    def __str__(self) -> str:
        return f"{self.vcpu:g}vCPU {self.memory_gb:g}GB"


def _table() -> tuple[PodSize, ...]:
    rows: list[tuple[float, list[float]]] = [
        (0.25, [0.5, 1, 2]),
        (0.5, list(range(1, 5))),
        (1, list(range(2, 9))),
        (2, list(range(4, 17))),
        (4, list(range(8, 31))),
        (8, list(range(16, 61, 4))),
        (16, list(range(32, 121, 8))),
    ]
    return tuple(PodSize(float(cpu), float(mem)) for cpu, mems in rows for mem in mems)


VALID_COMBINATIONS: tuple[PodSize, ...] = _table()
"""Every size Fargate offers, smallest first (by vCPU, then memory)."""

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def parse_quantity(quantity: str | int | float) -> Decimal:
    """A Kubernetes quantity as an exact number (cores for cpu, bytes for memory).

    >>> parse_quantity("500m"), parse_quantity("0.5"), parse_quantity(2)
    (Decimal('0.500'), Decimal('0.5'), Decimal('2'))
    >>> parse_quantity("512Mi") == 512 * 2**20, parse_quantity("1G") == 10**9
    (True, True)
    >>> parse_quantity("1.5Gi") == 1.5 * 2**30
    True
    >>> parse_quantity("lots")
    Traceback (most recent call last):
    ValueError: invalid Kubernetes quantity: 'lots'
    """
    text = str(quantity).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"invalid Kubernetes quantity: {quantity!r}")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as err:  # pragma: no cover - the pattern already rules this out
        raise ValueError(f"invalid Kubernetes quantity: {quantity!r}") from err
    return number * _SUFFIXES[match.group(2)]


def _requests(container: dict[str, Any]) -> tuple[Decimal, Decimal]:
    resources = container.get("resources") or {}
    # API defaulting: a limit without a request becomes the request.
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    cpu = parse_quantity(merged["cpu"]) if "cpu" in merged else Decimal(0)
    memory = parse_quantity(merged["memory"]) if "memory" in merged else Decimal(0)
    return cpu, memory


def pod_requests(pod_spec: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """The pod's effective (cpu cores, memory bytes) before the Fargate overhead.

    >>> pod_requests({"initContainers": [{"name": "init",
    ...     "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
    ...   "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "3Gi"}}}]})
    (Decimal('2'), Decimal('3221225472'))
    """
    cpu = memory = Decimal(0)
    init_cpu = init_memory = Decimal(0)
    for init in pod_spec.get("initContainers") or []:
        c, m = _requests(init)
        if init.get("restartPolicy") == "Always":
            cpu, memory = cpu + c, memory + m
        else:
            # A plain init container runs beside the sidecars started before it.
            init_cpu, init_memory = max(init_cpu, cpu + c), max(init_memory, memory + m)
    for container in pod_spec.get("containers") or []:
        c, m = _requests(container)
        cpu, memory = cpu + c, memory + m
    return max(cpu, init_cpu), max(memory, init_memory)


def pod_size(pod_spec: dict[str, Any]) -> PodSize:
    """The smallest valid combination covering the requests plus 256 MiB.

    >>> pod_size({"containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "768Mi"}}}]})
    PodSize(vcpu=0.25, memory_gb=1.0)
    >>> pod_size({"containers": [{"name": "a", "resources": {"requests": {"cpu": "17"}}}]})
    Traceback (most recent call last):
    ValueError: Pod requests 17 vCPU and 0.25 GB (with 256 MB for Kubernetes components), more than the largest Fargate size 16vCPU 120GB
    """
    cpu, memory = pod_requests(pod_spec)
    memory_mib = memory / _MIB + KUBERNETES_COMPONENTS_MIB
    for size in VALID_COMBINATIONS:
        if Decimal(str(size.vcpu)) >= cpu and Decimal(str(size.memory_gb)) * 1024 >= memory_mib:
            return size
    largest = VALID_COMBINATIONS[-1]
    memory_gb = round(memory_mib / 1024, 2)
    raise ValueError(
        f"Pod requests {cpu.normalize():f} vCPU and {memory_gb.normalize():f} GB "
        f"(with {KUBERNETES_COMPONENTS_MIB} MB for Kubernetes components), "
        f"more than the largest Fargate size {largest}"
    )


def capacity_provisioned(pod_spec: dict[str, Any]) -> str:
    """The ``CapacityProvisioned`` annotation value Fargate puts on the pod.

    Raises :class:`ValueError` when no Fargate size is big enough.

    >>> capacity_provisioned({"containers": [{"name": "a", "resources": {"requests": {"memory": "1G"}}}]})
    '0.25vCPU 2GB'
    """
    return str(pod_size(pod_spec))
