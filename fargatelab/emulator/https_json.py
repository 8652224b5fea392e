"""The HTTPS server of the webhooks the API server calls (admission, TokenReview): JSON in, JSON out.

A handler subclasses :class:`JsonHandler`, sets ``log`` to its module's logger and writes ``do_POST``
with :attr:`~JsonHandler.route`, :meth:`~JsonHandler.read_json` and :meth:`~JsonHandler.reply`
(``do_GET`` is shared: ``/healthz``, else 404); :func:`https_server` serves it over TLS, one thread a
request.
"""

from __future__ import annotations

import json
import logging
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["JsonHandler", "https_server"]


class JsonHandler(BaseHTTPRequestHandler):
    #: where the request lines go (at debug level)
    log = logging.getLogger(__name__)

    def log_message(self, fmt: str, *args: Any) -> None:
        self.log.debug(fmt, *args)

    @property
    def route(self) -> str:
        """The request's path without its query string (the API server appends ``?timeout=…`` to a webhook's URL)."""
        return urlsplit(self.path).path

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Health checks: ``/healthz`` answers ok; any other path is not found."""
        if self.route == "/healthz":
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"error": "not found"})

    def read_json(self) -> Any:
        """The request body, parsed; ValueError if it is not JSON."""
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def https_server(host: str, port: int, cert: str, key: str, handler: type[JsonHandler]) -> ThreadingHTTPServer:
    """``handler`` served over TLS with ``cert`` and ``key`` (PEM files) at ``host:port`` (0: any free port)."""
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    return httpd
