"""EKS ``DescribeClusterVersions`` (``GET /cluster-versions``), which moto does not serve and every eksctl
command calls first: the Kubernetes version this environment's control plane runs, as EKS describes it.

The dates are EKS's published calendar (standard support 14 months from release, extended support 12
more). Every version still supported is listed, as EKS lists them; the environment's own version (the only
one its control plane runs) is the default.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

__all__ = ["CALENDAR", "describe_cluster_versions"]

#: minor version -> (release, end of standard support, end of extended support), from the EKS user guide
CALENDAR: dict[str, tuple[date, date, date]] = {
    "1.30": (date(2024, 5, 23), date(2025, 7, 23), date(2026, 7, 23)),
    "1.31": (date(2024, 9, 26), date(2025, 11, 26), date(2026, 11, 26)),
    "1.32": (date(2025, 1, 23), date(2026, 3, 23), date(2027, 3, 23)),
    "1.33": (date(2025, 5, 29), date(2026, 7, 29), date(2027, 7, 29)),
    "1.34": (date(2025, 10, 2), date(2026, 12, 2), date(2027, 12, 2)),
}


def _epoch(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def _status(today: date, standard_end: date, extended_end: date) -> str:
    if today <= standard_end:
        return "STANDARD_SUPPORT"
    return "EXTENDED_SUPPORT" if today <= extended_end else "UNSUPPORTED"


def describe_cluster_versions(kubernetes_version: str, query: dict[str, list[str]],
                              today: date | None = None) -> tuple[int, dict[str, Any]]:
    """The response (status, body) to a ``DescribeClusterVersions`` request with ``query``'s parameters:
    every version of :data:`CALENDAR` still supported ``today`` (all with ``includeAll=true``), the
    environment's own the default, with its patch version. eksctl checks its own default version (1.32 for
    eksctl 0.215) against this list before any command.

    >>> status, body = describe_cluster_versions("v1.34.4", {}, date(2026, 12, 1))
    >>> [(v["clusterVersion"], v["versionStatus"], v["defaultVersion"]) for v in body["clusterVersions"]]
    [('1.34', 'STANDARD_SUPPORT', True), ('1.33', 'EXTENDED_SUPPORT', False), ('1.32', 'EXTENDED_SUPPORT', False)]
    >>> body["clusterVersions"][0]["kubernetesPatchVersion"]
    '1.34.4'
    >>> describe_cluster_versions("v1.34.4", {"clusterVersions": ["1.29"]})[1]["clusterVersions"]
    []
    """
    patch = kubernetes_version.lstrip("v")
    own = ".".join(patch.split(".")[:2])
    today = today or datetime.now(timezone.utc).date()
    calendar = dict(CALENDAR)
    calendar.setdefault(own, (today, today, today))
    wanted = [v for values in query.get("clusterVersions", []) for v in values.split(",") if v]
    found = []
    for minor, (released, standard_end, extended_end) in sorted(calendar.items(), key=lambda kv: _key(kv[0]),
                                                                 reverse=True):
        status = _status(today, standard_end, extended_end) if minor != own else "STANDARD_SUPPORT"
        if wanted and minor not in wanted or query.get("clusterType", ["eks"])[0] != "eks":
            continue
        if query.get("status", [status])[0] != status or query.get("versionStatus", [status])[0] != status:
            continue
        if status == "UNSUPPORTED" and query.get("includeAll", ["false"])[0] != "true":
            continue
        if query.get("defaultOnly", ["false"])[0] == "true" and minor != own:
            continue
        found.append({
            "clusterVersion": minor, "clusterType": "eks", "defaultPlatformVersion": "eks.1",
            "defaultVersion": minor == own, "releaseDate": _epoch(released),
            "endOfStandardSupportDate": _epoch(standard_end), "endOfExtendedSupportDate": _epoch(extended_end),
            "status": status, "versionStatus": status,
            **({"kubernetesPatchVersion": patch} if minor == own else {}),
        })
    return 200, {"clusterVersions": found}


def _key(minor: str) -> tuple[int, ...]:
    return tuple(int(p) for p in minor.split("."))
