"""The emulation's loops wake at the next change of what they read, and only then (fargatelab.emulator.changes)."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from fargatelab.emulator.changes import Changes
from fargatelab.emulator.kube import connect
from fargatelab.local.environment import LocalEnvironment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(local_environment: Callable[..., LocalEnvironment]) -> LocalEnvironment:
    return local_environment("changes", data_plane="kwok")


def test_a_change_wakes_the_loop_and_quiet_does_not(env: LocalEnvironment) -> None:
    clients = connect(env.handle().kubeconfig)
    clients.core.create_namespace({"metadata": {"name": "changes"}})
    stop = threading.Event()
    try:
        changes = Changes(stop).watch(clients.core.list_namespaced_config_map, namespace="changes")
        assert changes.wait(5), "the first pass runs at once"
        time.sleep(1)  # the watch is open
        changes.wait(0)
        assert not changes.wait(1.5), "nothing changed, yet the loop woke"

        threading.Timer(0.5, lambda: clients.core.create_namespaced_config_map(
            "changes", {"metadata": {"name": "one"}})).start()
        started = time.monotonic()
        assert changes.wait(10)
        assert 0.3 < time.monotonic() - started < 5

        # Another namespace's changes are not what this loop reads.
        clients.core.create_namespaced_config_map("default", {"metadata": {"name": "elsewhere"}})
        assert not changes.wait(1.5)
        clients.core.delete_namespaced_config_map("one", "changes")
        assert changes.wait(5)
    finally:
        stop.set()
