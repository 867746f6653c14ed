"""A bounded HTTP(S) server for push transports (AS2, plain HTTP); docs/adr/0020.

The protocol decides what a request means (an :class:`Endpoint`); this module listens, reads,
enforces the limits and answers. One thread runs an asyncio loop that accepts and reads every
connection, so a slow client costs a socket and a small buffer, never a thread:

- at most ``max_connections`` sockets are open; at the cap nothing more is accepted and new
  connections wait in the kernel's listen queue (``backlog``), so the process stays under its
  open-file limit and the daemon's other connectors can still open files;
- the TLS handshake and the request head must arrive within ``header_seconds``; the endpoint
  checks the credentials on the head (:meth:`Endpoint.admit`) before a byte of the body is
  read, then a ``Content-Length`` over the limit is refused unread (413) and a chunked body is
  cut off once it passes the limit;
- a body is read only while one of ``workers`` slots is held (so at most ``workers`` bodies
  are in memory), at ``min_bytes_per_second`` on average after a grace of ``header_seconds``,
  the whole request within ``read_seconds``; a slower client is cut off;
- :meth:`Endpoint.handle` runs in a pool of ``workers`` threads; one request per connection.

A refused request leaves one log line (``refused ...``): it is the refusal record. Slow clients
cut off and a full house are summed up in one warning a minute (:mod:`.httpwire`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from edi_gateway.transports.httpwire import (
    Cut,
    Head,
    Refused,
    Request,
    Response,
    Tally,
    drain,
    read_body,
    read_head,
    write_response,
)

if TYPE_CHECKING:
    from edi_gateway.transports.http_spec import _Listen

__all__ = ["Endpoint", "Head", "HttpServer", "Limits", "Request", "Response", "serve"]

log = logging.getLogger(__name__)

HEAD_LIMIT = 64 << 10
"""Bytes of request line and headers at most (the stream's buffer limit)."""
FD_RESERVE = 64
"""File descriptors kept for the rest of the daemon (store, folders, logs, outbound links)."""
CLOSE_SECONDS = 5.0
"""Seconds a TLS connection may take to close politely before it is dropped."""
STOP_GRACE = 30.0
"""Seconds ``close`` waits for requests being handled to be answered."""


class Endpoint(Protocol):
    """What a protocol (AS2, plain HTTP) does with requests."""

    def admit(self, head: Head) -> str | Response:
        """Who sends (checked credentials, from the head alone), or the refusal to answer."""
        ...

    def handle(self, request: Request) -> Response:
        """Answer one whole request of an admitted sender (runs in a worker thread)."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one server takes on (the connector's settings, see ``http_spec._Listen``)."""

    max_bytes: int
    workers: int = 4
    backlog: int = 1024
    max_connections: int = 256
    header_seconds: float = 10.0
    read_seconds: float = 300.0
    min_bytes_per_second: int = 10240

    @classmethod
    def of(cls, conn: _Listen, max_bytes: int | None) -> Limits:
        """The limits of an inbound connector; ``max_bytes`` (intake's) unless it sets
        ``max_size_mb``."""
        limit = int(conn.max_size_mb * 1024 * 1024) if conn.max_size_mb else max_bytes or 64 << 20
        return cls(
            limit, conn.workers, conn.backlog, conn.max_connections,
            conn.header_seconds, conn.read_seconds, conn.min_bytes_per_second,
        )  # fmt: skip


def connection_cap(wanted: int, open_files: int) -> int:
    """The connections a server may hold: ``wanted``, but never so many that the process
    reaches its open-file limit (``FD_RESERVE`` stay for everything else)."""
    return max(1, min(wanted, open_files - FD_RESERVE))


def open_file_limit() -> int:
    """The process's soft RLIMIT_NOFILE."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def somaxconn() -> int:
    """The kernel's cap on a listen queue (``net.core.somaxconn``; 4096 if unreadable)."""
    try:
        with open("/proc/sys/net/core/somaxconn", encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return 4096


def serve(
    name: str, conn: _Listen, paths: set[str], endpoint: Endpoint, max_bytes: int | None
) -> HttpServer:
    """Start the server of an inbound AS2 or HTTP connector (TLS when it has a certificate)."""
    tls = None
    if conn.tls_certificate is not None and conn.tls_private_key is not None:
        tls = tls_context(str(conn.tls_certificate), conn.tls_private_key.value())
    limits = Limits.of(conn, max_bytes)
    return HttpServer(
        name, conn.host, conn.port, paths=paths, endpoint=endpoint, limits=limits, tls=tls
    )


def tls_context(certificate: str, private_key_pem: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2+) from a certificate file and the key's PEM text."""
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


class HttpServer:
    """A running server; :meth:`close` stops it and waits for its thread."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        paths: set[str],
        endpoint: Endpoint,
        limits: Limits,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name, self.paths, self.endpoint, self.limits, self.tls = (
            name, paths, endpoint, limits, tls,
        )  # fmt: skip
        self.cap = connection_cap(limits.max_connections, open_file_limit())
        if self.cap < limits.max_connections:
            log.warning(
                "%s: max_connections %d would reach the open-file limit (%d); holding %d",
                name, limits.max_connections, open_file_limit(), self.cap,
            )  # fmt: skip
        self.backlog = min(limits.backlog, somaxconn())
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=self.backlog)
        self._listener.setblocking(False)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        """The address listened on (the port picked when 0 was configured)."""
        self.scheme = "https" if tls is not None else "http"
        self.open = 0
        """Connections open now (read by tests and health)."""
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix=f"http-{name}")
        self._loop = asyncio.new_event_loop()
        self._tally = Tally(name)
        self._tasks: dict[asyncio.Task[None], bool] = {}
        """Connection tasks -> whether a worker is handling its request (busy)."""
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=f"http-{name}", daemon=True)
        self._thread.start()
        self._started.wait(10)
        log.info(
            "%s: listening on %s (%d workers, %d connections at most, backlog %d)",
            name, self.url(""), limits.workers, self.cap, self.backlog,
        )  # fmt: skip

    @property
    def port(self) -> int:
        """The port listened on (the one picked when 0 was configured)."""
        return int(self.address[1])

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        host = f"[{self.address[0]}]" if ":" in self.address[0] else self.address[0]
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        """Stop accepting, cut off requests still arriving, answer those being handled (up to
        ``STOP_GRACE`` seconds), release the port and the threads."""
        stopping = self._stopping
        if stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout=STOP_GRACE + 10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._listener.close()

    # -- the loop's thread -------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._listener.close()
            self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._slots = asyncio.Semaphore(self.limits.workers)
        accepting = asyncio.create_task(self._accept())
        self._started.set()
        await self._stopping.wait()
        accepting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await accepting
        self._listener.close()
        for task, busy in list(self._tasks.items()):
            if not busy:
                task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STOP_GRACE)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.open >= self.cap:
                self._tally.full(self.cap)
                self._room.clear()
                await self._room.wait()
            try:
                sock, address = await loop.sock_accept(self._listener)
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: wait, never spin
                log.warning("%s: cannot accept a connection now: %s", self.name, exc)
                await asyncio.sleep(0.5)
                continue
            self.open += 1
            task = loop.create_task(self._connection(sock, str(address[0])))
            self._tasks[task] = False
            task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self.open -= 1
        self._room.set()

    async def _connection(self, sock: socket.socket, peer: str) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        reader = asyncio.StreamReader(limit=HEAD_LIMIT)
        handshake = self.limits.header_seconds + 1  # the deadline below comes first
        try:
            transport, protocol = await asyncio.wait_for(
                loop.connect_accepted_socket(
                    lambda: asyncio.StreamReaderProtocol(reader), sock, ssl=self.tls,
                    ssl_handshake_timeout=handshake if self.tls else None,
                    ssl_shutdown_timeout=CLOSE_SECONDS if self.tls else None,
                ),
                self.limits.header_seconds,
            )  # fmt: skip
        except TimeoutError:
            sock.close()
            self._tally.cut(peer, "no TLS handshake within header_seconds")
            return
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            log.warning("%s: refused %s: TLS handshake failed: %s", self.name, peer, exc)
            return
        except asyncio.CancelledError:
            sock.close()
            raise
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            await self._exchange(reader, writer, peer, started)
        except Cut as cut:
            self._tally.cut(peer, cut.why)
            transport.abort()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            transport.abort()
        finally:  # counted open until the socket is really closed (TLS says goodbye first)
            if not transport.is_closing():
                transport.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), CLOSE_SECONDS)
            except (TimeoutError, OSError, ssl.SSLError):
                transport.abort()

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str, started: float
    ) -> None:
        limits, loop = self.limits, asyncio.get_running_loop()
        try:
            head, framing = await read_head(
                reader, started + limits.header_seconds, self.paths, peer
            )
            who = self.endpoint.admit(head)  # it logs its own refusals
            if isinstance(who, Response):  # its ``after`` is never run: no URL an
                # unauthenticated client names (an async receipt's) is ever contacted
                await write_response(writer, who, limits.read_seconds)
                if not await drain(reader, framing, limits):
                    writer.transport.abort()
                return
            framing.check(limits.max_bytes)
        except Refused as refused:
            await self._refuse(reader, writer, refused, peer)
            return
        spent = loop.time() - started  # the head's share of read_seconds (not the wait below)
        async with self._slots:
            if framing.expects_continue:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                body = await read_body(reader, framing, limits, spent)
            except Refused as refused:  # a chunked body past the limit, broken chunks
                await self._refuse(reader, writer, refused, peer)
                return
            task = asyncio.current_task()
            assert task is not None
            self._tasks[task] = True  # being handled: close() waits for its answer
            request = Request(head.path, head.headers, body, peer, who)
            del body
            response = await loop.run_in_executor(self._pool, self._handle, request)
            del request
        await write_response(writer, response, limits.read_seconds)
        if response.after is not None:
            await loop.run_in_executor(self._pool, response.after)

    async def _refuse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        refused: Refused,
        peer: str,
    ) -> None:
        status, why = refused.status, refused.why
        log.warning("%s: refused %s (HTTP %s): %s", self.name, peer, status, why)
        await write_response(writer, refused.response(), self.limits.read_seconds)
        if not await drain(reader, refused.framing, self.limits):
            writer.transport.abort()

    def _handle(self, request: Request) -> Response:
        try:
            return self.endpoint.handle(request)
        except Exception:  # a bug must not kill the server; the sender may retry
            log.exception("%s: failed to handle a request from %s", self.name, request.peer)
            return Response(500, b"internal error\n")
