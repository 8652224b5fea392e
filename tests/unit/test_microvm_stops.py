"""The microVM controller stops a microVM in a thread of its own, and a new microVM at the same address
starts only once the old one is gone (they share a directory and a network namespace name)."""

from __future__ import annotations

import threading
import time
from typing import Any

from fargatelab.local.microvm_controller import MicroVMController


class _VM:
    def __init__(self, log: list[str], name: str, seconds: float = 0.0) -> None:
        self.log, self.name, self.seconds = log, name, seconds
        self.spec = type("Spec", (), {"address": "10.11.94.248"})()

    def start(self) -> None:
        self.log.append(f"{self.name} started")

    def stop(self) -> None:
        time.sleep(self.seconds)
        self.log.append(f"{self.name} stopped")


def _controller() -> Any:
    controller: Any = object.__new__(MicroVMController)  # no API server, network or binaries: the threads only
    controller.vms, controller._starting, controller._stopping = {}, {}, {}
    controller._failed, controller._lock, controller._stopping_lock = set(), threading.Lock(), threading.Lock()
    return controller


def test_a_new_microvm_at_the_same_address_waits_for_the_old_one_to_stop() -> None:
    log: list[str] = []
    controller = _controller()
    stopping = controller._stopping["n"] = threading.Thread(
        target=controller._stop, args=("n", _VM(log, "old", 0.3), None))
    stopping.start()
    controller._start("n", _VM(log, "new"), after=stopping)
    assert log == ["old stopped", "new started"]
    stopping.join()
    assert controller._stopping == {}  # the stop forgot itself


def test_a_stop_waits_for_the_start_it_interrupts() -> None:
    log: list[str] = []
    controller = _controller()
    starting = threading.Thread(target=lambda: (time.sleep(0.3), log.append("start finished")))
    starting.start()
    controller._stop("n", _VM(log, "vm"), starting)
    assert log == ["start finished", "vm stopped"]


def test_stop_all_waits_for_the_stops_under_way() -> None:
    log: list[str] = []
    controller = _controller()
    controller._stopping["n"] = threading.Thread(target=controller._stop, args=("n", _VM(log, "old", 0.3), None))
    controller._stopping["n"].start()
    controller.stop_all()
    assert log == ["old stopped"]


def test_stop_all_finishes_a_start_that_waits_for_a_stop() -> None:
    # stop_all holds the controller's lock while it waits for a start; that start waits for the stop of the
    # microVM its address last served, which must not need the controller's lock to finish.
    log: list[str] = []
    controller = _controller()
    stopping = controller._stopping["n"] = threading.Thread(
        target=controller._stop, args=("n", _VM(log, "old", 0.3), None), daemon=True)
    stopping.start()
    new = _VM(log, "new")
    new.stop = lambda: log.append("new stopped")  # type: ignore[method-assign]
    controller.vms["n"] = new
    controller._starting["n"] = threading.Thread(target=controller._start, args=("n", new, stopping), daemon=True)
    controller._starting["n"].start()
    finished = threading.Thread(target=controller.stop_all, daemon=True)
    finished.start()
    finished.join(5)
    assert not finished.is_alive(), "stop_all deadlocked"
    assert log == ["old stopped", "new started", "new stopped"]
