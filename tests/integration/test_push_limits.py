"""The push endpoints' server (transports/httpserver.py) on real loopback sockets: each limit of
an inbound AS2 / HTTP connector holds against a client that breaks it, and honest clients are
answered. The daemon-level proofs (300 slow clients, 60 MB unauthenticated bodies, 100
concurrent partners, another partner's document) are in connectors/test_push_endpoints.py."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edi_gateway.transports.httpserver import (
    FD_RESERVE,
    Head,
    HttpServer,
    Limits,
    Request,
    Response,
    connection_cap,
    somaxconn,
    tls_context,
)
from tests.integration.connectors.as2_peer import make_identity

pytestmark = pytest.mark.integration


class Recorder:
    """An endpoint: ``Bearer ok`` is partner ``p``; it records what reached ``handle``."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.bodies: list[bytes] = []
        self.busy = self.most = 0
        self.lock = threading.Lock()

    def admit(self, head: Head) -> str | Response:
        if head.headers.get("Authorization") == "Bearer ok":
            return "p"
        return Response(401, b"credentials required\n")

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.busy += 1
            self.most = max(self.most, self.busy)
        time.sleep(self.hold)
        with self.lock:
            self.busy -= 1
            self.bodies.append(request.body)
        return Response(200, f"{request.sender} {len(request.body)}\n".encode())


@contextmanager
def server(
    endpoint: Recorder, tls: ssl.SSLContext | None = None, **limits: float
) -> Iterator[HttpServer]:
    settings = {"max_bytes": 1 << 20, "header_seconds": 1.0, "read_seconds": 3.0, **limits}
    running = HttpServer(
        "http:test", "127.0.0.1", 0, paths={"/in"}, endpoint=endpoint,
        limits=Limits(**settings), tls=tls,  # type: ignore[arg-type]
    )  # fmt: skip
    try:
        yield running
    finally:
        running.close()


def connect(running: HttpServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", running.port), timeout=10)


def head(length: int | None, token: str = "ok", extra: str = "") -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"POST /in HTTP/1.1\r\nHost: x\r\n{auth}{framing}\r\n{extra}\r\n".encode()


def answer(sock: socket.socket, seconds: float = 10) -> bytes:
    """Everything the server sends until it closes (b"" when it cut us off unanswered)."""
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def post(port: int, body: bytes, token: str = "ok") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head(len(body), token) + body)
        return answer(sock)


def test_credentials_are_checked_on_the_head_before_any_body_is_sent() -> None:
    endpoint = Recorder()
    with server(endpoint) as running, connect(running) as s:
        s.sendall(head(60 << 20, token=""))  # 60 MB announced, not one byte of it sent
        raw = answer(s)
    assert status(raw) == 401 and endpoint.bodies == []


def test_a_declared_length_over_the_limit_is_refused_unread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = Recorder()
    with server(endpoint, max_bytes=1000) as running:
        with connect(running) as s:
            s.sendall(head(1001))  # no body follows: the answer cannot wait for it
            raw = answer(s)
        assert status(raw) == 413 and b"over the limit of 1000" in raw
        assert post(running.port, b"x" * 1000).endswith(b"p 1000\n")
    assert endpoint.bodies == [b"x" * 1000]
    assert any("refused" in r.getMessage() for r in caplog.records)


def test_chunked_bodies_are_read_and_cut_off_past_the_limit() -> None:
    endpoint = Recorder()
    with server(endpoint, max_bytes=1000) as running:
        with connect(running) as s:
            s.sendall(head(None) + b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n")
            assert status(answer(s)) == 200
        with connect(running) as s:
            s.sendall(head(None) + b"258\r\n" + b"y" * 600 + b"\r\n")
            s.sendall(b"258\r\n" + b"y" * 600 + b"\r\n")  # 1,200 bytes: past the limit
            assert status(answer(s)) == 413
        for broken in (b"zz\r\n", b"3\r\nabcXY"):
            with connect(running) as s:
                s.sendall(head(None) + broken)
                assert status(answer(s)) == 400
    assert endpoint.bodies == [b"abcde"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("Content-Length: 5\r\n", 400),  # both framings: a smuggling shape
        ("Transfer-Encoding: gzip\r\n", 501),
    ],
)
def test_ambiguous_framing_is_refused(extra: str, expected: int) -> None:
    with server(Recorder()) as running, connect(running) as s:
        s.sendall(head(None, extra=extra))
        assert status(answer(s)) == expected


def test_expect_100_continue_is_answered_only_for_an_admitted_sender() -> None:
    endpoint = Recorder()
    with server(endpoint) as running:
        with connect(running) as s:
            s.sendall(head(4, extra="Expect: 100-continue\r\n"))
            s.settimeout(5)
            assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
            s.sendall(b"body")
            assert answer(s).endswith(b"p 4\n")
        with connect(running) as s:
            s.sendall(head(4, token="bad", extra="Expect: 100-continue\r\n"))
            assert status(answer(s)) == 401


def test_a_head_that_dribbles_is_cut_off_after_header_seconds() -> None:
    with server(Recorder(), header_seconds=1.0) as running, connect(running) as s:
        started = time.monotonic()
        s.settimeout(0.2)
        cut = False
        for byte in head(10):
            try:
                s.sendall(bytes([byte]))
                if s.recv(1) == b"":
                    cut = True
                    break
            except TimeoutError:
                continue
            except OSError:
                cut = True
                break
        waited = time.monotonic() - started
    assert cut and 0.9 < waited < 3.0


def test_a_tls_client_that_never_shakes_hands_is_cut_off(tmp_path: Path) -> None:
    cert, key = make_identity(tmp_path, "localhost")
    tls = tls_context(str(cert), key.read_text())
    with server(Recorder(), tls=tls, header_seconds=1.0) as running:
        with connect(running) as s:
            started = time.monotonic()
            assert answer(s, 10) == b""
            assert 0.9 < time.monotonic() - started < 3.0
        context = ssl.create_default_context(cafile=str(cert))
        with connect(running) as raw, context.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(head(2) + b"ok")
            assert answer(s).endswith(b"p 2\n")


@pytest.mark.parametrize(
    ("rate", "pace", "why"),
    [
        (2000, 0.1, "min_bytes_per_second"),  # 10 bytes a tenth of a second: 100 B/s
        (0, 0.1, "read_seconds"),  # no rate floor: the request's deadline still holds
    ],
)
def test_a_body_that_dribbles_is_cut_off(
    rate: int, pace: float, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Recorder()
    limits = {"min_bytes_per_second": rate, "header_seconds": 0.5, "read_seconds": 2.0}
    with server(endpoint, **limits) as running, connect(running) as s:
        s.sendall(head(100_000))
        started = time.monotonic()
        try:
            while time.monotonic() - started < 10:
                s.sendall(b"x" * 10)
                time.sleep(pace)
        except OSError:  # reset by the server
            pass
        waited = time.monotonic() - started
        assert answer(s, 2) == b""
    assert waited < 4.0 and endpoint.bodies == []
    assert any(why in r.getMessage() and "cut off 1 slow" in r.getMessage() for r in caplog.records)


def test_a_body_at_the_minimum_rate_is_taken() -> None:
    endpoint = Recorder()
    limits = {"min_bytes_per_second": 2000, "header_seconds": 0.5, "read_seconds": 5.0}
    with server(endpoint, **limits) as running, connect(running) as s:
        s.sendall(head(4000))
        for _ in range(10):  # 400 bytes per 0.1 s: twice the floor
            s.sendall(b"x" * 400)
            time.sleep(0.1)
        assert answer(s).endswith(b"p 4000\n")


def test_workers_bound_the_requests_handled_at_once() -> None:
    endpoint = Recorder(hold=0.3)
    with server(endpoint, workers=2, read_seconds=20) as running:
        answers: list[bytes] = []
        threads = [
            threading.Thread(target=lambda: answers.append(post(running.port, b"z" * 10)))
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(answers) == 8 and all(a.endswith(b"p 10\n") for a in answers)
    assert endpoint.most == 2


def test_max_connections_holds_the_rest_in_the_backlog_until_a_place_frees() -> None:
    endpoint = Recorder()
    with server(endpoint, max_connections=5, header_seconds=1.0) as running:
        idle = [connect(running) for _ in range(12)]
        try:
            time.sleep(0.4)
            assert running.open == 5  # the other 7 wait in the kernel's queue, unaccepted
            started = time.monotonic()
            assert post(running.port, b"honest").endswith(b"p 6\n")  # after the idle ones
            assert 0.9 < time.monotonic() - started < 8
        finally:
            for sock in idle:
                sock.close()
    assert endpoint.bodies == [b"honest"]


def test_the_backlog_is_the_configured_one_capped_by_somaxconn() -> None:
    with server(Recorder(), backlog=700) as running:
        listed = subprocess.run(
            ["ss", "-Hltn", f"sport = :{running.port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert int(listed[2]) == min(700, somaxconn()) == running.backlog  # ss: Send-Q


def test_the_connection_cap_stays_below_the_open_file_limit() -> None:
    assert connection_cap(256, 1024) == 256
    assert connection_cap(256, 256) == 256 - FD_RESERVE
    assert connection_cap(10, 20) == 1
