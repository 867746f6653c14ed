"""A second independent AS2 partner: pyas2lib 1.4.4 (the library behind the pyAS2 server).

Unlike ``as2_peer.py`` (OpenSSL's command line plus our own MIME and MDN framing), everything on
this partner's side is pyas2lib's: it builds the messages (MIME, compression, signature,
encryption, AS2 headers), parses the gateway's MDNs and verifies their signatures, and on its own
endpoint decrypts, verifies and decompresses the gateway's deliveries and builds the signed MDNs
the gateway must accept. Only HTTP is done here (pyas2lib does no I/O).

pyas2lib needs oscrypto, which does not import on OpenSSL 3.0.10+ without the fix in
``oscrypto_fix.py``; it is installed before pyas2lib is imported.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.integration.connectors import oscrypto_fix

oscrypto_fix.install()

import pyas2lib  # noqa: E402  (after the oscrypto fix)

logging.getLogger("pyas2lib").setLevel(logging.CRITICAL)  # it logs refusals as errors


def key_pair(cert: Path, key: Path) -> bytes:
    """pyas2lib's PEM key pair: the private key followed by its certificate."""
    return key.read_bytes() + b"\n" + cert.read_bytes()


def raw_message(headers: Any, body: bytes) -> bytes:
    """HTTP headers and body as the one byte string pyas2lib's parsers read."""
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return lines.encode() + b"\r\n" + body


@dataclass
class Sent:
    """What one POST to the gateway came back with, read by pyas2lib's MDN parser."""

    http_status: int
    status: str | None
    detailed_status: str | None
    message: Any
    mdn: Any | None
    headers: Any
    body: bytes


@dataclass
class Pyas2Partner:
    """The partner (AS2 name ``partner``) and the gateway (``gateway``) as pyas2lib sees them."""

    cert: Path
    key: Path
    gateway_cert: Path
    as2_id: str = "partner"
    gateway_id: str = "gateway"

    def organization(
        self, signer: tuple[Path, Path] | None = None, mdn_url: str | None = None
    ) -> Any:
        """The partner's own side (signs its messages and MDNs, decrypts deliveries)."""
        pair = key_pair(*(signer or (self.cert, self.key)))
        return pyas2lib.Organization(
            as2_name=self.as2_id,
            sign_key=pair,
            decrypt_key=pair,
            mdn_url=mdn_url,
            domain="partner.example",
        )

    def gateway(self, *, compress: bool = False, mdn: str | None = "SYNC", **more: Any) -> Any:
        """The gateway as pyas2lib's trading partner: messages to it are signed and encrypted
        with pyas2lib's defaults (3DES, ``tripledes_192_cbc``; sha256 signatures), receipts
        from it signed (sha256)."""
        cert = self.gateway_cert.read_bytes()
        options: dict[str, Any] = {
            "verify_cert": cert,
            "encrypt_cert": cert,
            "sign": True,
            "encrypt": True,
            "compress": compress,
            "mdn_mode": mdn,
            "mdn_digest_alg": "sha256",
        }
        return pyas2lib.Partner(as2_name=self.gateway_id, **{**options, **more})

    def build(
        self,
        payload: bytes,
        filename: str = "order.xml",
        *,
        signer: tuple[Path, Path] | None = None,
        mdn_url: str | None = None,
        message_id: str | None = None,
        **partner: Any,
    ) -> Any:
        """A pyas2lib Message for the gateway (``partner`` options go to :meth:`gateway`)."""
        message = pyas2lib.Message(self.organization(signer, mdn_url), self.gateway(**partner))
        message.build(
            payload,
            filename=filename,
            content_type="application/xml",
            message_id=message_id,
            disposition_notification_to="edi@partner.example",
        )
        return message

    def send(self, url: str, payload: bytes, filename: str = "order.xml", **build: Any) -> Sent:
        """Build a message with pyas2lib, POST it, and read the (sync) MDN with pyas2lib."""
        message = self.build(payload, filename, **build)
        headers = {k: v.replace("\n", " ") for k, v in message.headers.items()}
        request = urllib.request.Request(url, data=message.content, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, answer_headers, body = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            status, answer_headers, body = exc.code, exc.headers, exc.read()
        if status != 200 or not body:
            return Sent(status, None, None, message, None, answer_headers, body)
        found, detail, mdn = read_mdn(message, answer_headers, body)
        return Sent(status, found, detail, message, mdn, answer_headers, body)


def read_mdn(message: Any, headers: Any, body: bytes) -> tuple[str | None, str | None, Any]:
    """pyas2lib's reading of an MDN for ``message``: (status, detailed status, the Mdn).

    pyas2lib verifies a signed MDN with the gateway's certificate and compares its MIC; a
    receipt that fails either reads ``failed/Failure`` or ``processed/warning``."""
    mdn = pyas2lib.Mdn()
    status, detail = mdn.parse(
        raw_message(headers, body),
        find_message_cb=lambda mid, _recipient: message if mid == message.message_id else None,
    )
    return status, detail, mdn


@dataclass
class Pyas2Endpoint:
    """The partner's AS2 endpoint, all done by pyas2lib: ``Message.parse`` decrypts, verifies and
    decompresses each delivery and builds the (signed) MDN that is the HTTP answer.

    ``delivered`` (file name -> payload) keeps processed messages; a Message-ID seen before is
    answered ``duplicate-document`` by pyas2lib and not delivered twice.
    """

    partner: Pyas2Partner
    gateway_cert: Path | None = None
    """The certificate the gateway's signatures are checked with (default: the real one)."""
    decrypt_with: tuple[Path, Path] | None = None
    """(certificate, key) pyas2lib decrypts with (default: the partner's own)."""
    sign_mdn: bool = True
    """False: the organization has no signing key, so pyas2lib's MDNs are unsigned."""
    delivered: dict[str, bytes] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    results: list[tuple[str, str | None]] = field(default_factory=list)
    algorithms: list[tuple[str | None, str | None]] = field(default_factory=list)
    """(cipher, signature digest) pyas2lib found in each delivery (it names only 3DES,
    ``tripledes_192_cbc``, and leaves the cipher None for AES)."""
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Pyas2Endpoint:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/pyas2"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def answer(self, headers: Any, body: bytes) -> tuple[dict[str, str], bytes]:
        """Parse one delivery with pyas2lib; the MDN's headers and body."""
        org = self.partner.organization()
        if self.decrypt_with is not None:
            org.decrypt_key = org.load_key(key_pair(*self.decrypt_with), None)
        if not self.sign_mdn:
            org.sign_key = None
        verify = (self.gateway_cert or self.partner.gateway_cert).read_bytes()
        gateway = self.partner.gateway(verify_cert=verify)
        message = pyas2lib.Message()
        with self.lock:
            self.bodies.append(body)
            status, _exception, mdn = message.parse(
                raw_message(headers, body),
                find_org_cb=lambda name: org if name == org.as2_name else None,
                find_partner_cb=lambda name: gateway if name == gateway.as2_name else None,
                find_message_cb=lambda mid, _partner: mid in self.seen,
            )
            detail = None if mdn is None else _disposition(mdn)
            self.results.append((status, detail))
            self.algorithms.append((message.enc_alg, message.digest_alg))
            if status == "processed":
                self.seen.add(message.message_id)
                name = message.payload.get_filename() or "payload"
                self.delivered[name] = message.content
        if mdn is None:
            return {}, b""
        return {k: v.replace("\n", " ") for k, v in mdn.headers.items()}, mdn.content


def _disposition(mdn: Any) -> str | None:
    """The Disposition line of an MDN pyas2lib built (for assertions on what it answered)."""
    found = re.search(rb"^Disposition:[ \t]*(.+?)\r?$", mdn.content, re.MULTILINE)
    return found.group(1).decode() if found else None


def _handler(endpoint: Pyas2Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers, mdn = endpoint.answer(self.headers, body)
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(mdn)))
            self.end_headers()
            self.wfile.write(mdn)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class MdnInbox:
    """The partner's URL for asynchronous MDNs: keeps what is POSTed (headers, body)."""

    def __init__(self) -> None:
        self.received: list[tuple[Any, bytes]] = []
        self.arrived = threading.Event()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                inbox.received.append((self.headers, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                inbox.arrived.set()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mdn"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
