"""``/healthz`` and ``/metrics`` of ``edi-gateway run``, served from a background thread.

``/healthz`` answers JSON: ``status`` ``ok`` (every connector's last poll worked, the store
answers) or ``degraded``, the store's reachability, the outbox backlog and, per connector, its
last success, last error, next poll and backoff. HTTP 200 unless the store is unreachable
(503), so an orchestrator restarts the gateway for a lost database but not for a partner's
server being away. ``/metrics`` is the Prometheus text format (:mod:`.metrics`).
The thread only reads: everything it shows was recorded by the daemon's loop.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edi_gateway.errors import ConfigError

log = logging.getLogger("edi_gateway.daemon_http")  # not __name__: the name log filters know

Health = Callable[[], tuple[int, dict[str, Any]]]
Exposition = Callable[[], tuple[bytes, str]]


class StatusServer:
    """A small threaded HTTP server for the health and metrics endpoints."""

    def __init__(self, host: str, port: int, health: Health, metrics: Exposition) -> None:
        handler = _handler(health, metrics)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"daemon.http: cannot listen on {host}:{port} ({exc.strerror}); "
                "choose a free port or stop what uses it"
            ) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="edi-gateway-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()
        host, port = self.address
        log.info("health on http://%s:%d/healthz, metrics on /metrics", host, port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(health: Health, metrics: Exposition) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # seconds: a client that sends nothing cannot hold a thread
        server_version = "edi-gateway"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/healthz", "/health"):
                status, data = health()
                body = json.dumps(data, indent=2).encode("utf-8")
                self._send(status, body, "application/json")
            elif path == "/metrics":
                body, content_type = metrics()
                self._send(200, body, content_type)
            else:
                self._send(404, b"not found: try /healthz or /metrics\n", "text/plain")

        def do_HEAD(self) -> None:
            self.do_GET()

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http %s", format % args)

    return Handler
