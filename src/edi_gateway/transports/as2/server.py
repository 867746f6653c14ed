"""The inbound AS2 endpoint: receive, check, hand over, answer with an MDN.

Each POST's AS2-From / AS2-To are checked on the headers, before the body is read; then the
body is read (size-limited), decrypted, verified and decompressed by :mod:`.mime` with the
sending partner's certificate, its document's sender checked against that partner
(:mod:`..sender`; 403 ``SENDER_MISMATCH`` with an ``authentication-failed`` receipt), handed to
``receive`` (the daemon's intake + processing, committed before it returns) and answered with a
receipt whose disposition tells the sender what happened. Refusals (unknown partner, failed
decryption or signature, another partner's document, over the size limit) store nothing: the
log line ``refused ...`` is their record. Async receipts for messages this
gateway sent arrive at ``<url_path>/mdn`` and are kept in ``mdn_folder`` for the sender.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from edi_gateway.envelope import Envelope
from edi_gateway.errors import ConfigError
from edi_gateway.transports.as2 import cms
from edi_gateway.transports.as2.mdn import MdnRequest, build_mdn, requested, unquote_name
from edi_gateway.transports.as2.mime import As2Refusal, Partner, Received, read_message
from edi_gateway.transports.as2_spec import As2Connector
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.httppost import post
from edi_gateway.transports.httpserver import Head, HttpServer, Limits, Request, Response, serve
from edi_gateway.transports.push import Receive
from edi_gateway.transports.sender import SenderMismatch, pushed_by

log = logging.getLogger(__name__)


def serve_as2(conn: As2Connector, receive: Receive, max_bytes: int | None = None) -> HttpServer:
    """Start the AS2 endpoint of an inbound ``type: as2`` connector; ``.close()`` stops it.

    ``max_bytes`` (intake's limit) applies unless the connector sets ``max_size_mb``.
    """
    limits = Limits.of(conn, max_bytes)
    endpoint = As2Endpoint(conn, receive, limits.max_bytes)
    paths = {conn.url_path, f"{conn.url_path.rstrip('/')}/mdn"}
    return serve(f"as2:{conn.name}", conn, paths, endpoint, max_bytes)


def load_own_keys(conn: As2Connector) -> cms.Keys:
    """The connector's certificate and private key (a ConfigError naming what is wrong)."""
    try:
        cert = Path(conn.certificate).read_bytes()
        return cms.load_keys(cert, conn.private_key.value().encode())
    except OSError as exc:
        raise ConfigError(
            f"connector {conn.name!r}: cannot read {conn.certificate}: {exc}"
        ) from exc
    except cms.CmsError as exc:
        raise ConfigError(f"connector {conn.name!r}: certificate/private_key: {exc}") from exc


def load_certificate(name: str, path: Path) -> x509.Certificate:
    """A partner's certificate file (a ConfigError naming it when unreadable)."""
    try:
        return cms.load_certificate(Path(path).read_bytes())
    except (OSError, cms.CmsError) as exc:
        raise ConfigError(f"connector {name!r}: certificate {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Answer:
    """Whom a receipt answers, and how they asked for it."""

    asked: MdnRequest
    message_id: str
    sender: str


class As2Endpoint:
    """The request handler of one inbound AS2 connector (no sockets: see ``serve_as2``)."""

    def __init__(self, conn: As2Connector, receive: Receive, max_bytes: int) -> None:
        self.conn, self.receive, self.max_bytes = conn, receive, max_bytes
        self.source = f"as2:{conn.name}"
        self.keys = load_own_keys(conn)
        self.partners = {
            p.as2_id: Partner(
                p.as2_id,
                load_certificate(conn.name, p.certificate),
                p.require_signed,
                p.require_encrypted,
            )
            for p in conn.partners
        }
        self.credentials = {p.as2_id: p for p in conn.partners}

    def admit(self, head: Head) -> str | Response:
        """The AS2-From of a known partner writing to our AS2 id, checked on the headers before
        the body is read (its signature is checked on the body); else the refusal."""
        headers = head.headers
        sender = unquote_name(headers.get("AS2-From", ""))
        if self._is_mdn_path(head.path):
            if self.conn.mdn_folder is None or sender not in self.partners:
                why = "async MDN from an unknown partner or no mdn_folder"
                self._refused(head, sender, "", why)
                return Response(403, b"not accepted here\n")
            return sender
        receiver = unquote_name(headers.get("AS2-To", ""))
        message_id = (headers.get("Message-ID") or "").strip()
        if not sender or not message_id or len(message_id) > 400:
            self._refused(head, sender, message_id, "missing AS2-From or Message-ID")
            return Response(400, b"AS2-From, AS2-To and Message-ID are required\n")
        if sender not in self.partners or receiver != self.conn.as2_id:
            why = f"unknown trading partner {sender!r} -> {receiver!r}"
            self._refused(head, sender, message_id, why)
            answer = _Answer(requested(headers), message_id, sender)
            return self._receipt(answer, "error: unknown-trading-partner", None, why)
        return sender

    def handle(self, request: Request) -> Response:
        """Answer one POST of an admitted partner: a message (with its receipt) or an async
        receipt for us."""
        if self._is_mdn_path(request.path):
            return self._keep_mdn(request)
        headers, sender = request.headers, request.sender
        message_id = (headers.get("Message-ID") or "").strip()
        answer = _Answer(requested(headers), message_id, sender)
        try:
            received = read_message(
                headers.get("Content-Type", "application/octet-stream"),
                request.body,
                keys=self.keys,
                partner=self.partners[sender],
                digest=answer.asked.digest,
                max_bytes=self.max_bytes,
            )
        except As2Refusal as refusal:
            self._refused(request, sender, message_id, f"{refusal.modifier}: {refusal.message}")
            return self._receipt(answer, f"error: {refusal.modifier}", None, refusal.message)
        return self._take(request, answer, received)

    def _is_mdn_path(self, path: str) -> bool:
        return path.endswith("/mdn") and path != self.conn.url_path

    def _take(self, request: Request, answer: _Answer, received: Received) -> Response:
        """Hand a checked message to ``receive``; the receipt says what became of it."""
        message_id, sender = answer.message_id, answer.sender
        credential = self.credentials[sender]
        envelope = Envelope(
            received.payload,
            self.source,
            message_id,
            received.filename,
            meta={
                **pushed_by(credential.partner, credential.send_for),
                "as2_from": sender,
                "as2_to": self.conn.as2_id,
                "mic": received.mic,
                "signed": str(received.signed).lower(),
                "encrypted": str(received.encrypted).lower(),
                "compressed": str(received.compressed).lower(),
                "cipher": received.cipher or "",
            },
        )
        try:
            receipt = self.receive(envelope)
        except SenderMismatch as exc:  # signed by one partner, sent in another's name
            self._refused(request, sender, message_id, str(exc))
            refused = self._receipt(answer, "error: authentication-failed", None, str(exc))
            refused.status = 403
            return refused
        except Exception:  # the store or processing broke: the sender must try again
            log.exception("%s: could not take %s from %s", self.source, message_id, sender)
            text = "the gateway could not store the message; please send it again later"
            return self._receipt(answer, "error: unexpected-processing-error", None, text)
        if receipt.repeated:
            log.info("%s: %s from %s is a duplicate", self.source, message_id, sender)
            text = "this Message-ID was received before; it was not taken again"
            return self._receipt(answer, "warning: duplicate-document", received.mic, text)
        summary = f"message {receipt.message_id} {receipt.state}"
        how = received.cipher or "unencrypted"
        log.info("%s: took %s from %s (%s; %s)", self.source, message_id, sender, summary, how)
        text = f"received {received.filename} ({len(received.payload)} bytes): {summary}"
        return self._receipt(answer, None, received.mic, text)

    def _receipt(
        self, answer: _Answer, modifier: str | None, mic: str | None, text: str
    ) -> Response:
        asked = answer.asked
        if not asked.wanted:
            return Response(200 if modifier is None or modifier.startswith("warning") else 400)
        headers, body = build_mdn(
            original_message_id=answer.message_id,
            our_id=self.conn.as2_id,
            their_id=answer.sender,
            modifier=modifier,
            mic=mic,
            text=text,
            keys=self.keys if asked.signed else None,
            digest=asked.digest,
        )
        if asked.async_url is None:
            return Response(200, body, headers)
        url, message_id = asked.async_url, answer.message_id
        return Response(200, b"", after=lambda: self._post_async(url, headers, body, message_id))

    def _post_async(self, url: str, headers: dict[str, str], body: bytes, message_id: str) -> None:
        if not url.startswith(("http://", "https://")):
            log.warning("%s: no async MDN for %s: bad URL %r", self.source, message_id, url)
            return
        try:  # httppost maps every failure (refused, HTTP errors, broken answers) to one error
            post(self.source, url, body, headers, timeout=self.conn.timeout_seconds)
        except TransportError as exc:
            log.warning(
                "%s: async MDN for %s to %s failed: %s", self.source, message_id, url, exc.message
            )

    def _keep_mdn(self, request: Request) -> Response:
        """An async receipt for a message we sent: kept in ``mdn_folder`` for the sender."""
        sender, folder = request.sender, self.conn.mdn_folder
        assert folder is not None  # admit() refused it otherwise
        content_type = request.headers.get("Content-Type", "")
        try:
            store_mdn(Path(folder), content_type, request.body)
        except As2Refusal as refusal:
            self._refused(request, sender, "", refusal.message)
            return Response(400, b"not an MDN\n")
        log.info("%s: kept an async MDN from %s", self.source, sender)
        return Response(200, b"")

    def _refused(self, request: Head | Request, sender: str, message_id: str, why: str) -> None:
        size = request.headers.get("Content-Length", "chunked")
        log.warning(
            "%s: refused %s from %r at %s (%s bytes): %s",
            self.source, message_id or "a request", sender, request.peer, size, why,
        )  # fmt: skip


def mdn_file(folder: Path, original_message_id: str) -> Path:
    """Where the async receipt for ``original_message_id`` is kept."""
    return folder / f"{hashlib.sha256(original_message_id.strip().encode()).hexdigest()}.mdn"


def store_mdn(folder: Path, content_type: str, body: bytes) -> None:
    """Keep a receipt under the hash of its Original-Message-ID (written whole, then renamed).

    The receipt is read (not trusted) only to find that id; the sender checks its signature.
    """
    from edi_gateway.transports.as2.mdn import original_id_of

    original = original_id_of(content_type, body)
    folder.mkdir(parents=True, exist_ok=True)
    target = mdn_file(folder, original)
    part = target.with_suffix(".part")
    with part.open("wb") as handle:
        handle.write(content_type.encode() + b"\n" + body)
        handle.flush()
        os.fsync(handle.fileno())
    part.replace(target)
