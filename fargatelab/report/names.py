"""How a step is named in the reports: from pytest's node id, as the lab module wrote it."""

from __future__ import annotations

import re

__all__ = ["step_title", "without_xdist_group"]


def without_xdist_group(nodeid: str) -> str:
    """A node id as the lab module names it: pytest-xdist's ``--dist loadgroup`` appends ``@<group>`` to the
    ids its workers report, which is no part of the step.

    >>> without_xdist_group("labs/test_netshoot.py::test_netshoot_pod[requests 0.5 vCPU]@aws-observability")
    'labs/test_netshoot.py::test_netshoot_pod[requests 0.5 vCPU]'
    >>> without_xdist_group("labs/test_job_ttl.py::test_busybox2_remains@job-ttl")
    'labs/test_job_ttl.py::test_busybox2_remains'
    >>> without_xdist_group("labs/test_a.py::test_probe[user@host]")  # an id of its own keeps its @
    'labs/test_a.py::test_probe[user@host]'
    """
    head, sep, last = nodeid.rpartition("::")
    if not sep:
        return nodeid
    if "[" in last:
        params, bracket, tail = last.rpartition("]")
        return f"{head}::{params}]" if bracket and tail.startswith("@") else nodeid
    return f"{head}::{last.split('@', 1)[0]}"


def step_title(name: str) -> str:
    """``test_profile_rule[6 selectors]`` -> ``profile rule [6 selectors]``.

    >>> step_title("test_label_selector[all selector labels->fargate]")
    'label selector [all selector labels->fargate]'
    >>> step_title("test_in_pod[search <ns> \\\\u2026 compute.internal]")  # pytest escapes non-ASCII ids
    'in pod [search <ns> … compute.internal]'
    """
    name = re.sub(r"\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|x([0-9a-fA-F]{2}))",
                  lambda m: chr(int(m.group(1) or m.group(2) or m.group(3), 16)), name)
    base, bracket, param = name.partition("[")
    base = re.sub(r"^test_?", "", base).replace("_", " ").strip() or name
    return f"{base} [{param}" if bracket else base
