"""Outbound HTTP POST against a partner server that answers nonsense: every failure is a
TransportError (the outbox catches only those; anything else rolls back its whole flush, so
rows already delivered in it would be sent a second time)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from edi_gateway.errors import ErrorCode
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.httppost import post

pytestmark = pytest.mark.integration


def _serve_once(answer: bytes) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            received = b""
            while b"\r\n\r\n" not in received:
                received += conn.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:  # read it all: unread bytes would make the close a reset
                body += conn.recv(65536)
            conn.sendall(answer)
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)  # until the client closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        thread.join(timeout=10)
        listener.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HELLO THERE\r\n\r\n",  # not HTTP: BadStatusLine
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",  # cut off: IncompleteRead
        b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a broken error body
    ],
    ids=["bad-status-line", "incomplete-body", "broken-error-body"],
)
def test_a_partner_answering_nonsense_is_a_transport_error(answer: bytes) -> None:
    for port in _serve_once(answer):
        with pytest.raises(TransportError) as caught:
            post("p", f"http://127.0.0.1:{port}/in", b"<x/>", {}, timeout=10)
        assert caught.value.recoverable
        assert caught.value.code == ErrorCode.CONNECTION_FAILED
