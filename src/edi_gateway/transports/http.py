""" "AS2-like" plain HTTP(S): partners POST XML with basic auth or a bearer token; we POST back.

Inbound (``serve_http``): every request must carry the credentials of one listed partner,
checked on the headers before the body is read; anything else (no or wrong credentials, over
the size limit) is refused with 401 / 413 and a log line ``refused ...``, and nothing is
stored. The document's sender must be that partner (or one it may ``send_for``), else 403
``SENDER_MISMATCH`` (:mod:`.sender`). A request's ``Message-ID`` header (else the
sha256 of its bytes) is the idempotency key: a re-send is answered ``duplicate`` and not taken
again. Outbound (``HttpOutbound``): POST with our credentials; the outbox row's ``message_id``
travels as ``Message-ID`` so the partner can do the same.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping

from edi_gateway.envelope import Envelope
from edi_gateway.transports.as2.mime import safe_filename
from edi_gateway.transports.http_spec import HttpConnector
from edi_gateway.transports.httppost import post
from edi_gateway.transports.httpserver import Head, HttpServer, Request, Response, serve
from edi_gateway.transports.push import Receive
from edi_gateway.transports.sender import SenderMismatch, pushed_by

log = logging.getLogger(__name__)


def serve_http(conn: HttpConnector, receive: Receive, max_bytes: int | None = None) -> HttpServer:
    """Start the endpoint of an inbound ``type: http`` connector; ``.close()`` stops it."""
    endpoint = HttpEndpoint(conn, receive)
    return serve(f"http:{conn.name}", conn, {conn.url_path}, endpoint, max_bytes)


class HttpEndpoint:
    """The request handler of one inbound plain-HTTP connector."""

    def __init__(self, conn: HttpConnector, receive: Receive) -> None:
        self.conn, self.receive = conn, receive
        self.source = f"http:{conn.name}"
        self.basic: dict[str, tuple[str, str]] = {}
        self.tokens: dict[str, str] = {}
        self.send_for = {p.partner: p.send_for for p in conn.partners}
        for p in conn.partners:  # secrets read once, at start
            if p.token is not None:
                self.tokens[p.partner] = p.token.value()
            elif p.username is not None and p.password is not None:
                self.basic[p.partner] = (p.username, p.password.value())

    def who(self, authorization: str) -> str | None:
        """The partner whose credentials ``authorization`` carries, or None."""
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            for partner, token in self.tokens.items():
                if hmac.compare_digest(value.encode(), token.encode()):
                    return partner
        elif scheme.lower() == "basic" and value:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            for partner, (name, secret) in self.basic.items():
                if hmac.compare_digest(user.encode(), name.encode()) & hmac.compare_digest(
                    password.encode(), secret.encode()
                ):
                    return partner
        return None

    def admit(self, head: Head) -> str | Response:
        """The partner whose credentials the request carries; else 401 (the body unread)."""
        partner = self.who(head.headers.get("Authorization", ""))
        if partner is not None:
            return partner
        length = head.headers.get("Content-Length", "chunked")
        log.warning(
            "%s: refused %s (%s bytes): no valid credentials", self.source, head.peer, length
        )
        challenge = {"WWW-Authenticate": 'Basic realm="edi-gateway", Bearer'}
        return Response(401, b"credentials required\n", challenge)

    def handle(self, request: Request) -> Response:
        """Take one POSTed document from the partner ``admit`` authenticated."""
        partner = request.sender
        if not request.body:
            return Response(400, b"empty body\n")
        given = (request.headers.get("Message-ID") or "").strip()[:300]
        digest = hashlib.sha256(request.body).hexdigest()
        # The Message-ID with a digest of the body: a re-send is recognised, while a partner
        # that reuses a Message-ID for another document does not lose that document.
        ref = f"{partner}:{given}#{digest[:16]}" if given else f"{partner}:sha256:{digest}"
        filename = safe_filename(request.headers.get_filename(), "document.xml")
        meta = pushed_by(partner, self.send_for[partner])
        envelope = Envelope(request.body, self.source, ref, filename, meta=meta)
        try:
            receipt = self.receive(envelope)
        except SenderMismatch as exc:
            log.warning(
                "%s: refused %s from %s at %s: %s", self.source, ref, partner, request.peer, exc
            )
            return Response(403, f"{exc}\n".encode())
        except Exception:  # the store or processing broke: the sender must try again
            log.exception("%s: could not take %s from %s", self.source, ref, partner)
            return Response(503, b"could not store the document; send it again later\n")
        answer = {"reference": ref, "message": receipt.message_id, "state": receipt.state}
        if receipt.repeated:
            answer["duplicate"] = True  # a re-send: nothing new was stored
        log.info("%s: took %s from %s: %s", self.source, ref, partner, answer)
        headers = {"Content-Type": "application/json"}
        return Response(200, json.dumps(answer).encode() + b"\n", headers)


class HttpOutbound:
    """Deliveries by POST to one partner (``type: http``, ``direction: out``)."""

    def __init__(self, conn: HttpConnector) -> None:
        assert conn.url is not None
        self.name, self.conn, self.url = conn.name, conn, conn.url

    def deliver(
        self, filename: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> str:
        """POST ``payload``; return the URL and the partner's answer reference."""
        meta = dict(headers or {})
        name = safe_filename(filename, "document.xml").replace('"', "")
        name = name.encode("ascii", "replace").decode().replace("?", "_")  # header-safe
        http_headers = {
            "Content-Type": meta.get("media_type", "application/xml"),
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        if meta.get("message_id"):
            http_headers["Message-ID"] = meta["message_id"]
        if self.conn.token is not None:
            http_headers["Authorization"] = f"Bearer {self.conn.token.value()}"
        elif self.conn.username is not None and self.conn.password is not None:
            pair = f"{self.conn.username}:{self.conn.password.value()}".encode()
            http_headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        post(
            self.name, self.url, payload, http_headers,
            timeout=self.conn.timeout_seconds, ca_file=self.conn.ca_file,
        )  # fmt: skip
        return f"{self.url} {name}"

    def close(self) -> None:
        """Nothing to release: every delivery is one HTTP request on its own connection."""
