"""Setups shared by the tests of one xdist group, across modules: built once, on first use, by a Lab of their own.

Lab 2 and Lab 3 use the same two 2048 deployments; ``--dist loadgroup`` keeps every test of one deployment
on one worker, so that worker builds it once and its tests, of both modules, read it. A setup that failed
fails every later test that asks for it at once, naming the first failure, instead of building it again.
At the session's end every shared setup is undone, side by side (each waits for its namespace to go).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, TypeVar

import pytest

from ..rules.timing import Timing
from ..scenario.cleaner import CleanupFailed
from ..scenario.handle import ClusterHandle
from ..scenario.kube import Kube
from ..scenario.lab import Lab
from .fixtures import new_lab

__all__ = ["SharedSetups"]

T = TypeVar("T")


class SharedSetups:
    """``shared_setups(key, build, lab, scope=...)``: what ``build(owner_lab)`` made for ``key``; ``lab`` inherits it."""

    def __init__(self, make_lab: Callable[[str], Lab], keep: bool) -> None:
        self._make_lab = make_lab
        self._keep = keep
        self._built: dict[str, tuple[Lab, Any]] = {}
        self._failed: dict[str, tuple[Lab, str]] = {}

    def __call__(self, key: str, build: Callable[[Lab], T], lab: Lab, scope: str = "") -> T:
        if key in self._failed:
            owner, first = self._failed[key]
            lab.inherit(owner)
            pytest.fail(f"setup of {key} failed earlier in this session: {first}", pytrace=False)
        if key not in self._built:
            owner = self._make_lab(scope)
            try:
                self._built[key] = (owner, build(owner))
            except BaseException as exc:
                self._failed[key] = (owner, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                lab.inherit(owner)
                raise
        owner, value = self._built[key]
        lab.inherit(owner)
        result: T = value
        return result

    def close(self) -> None:
        """Undo every shared setup (also those whose build failed halfway), side by side."""
        owners = [owner for owner, _ in self._built.values()] + [owner for owner, _ in self._failed.values()]
        if self._keep or not owners:
            return
        errors: list[str] = []

        def undo(owner: Lab) -> None:
            try:
                owner.cleanup()
            except Exception as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=undo, args=(owner,), name=f"cleanup-{i}") for i, owner in enumerate(owners)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise CleanupFailed(errors)


@pytest.fixture(scope="session")
def shared_setups(pytestconfig: pytest.Config, cluster: ClusterHandle, kube: Kube, aws: Callable[[str], Any],
                  timing: Timing, namespaces_deleted_at_end: list[str]) -> Iterator[SharedSetups]:
    """The session's shared setups, undone at its end (before the run waits for the namespaces they deleted)."""
    setups = SharedSetups(lambda scope: new_lab(pytestconfig, cluster, kube, aws, timing, record=[], scope=scope),
                          keep=pytestconfig.option.keep)
    try:
        yield setups
    finally:
        setups.close()
