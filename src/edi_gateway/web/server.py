"""Serving an ASGI app with uvicorn: in a background thread inside ``edi-gateway run``, or in
the foreground for ``edi-gateway console``.

The socket is bound here, before uvicorn starts, so a port in use is one coded line
(CONFIG_INVALID naming ``daemon.http``) rather than uvicorn's exit; a thread that does not
come up within :data:`START_SECONDS` fails the start loudly, as aiosmtpd's controller does.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

from edi_gateway.errors import ConfigError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

log = logging.getLogger("edi_gateway.daemon_http")
START_SECONDS = 10.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or ConfigError saying what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named: asyncio sets TCP_NODELAY only on sockets that say IPPROTO_TCP, and without
    # it a kept-alive connection waits ~40 ms (Nagle against delayed ACK) for each response
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"daemon.http: cannot listen on {host}:{port} ({exc.strerror}); "
            "choose a free port or stop what uses it"
        ) from exc
    sock.set_inheritable(True)
    return sock


def _server(app: ASGIApp) -> object:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_config=None,  # our logging, configured by the CLI
        access_log=False,
        lifespan="off",
        server_header=False,
        # X-Forwarded-For is not believed, from anyone: a client could name any address and
        # escape the sign-in limit per user and address (behind a proxy: the proxy's address)
        proxy_headers=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """``app`` served from a daemon thread on an already bound socket."""

    def __init__(self, app: ASGIApp, sock: socket.socket) -> None:
        import uvicorn

        self._sock = sock
        server = _server(app)
        assert isinstance(server, uvicorn.Server)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="edi-gateway-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound."""
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in the background; ConfigError when the server does not come up."""
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise ConfigError("daemon.http: the HTTP server did not start (see the log)")
            time.sleep(0.01)

    def close(self) -> None:
        """Stop serving (open requests get a few seconds) and release the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()


def serve_forever(app: ASGIApp, sock: socket.socket) -> None:
    """Serve ``app`` in this (the main) thread until SIGINT or SIGTERM."""
    import uvicorn

    server = _server(app)
    assert isinstance(server, uvicorn.Server)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
