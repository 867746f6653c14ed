"""HTTP/1.1 on the wire for :mod:`.httpserver`: the request head, the body (by length or
chunked) with deadlines, the answer, and the tally of slow clients cut off.

Every read has a deadline: the head's (``header_seconds`` from the connection), the body's
(``min_bytes_per_second`` on average after a grace of ``header_seconds``, and all of the
request within ``read_seconds``). A client that misses one is cut off (:class:`Cut`); a
request the server will not take is answered (:class:`Refused`) and the connection closed.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import Message
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from edi_gateway.transports.httpserver import Limits

log = logging.getLogger("edi_gateway.transports.httpserver")

T = TypeVar("T")
CHUNK = 64 << 10
DRAIN_LIMIT = 4 << 20
"""A refused body up to this many bytes is read and dropped (within a second or two) so the
client gets to read the answer; a larger one is not read at all: the connection is closed."""
TALLY_SECONDS = 60.0
"""Slow clients cut off and a full house are logged at most once per this many seconds."""
_DIGITS = re.compile(r"[0-9]{1,18}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


@dataclass(frozen=True, slots=True)
class Head:
    """A request's line and headers: what credentials are checked on, before any body."""

    path: str
    headers: Message
    peer: str


@dataclass(frozen=True, slots=True)
class Request:
    """One POST: its path, headers (case-insensitive), body, the peer's address and the
    identity the endpoint's ``admit`` found in its head."""

    path: str
    headers: Message
    body: bytes
    peer: str
    sender: str = ""


@dataclass(slots=True)
class Response:
    """What to answer; ``after`` runs once the answer was sent (an asynchronous receipt)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    after: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Framing:
    """How the body is delimited: ``length`` bytes, or chunked (``length`` None)."""

    length: int | None
    expects_continue: bool = False

    @classmethod
    def of(cls, headers: Message) -> Framing:
        """The framing the headers declare; :class:`Refused` when it is missing or ambiguous."""
        encodings = headers.get_all("Transfer-Encoding") or []
        lengths = headers.get_all("Content-Length") or []
        expects = str(headers.get("Expect", "")).strip().lower() == "100-continue"
        if encodings:
            if lengths:  # a request smuggling shape: refuse rather than pick one
                raise Refused(400, "both Transfer-Encoding and Content-Length")
            if [str(v).strip().lower() for v in encodings] != ["chunked"]:
                found = ", ".join(str(v) for v in encodings)[:80]
                raise Refused(501, f"Transfer-Encoding {found}: only chunked is supported")
            return cls(None, expects)
        if len(lengths) > 1:
            raise Refused(400, "more than one Content-Length")
        if not lengths or not _DIGITS.fullmatch(str(lengths[0]).strip()):
            raise Refused(411, "no Content-Length")
        return cls(int(str(lengths[0]).strip()), expects)

    def check(self, max_bytes: int) -> None:
        """Refuse (413) a declared length over ``max_bytes``: the body is never read."""
        if self.length is not None and self.length > max_bytes:
            raise Refused(413, f"{self.length} bytes, over the limit of {max_bytes}", self)


class Refused(Exception):
    """A request answered with ``status`` and closed; ``framing`` says what to drain."""

    def __init__(
        self,
        status: int,
        why: str,
        framing: Framing | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(why)
        self.status, self.why, self.framing, self.headers = status, why, framing, headers or {}

    def response(self) -> Response:
        """The answer: the status and why, in one line of text."""
        return Response(self.status, self.why.encode("utf-8", "replace") + b"\n", self.headers)


class Cut(Exception):
    """A client too slow (or silent) for a deadline: the connection is dropped unanswered."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


async def within(awaitable: Awaitable[T], deadline: float, why: str) -> T:
    """``awaitable``'s result if it comes before ``deadline`` (loop time), else :class:`Cut`."""
    left = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(awaitable, max(left, 0.0))
    except TimeoutError:
        raise Cut(why) from None


async def read_head(
    reader: asyncio.StreamReader, deadline: float, paths: set[str], peer: str
) -> tuple[Head, Framing]:
    """The request line and headers of a POST to one of ``paths``, with its framing."""
    try:
        raw = await within(
            reader.readuntil(b"\r\n\r\n"), deadline, "no complete request head in header_seconds"
        )
    except asyncio.LimitOverrunError:
        raise Refused(431, "request head too large") from None
    line, _, rest = raw.partition(b"\r\n")
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise Refused(400, "not an HTTP/1.x request")
    method, target, _ = parts
    try:
        headers = http.client.parse_headers(io.BytesIO(rest))
    except http.client.HTTPException as exc:
        raise Refused(431, f"request headers refused: {exc}") from None
    framing: Framing | None = None
    problem: Refused | None = None
    try:
        framing = Framing.of(headers)
    except Refused as refused:
        problem = refused
    path = target.split("?", 1)[0]
    if method != "POST":  # the framing, when readable, says what may be drained
        raise Refused(405, "POST only", framing, {"Allow": "POST"})
    if path not in paths:
        raise Refused(404, f"unknown path {target[:200]!r}", framing)
    if problem is not None or framing is None:
        raise problem or Refused(411, "no Content-Length")
    return Head(path, headers, peer), framing


async def read_body(
    reader: asyncio.StreamReader, framing: Framing, limits: Limits, spent: float
) -> bytes:
    """The whole body, read at the client's pace within the limits (``spent``: seconds the
    head took, counted in ``read_seconds``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = start + limits.read_seconds - spent
    rate = limits.min_bytes_per_second

    def deadline(got: int) -> tuple[float, str]:
        if rate and start + limits.header_seconds + got / rate < total:
            return start + limits.header_seconds + got / rate, "body under min_bytes_per_second"
        return total, "request not complete within read_seconds"

    body = bytearray()
    if framing.length is not None:
        await _fill(reader, body, framing.length, deadline)
        return bytes(body)
    while True:
        size = await _chunk_size(reader, *deadline(len(body)))
        if size == 0:
            break
        if len(body) + size > limits.max_bytes:
            raise Refused(413, f"chunked body over the limit of {limits.max_bytes} bytes")
        await _fill(reader, body, size, deadline)
        if await within(reader.readexactly(2), *deadline(len(body))) != b"\r\n":
            raise Refused(400, "broken chunked body")
    for _ in range(100):  # trailer fields, ignored, up to the empty line
        if await within(reader.readuntil(b"\r\n"), *deadline(len(body))) == b"\r\n":
            return bytes(body)
    raise Refused(400, "too many trailer fields")


async def _fill(
    reader: asyncio.StreamReader,
    body: bytearray,
    count: int,
    deadline: Callable[[int], tuple[float, str]],
) -> None:
    left = count
    while left:
        chunk = await within(reader.read(min(left, CHUNK)), *deadline(len(body)))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", left)
        body += chunk
        left -= len(chunk)


async def _chunk_size(reader: asyncio.StreamReader, deadline: float, why: str) -> int:
    try:
        line = await within(reader.readuntil(b"\r\n"), deadline, why)
    except asyncio.LimitOverrunError:
        raise Refused(400, "broken chunk size line") from None
    size = line.split(b";", 1)[0].strip()
    if not _HEX.fullmatch(size):
        raise Refused(400, "broken chunk size")
    return int(size, 16)


async def drain(reader: asyncio.StreamReader, framing: Framing | None, limits: Limits) -> bool:
    """Read and drop a modest refused body (nothing is kept), so the client reads the answer
    instead of a reset connection; False when a body is left unread (a large or chunked one:
    the caller drops the connection rather than closing it politely)."""
    if framing is None or framing.expects_continue or framing.length == 0:
        return True  # no body, or the client waits for a 100 Continue it never gets
    if framing.length is None or framing.length > DRAIN_LIMIT:
        return False
    deadline = asyncio.get_running_loop().time() + min(2.0, limits.header_seconds)
    left = framing.length
    try:
        while left > 0:
            chunk = await within(reader.read(min(left, CHUNK)), deadline, "drain")
            if not chunk:
                return True
            left -= len(chunk)
    except (Cut, ConnectionError):
        return False
    return True


async def write_response(writer: asyncio.StreamWriter, response: Response, seconds: float) -> None:
    """Send ``response`` and say the connection closes; a client that does not read it
    within ``seconds`` is cut off."""
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    fields = {"Content-Type": "text/plain; charset=utf-8", **response.headers}
    lines = [f"HTTP/1.1 {response.status} {reason}", "Server: edi-gateway"]
    lines.append(f"Date: {formatdate(usegmt=True)}")
    lines += [f"{key}: {value}" for key, value in fields.items()]
    lines += [f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
    writer.write("\r\n".join(lines).encode("latin-1", "replace") + response.body)
    deadline = asyncio.get_running_loop().time() + seconds
    await within(writer.drain(), deadline, "the answer was not read within read_seconds")


class Tally:
    """Slow clients cut off and a full house: one warning per ``TALLY_SECONDS`` at most."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cuts = self.fulls = 0
        """Since the last warning."""
        self.cut_total = 0
        """Since the start (read by tests)."""
        self.logged = -TALLY_SECONDS

    def cut(self, peer: str, why: str) -> None:
        """A connection cut off for missing a deadline."""
        self.cuts += 1
        self.cut_total += 1
        self._log(f"latest from {peer}: {why}")

    def full(self, cap: int) -> None:
        """All ``cap`` connections are open: new ones wait in the backlog."""
        self.fulls += 1
        self._log(f"all {cap} connections were in use; new ones waited in the backlog")

    def _log(self, latest: str) -> None:
        now = time.monotonic()
        if now - self.logged < TALLY_SECONDS:
            return
        log.warning(
            "%s: cut off %d slow connection(s), full %d time(s) in the last %.0f s (%s)",
            self.name, self.cuts, self.fulls, min(now - self.logged, TALLY_SECONDS), latest,
        )  # fmt: skip
        self.cuts = self.fulls = 0
        self.logged = now
