"""Wake a reconcile loop when what it reads changes, instead of listing everything many times a second.

The emulation's loops are level-triggered: each pass lists the whole state and acts on it. Polling that
state every 0.2 s cost the API server and the emulator more CPU than anything else they did during a lab
run. :class:`Changes` keeps a watch open on each list a loop reads and sets a flag on every event, so a
loop waits for the next change (or for its own deadline) and then does one full pass as before. The
watch's events are not interpreted: a pass always reads the state afresh, so a missed or repeated event
cannot make it act on a stale view.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable

__all__ = ["Changes"]

log = logging.getLogger(__name__)

#: how long one watch request lasts before it is made again (the API server ends it then)
WATCH_SECONDS = 60


class Changes:
    """A flag set whenever one of the watched lists changes; :meth:`wait` returns at the next change."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._changed = threading.Event()
        self._changed.set()  # the first pass runs at once

    def watch(self, list_call: Callable[..., Any], **selectors: Any) -> Changes:
        """Watch ``list_call`` (a client's list method, e.g. ``core.list_pod_for_all_namespaces``) in a thread
        of its own; ``selectors`` are passed to it (``label_selector=...``)."""
        name = f"changes-{getattr(list_call, '__name__', 'list')}"
        threading.Thread(target=self._follow, args=(list_call, selectors), name=name, daemon=True).start()
        return self

    def wait(self, timeout: float) -> bool:
        """Wait until something changed since the last wait (True) or ``timeout`` passed (False)."""
        changed = self._changed.wait(timeout)
        self._changed.clear()
        return changed

    def _follow(self, list_call: Callable[..., Any], selectors: dict[str, Any]) -> None:
        while not self._stop.is_set():
            try:
                # From the list's own resource version on: whatever happened before the watch began is seen by
                # the pass the flag below wakes.
                listing = list_call(limit=1, _preload_content=False, **selectors)
                version = json.loads(listing.data)["metadata"]["resourceVersion"]
                self._changed.set()
                response = list_call(watch=True, resource_version=version, timeout_seconds=WATCH_SECONDS,
                                     allow_watch_bookmarks=False, _preload_content=False,
                                     _request_timeout=WATCH_SECONDS + 15, **selectors)
                try:
                    for _ in response.stream(amt=None):
                        self._changed.set()
                        if self._stop.is_set():
                            break
                finally:
                    response.release_conn()
            except Exception as exc:  # the API server may be restarting: the loop's own timeout still runs it
                log.debug("watch of %s ended: %s", getattr(list_call, "__name__", "list"), exc)
                self._changed.set()
                self._stop.wait(1.0)
