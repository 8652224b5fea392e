"""The labs' order on pytest-xdist's workers: the longest documented wait first."""

from __future__ import annotations

from typing import Any

import pytest

__all__: list[str] = []


def _documented_wait(item: pytest.Item) -> float:
    mark = item.get_closest_marker("lab")
    return float(mark.kwargs.get("waits", 0)) if mark else 0.0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Labs that must wait longest go first, the rest keep their order: on N workers the run then lasts
    about as long as its longest lab, not that lab started last. (Every process sorts the same way, so
    xdist's workers still agree on the collection.)"""
    items.sort(key=lambda item: -_documented_wait(item))
    _xdist_groups_on_pytest_9_2(config, items)


def _xdist_groups_on_pytest_9_2(config: pytest.Config, items: list[pytest.Item]) -> None:
    """xdist ``--dist loadgroup`` on pytest >= 9.2: put the ``@<group>`` suffix where pytest keeps node ids now.

    pytest-xdist (<= 3.8) tells the controller an item's group by appending ``@<group>`` to ``item._nodeid``
    in the worker; pytest 9.2 keeps node ids as a structured ``item._id`` and ignores ``_nodeid``, so the
    groups are silently lost and grouped tests spread over workers (pytest-dev/pytest-xdist#1386).
    """
    if not getattr(config.option, "loadgroup", False):  # set in xdist workers only
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9.2: xdist's own suffix works
        return
    for item in items:
        groups = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        any_item: Any = item
        if groups and "@" not in item.nodeid and isinstance(getattr(item, "_id", None), NodeId):
            any_item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(groups))}")
