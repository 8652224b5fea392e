"""A scenario's namespaces: documented names made run-specific, created labelled, deleted on cleanup.

In replay mode a documented namespace becomes ``<documented>-<run id>``, and a lab module that shares a
documented namespace with others (``study-aews``) scopes it first (``study-aews-netshoot``), so labs that
run side by side never meet. Check mode reads what a student made by following the documents, so every
name stays as documented.
"""

from __future__ import annotations

import json
from typing import Callable

from ..eks.facts import RUN_ID_LABEL
from . import conditions as cond
from .cleaner import Cleaner
from .kube import Kube
from .wait import Condition

__all__ = ["Namespaces"]


class Namespaces:
    def __init__(self, kube: Kube, run_id: str, replay: bool, cleaner: Cleaner,
                 wait: Callable[[Condition, float], str], settle: list[str] | None) -> None:
        self.kube, self.run_id, self.replay, self.cleaner, self._wait = kube, run_id, replay, cleaner, wait
        #: where namespaces only this run can use are handed over once their deletion has started, to be
        #: seen gone at the end of the run, all together (None: wait for each one here)
        self.settle = settle
        #: every namespace the scenario touched, for its diagnostics
        self.touched: list[str] = []
        #: namespaces whose deletion this scenario's cleanup holds
        self.deleting: set[str] = set()
        #: documented name -> the scoped name used in its place (replay)
        self.renames: dict[str, str] = {}

    def name(self, documented: str) -> str:
        return f"{documented}-{self.run_id}" if self.replay else documented

    def scoped(self, documented: str, scope: str) -> str:
        """The key used for ``documented`` from now on: ``<documented>-<scope>`` in replay, as is in check mode."""
        if not self.replay or not scope:
            return documented
        key = self.renames.setdefault(documented, f"{documented}-{scope}")
        return key

    def for_documented(self, documented: str, renames: dict[str, str] | None = None) -> str:
        """The real name of a namespace a manifest or command gives (scoped, then run-specific)."""
        key = (renames if renames is not None else self.renames).get(documented, documented)
        return self.touch(self.name(key))

    def touch(self, name: str) -> str:
        if name not in self.touched:
            self.touched.append(name)
        return name

    def ensure(self, key: str) -> str:
        """The namespace for ``key``, created (labelled with the run id) in replay mode if it is not there."""
        name = self.touch(self.name(key))
        if self.replay and not self.kube.exists(f"/api/v1/namespaces/{name}"):
            self.cleaner.add(f"namespace {name}", lambda: self.delete(name))
            self.create(name)
        return name

    def create(self, name: str) -> None:
        """Create ``name`` labelled with the run id; its deletion is already registered for cleanup."""
        self.deleting.add(name)
        self.kube.kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {RUN_ID_LABEL: self.run_id}}}))

    def delete(self, name: str) -> None:
        self.start_deleting(name)
        self.wait_gone(name)

    def start_deleting(self, name: str) -> None:
        self.kube.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)

    def wait_gone(self, name: str) -> None:
        if self.settle is not None and self.run_owned(name):
            # Nothing else will use this name, so nothing has to wait for it to be free: the namespace
            # controller takes 5 s or more per namespace, and the run waits for all of them at once.
            self.settle.append(name)
            return
        self._wait(cond.ResourceDeleted(self.kube, f"/api/v1/namespaces/{name}"), 120)

    def run_owned(self, name: str) -> bool:
        return self.replay and name.endswith(f"-{self.run_id}")
