"""A small threaded HTTP(S) server for push transports (AS2, plain HTTP).

The protocol decides what a request means (a handler: :class:`Request` -> :class:`Response`);
this module only listens, enforces the size limit before reading a byte of the body, speaks
TLS when given a context, and logs what it refuses. A refused request leaves nothing but that
log line (``refused ...``): it is the refusal record.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 60.0
DRAIN_LIMIT = 4 << 20
"""Oversize bodies up to this many bytes are read and dropped before the 413 is sent."""


@dataclass(frozen=True, slots=True)
class Request:
    """One POST: its path, headers (case-insensitive), body and the peer's address."""

    path: str
    headers: Message
    body: bytes
    peer: str


@dataclass(slots=True)
class Response:
    """What to answer; ``after`` runs once the answer was sent (an asynchronous receipt)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    after: Callable[[], None] | None = None


Handler = Callable[[Request], Response]


class HttpServer:
    """A running server; :meth:`close` stops it and waits for its thread."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        paths: set[str],
        handler: Handler,
        max_bytes: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        request_handler = _handler_class(name, paths, handler, max_bytes)
        self._server = ThreadingHTTPServer((host, port), request_handler, bind_and_activate=False)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        try:
            self._server.server_bind()
            self._server.server_activate()
        except OSError:
            self._server.server_close()
            raise
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name=f"http-{name}", daemon=True
        )
        self._thread.start()
        log.info("%s: listening on %s", name, self.url(""))

    @property
    def port(self) -> int:
        """The port listened on (the one picked when 0 was configured)."""
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        host = str(self._server.server_address[0])
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        """Stop accepting, finish the thread, release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def tls_context(certificate: str, private_key_pem: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2+) from a certificate file and the key's PEM text."""
    import os
    import tempfile

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads keys from files only: a private temporary file, removed at once
    fd, path = tempfile.mkstemp(prefix="edi-tls-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(private_key_pem + "\n")
        context.load_cert_chain(certificate, path)
    finally:
        os.unlink(path)
    return context


def _handler_class(
    name: str, paths: set[str], handler: Handler, max_bytes: int
) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = "edi-gateway"
        sys_version = ""
        timeout = SOCKET_TIMEOUT

        handshake_failed = False

        def setup(self) -> None:
            super().setup()
            if isinstance(self.connection, ssl.SSLSocket):
                try:
                    self.connection.do_handshake()
                except (ssl.SSLError, OSError) as exc:
                    log.warning("%s: refused %s: TLS handshake failed: %s", name, self.peer, exc)
                    self.handshake_failed = True

        @property
        def peer(self) -> str:
            return str(self.client_address[0])

        def handle(self) -> None:
            if self.handshake_failed:
                return
            try:
                super().handle()
            except (ConnectionError, TimeoutError, ssl.SSLError):
                self.close_connection = True

        def finish(self) -> None:
            with contextlib.suppress(ConnectionError, TimeoutError, ssl.SSLError):
                super().finish()

        def do_GET(self) -> None:
            self._answer(Response(405, b"POST only\n", {"Allow": "POST"}))

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] not in paths:
                self._refuse(404, f"unknown path {self.path[:200]!r}")
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self._refuse(411, "no Content-Length")
                return
            if int(length) > max_bytes:
                self._drain(int(length))
                self._refuse(413, f"{length} bytes, over the limit of {max_bytes}")
                return
            body = self.rfile.read(int(length))
            request = Request(self.path.split("?", 1)[0], self.headers, body, self.peer)
            try:
                response = handler(request)
            except Exception:  # a bug must not kill the server; the sender may retry
                log.exception("%s: failed to handle a request from %s", name, self.peer)
                response = Response(500, b"internal error\n")
            self._answer(response)
            if response.after is not None:
                response.after()

        def handle_expect_100(self) -> bool:
            """``Expect: 100-continue``: refuse an oversize body before the client sends it."""
            length = self.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                self._refuse(413, f"{length} bytes, over the limit of {max_bytes}")
                return False
            return super().handle_expect_100()

        def _drain(self, length: int) -> None:
            """Read and drop a modest oversize body, so the client gets to read the 413
            instead of a reset connection; a larger one is cut off unread."""
            left = length if length <= DRAIN_LIMIT else 0
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)

        def _refuse(self, status: int, why: str) -> None:
            log.warning("%s: refused %s (HTTP %s): %s", name, self.peer, status, why)
            self.close_connection = True
            self._answer(Response(status, why.encode() + b"\n"))

        def _answer(self, response: Response) -> None:
            self.send_response(response.status)
            headers = {"Content-Type": "text/plain; charset=utf-8", **response.headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s: %s", name, format % args)

    return _Handler
