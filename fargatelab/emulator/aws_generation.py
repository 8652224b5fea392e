"""Whether an AWS service's state changed since a poller last read it, asked of the local AWS side.

The emulation's pollers (the Fargate profile cache, the load balancer controller, the ALBs' proxies) read a
whole service's state each pass: every profile, or every load balancer with its listeners, rules, target
groups and target health. The local AWS side counts the changes of each service (``GET
/_fargatelab/generation``); a poller asks that first and skips a pass whose inputs are the same. Against an
endpoint that does not answer it, every pass reads everything as before.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

__all__ = ["Generation"]

log = logging.getLogger(__name__)

#: how long an endpoint without the counter is left alone before it is asked again
RETRY_SECONDS = 60.0


class Generation:
    """``changed()`` is True when the service's state may have changed since the last ``mark()``."""

    def __init__(self, endpoint: str | None, service: str) -> None:
        self._url = f"{endpoint.rstrip('/')}/_fargatelab/generation" if endpoint else None
        self._service = service
        self._unsupported_until = 0.0
        self._marked: str | None = None
        self._last: str | None = None

    def current(self) -> str | None:
        """The service's generation now; None when the endpoint cannot tell."""
        if self._url is None or time.monotonic() < self._unsupported_until:
            return None
        try:
            with urllib.request.urlopen(self._url, timeout=5) as response:  # noqa: S310 - the AWS endpoint given
                body = json.loads(response.read())
        except urllib.error.HTTPError as err:
            if err.code == 404:  # not the local AWS side: read everything, every pass
                log.info("%s does not count changes: polling %s in full", self._url, self._service)
                self._unsupported_until = time.monotonic() + RETRY_SECONDS
            return None
        except (OSError, ValueError):
            return None
        value = body.get(self._service) if isinstance(body, dict) else None
        # The server's start is part of it: a restarted server counts from zero again.
        return f"{body.get('boot', '')}:{value}" if isinstance(value, int) else None

    def changed(self) -> bool:
        """Whether a pass must read the state; remembers the generation it saw for :meth:`mark`."""
        self._last = self.current()
        return self._last is None or self._last != self._marked

    def mark(self) -> None:
        """The pass that followed the last :meth:`changed` read the state successfully."""
        self._marked = self._last
