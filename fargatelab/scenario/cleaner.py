"""The undo stack of a scenario: what it made is deleted newest first, each waited for until it is gone.

Ctrl-C never cuts cleanup short, because that is how resources leak. While the stack runs, SIGINT is
held back: the action under way finishes, every later action still runs, and the interrupt is raised
once the stack is empty; SIGTERM is treated the same way. (kubectl children run in their own session,
see ``Kube.kubectl``, so the terminal's Ctrl-C does not reach them either.) An action that fails is
reported and the rest still run.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator

__all__ = ["Cleaner", "CleanupFailed", "terminate_as_interrupt"]

#: the signals a run treats as Ctrl-C: a CI job's timeout or a supervisor stops it with SIGTERM
_STOPS = (signal.SIGINT, signal.SIGTERM)


class CleanupFailed(AssertionError):
    """One or more cleanup actions failed; ``errors`` names each, with its error."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("cleanup failed: " + "; ".join(errors))
        self.errors = errors


class Cleaner:
    """Newest-first undo actions, each named for the report (``namespace study-aews-…``)."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def add(self, what: str, action: Callable[[], None]) -> None:
        self._actions.append((what, action))

    def pending(self) -> list[str]:
        """What is still to undo, newest first."""
        return [what for what, _ in reversed(self._actions)]

    def run(self) -> None:
        """Undo everything; raises KeyboardInterrupt if Ctrl-C came meanwhile, else CleanupFailed on errors."""
        errors: list[str] = []
        with sigint_held() as interrupted:
            while self._actions:
                what, action = self._actions.pop()
                try:
                    action()
                except Exception as exc:
                    errors.append(f"{what}: {exc}")
        if interrupted:
            raise KeyboardInterrupt("interrupted during cleanup; every cleanup action ran to its end")
        if errors:
            raise CleanupFailed(errors)


@contextlib.contextmanager
def sigint_held() -> Iterator[list[str]]:
    """Hold back SIGINT (and SIGTERM) for the duration; the yielded list is non-empty if one came."""
    interrupted: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted  # signals reach the main thread only; its own cleanup holds them
        return

    def hold(signum: int, _frame: object) -> None:
        interrupted.append("Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name)
        print("fargate-labs: cleaning up what this step created; it finishes before the run stops",
              file=sys.stderr, flush=True)

    previous = {signum: signal.signal(signum, hold) for signum in _STOPS}
    try:
        yield interrupted
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def terminate_as_interrupt() -> None:
    """From now on SIGTERM stops this process the way Ctrl-C does, cleanup included (where nobody else
    handles SIGTERM already). Python's default ends the process at once and leaves everything running."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _interrupt)
