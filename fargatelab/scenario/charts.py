"""Helm chart repositories for documented ``helm repo add`` lines: the documented one where it answers,
else a real chart repository served from this machine, holding the charts the project packages from its
fixtures (``fixtures/charts/``) with the real ``helm package`` and ``helm repo index``.

A chart repository is an ``index.yaml`` and chart archives over HTTP; the local one is a plain static file
server on loopback, for as long as the step needs it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping

from ..errors import ExitCode, HarnessError

__all__ = ["CHARTS", "helm_home", "reachable", "chart_repository"]

#: the charts the project packages (one folder per chart)
CHARTS = Path(__file__).resolve().parents[2] / "fixtures" / "charts"


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether ``url`` answers at all (a chart repository's ``index.yaml``, say)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def helm_home(root: Path) -> dict[str, str]:
    """Environment that gives helm a configuration, cache and data of its own under ``root``: a step's
    ``helm repo add`` never changes the user's repositories."""
    return {"HELM_CONFIG_HOME": str(root / "config"), "HELM_CACHE_HOME": str(root / "cache"),
            "HELM_DATA_HOME": str(root / "data")}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def chart_repository(documented: str, charts: list[str], helm: str,
                     env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The URL to add for the documented repository ``documented``: itself where it answers, else a local
    repository, for the time of the ``with``, holding ``charts`` (folders of :data:`CHARTS`)."""
    if reachable(documented.rstrip("/") + "/index.yaml"):
        yield documented
        return
    with tempfile.TemporaryDirectory(prefix="fargate-labs-charts-") as served:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=served))
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        for chart in charts:
            _helm(helm, ["package", str(CHARTS / chart), "--destination", served], env)
        _helm(helm, ["repo", "index", served, "--url", url], env)
        thread = threading.Thread(target=server.serve_forever, name="chart-repository", daemon=True)
        thread.start()
        try:
            yield url
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _helm(helm: str, args: list[str], env: Mapping[str, str] | None) -> None:
    done = subprocess.run([helm, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=120)
    if done.returncode != 0:
        raise HarnessError(f"`helm {' '.join(args)}` failed making the local chart repository: "
                           f"{done.stderr.strip()}", ExitCode.START_FAILED)
