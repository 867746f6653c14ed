"""``/healthz``, ``/metrics`` and the web console of ``edi-gateway run``, on one port, served
from a background thread (uvicorn, :mod:`edi_gateway.web.server`).

``/healthz`` answers JSON: ``status`` ``ok`` (every connector's last poll worked, the store
answers) or ``degraded``, the store's reachability, the outbox backlog and, per connector, its
last success, last error, next poll and backoff. HTTP 200 unless the store is unreachable
(503), so an orchestrator restarts the gateway for a lost database but not for a partner's
server being away. ``/metrics`` is the Prometheus text format (:mod:`.metrics`). Neither asks
for a session. Every other path is the web console (:mod:`edi_gateway.web`), when mounted.
The health and metrics endpoints only read: what they show was recorded by the daemon's loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edi_gateway.web.server import BackgroundServer, bind

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp

Health = Callable[[], tuple[int, dict[str, Any]]]
Exposition = Callable[[], tuple[bytes, str]]
NO_STORE = {"Cache-Control": "no-store"}


class StatusServer:
    """The daemon's HTTP server: health, metrics and (given) the console."""

    def __init__(
        self,
        host: str,
        port: int,
        health: Health,
        metrics: Exposition,
        console: ASGIApp | None = None,
    ) -> None:
        self._server = BackgroundServer(status_app(health, metrics, console), bind(host, port))

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound."""
        return self._server.address

    def start(self) -> None:
        """Serve in the background."""
        import logging

        self._server.start()
        host, port = self.address
        logging.getLogger("edi_gateway.daemon_http").info(
            "health on http://%s:%d/healthz, metrics on /metrics, console on /", host, port
        )

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.close()


def status_app(health: Health, metrics: Exposition | None, console: ASGIApp | None) -> ASGIApp:
    """The ASGI app: ``/healthz`` and ``/metrics`` (no session; no metrics without the
    daemon), then ``console`` or 404."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.responses import Response as Plain
    from starlette.routing import Mount, Route

    def healthz(request: Request) -> Response:
        status, data = health()
        body = json.dumps(data, indent=2).encode("utf-8")
        return Plain(body, status, NO_STORE, media_type="application/json")

    def exposition(request: Request) -> Response:
        assert metrics is not None
        body, content_type = metrics()
        return Plain(body, 200, NO_STORE | {"Content-Type": content_type})

    def not_found(request: Request) -> Response:
        text = "not found: try /healthz or /metrics\n"
        return PlainTextResponse(text, 404, NO_STORE)

    def no_metrics(request: Request) -> Response:
        text = "no metrics here: `edi-gateway run` serves them on daemon.http\n"
        return PlainTextResponse(text, 404, NO_STORE)

    routes: list[Any] = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/metrics", exposition if metrics else no_metrics, methods=["GET", "HEAD"]),
    ]
    routes.append(Mount("/", console) if console is not None else Route("/{rest:path}", not_found))
    return Starlette(routes=routes)
