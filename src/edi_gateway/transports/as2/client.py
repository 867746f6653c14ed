"""Outbound AS2: build a signed, encrypted (optionally compressed) message, POST it, check the MDN.

The Message-ID comes from the outbox row's ``message_id``, so a retry re-sends the same
message and the partner's duplicate detection keeps one copy (its ``duplicate-document``
receipt counts as delivered). A negative receipt, a bad receipt signature or a MIC that does
not match what was sent is a TransportError; so is an async receipt that does not arrive
within ``mdn_wait_seconds`` (the outbox then marks the delivery failed).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path

from edi_gateway.config_http import As2Connector
from edi_gateway.errors import ErrorCode
from edi_gateway.transports.as2.mdn import Mdn, as2_name, read_mdn
from edi_gateway.transports.as2.mime import (
    AS2_VERSION,
    MIC_NAMES,
    As2Refusal,
    build_message,
    safe_filename,
)
from edi_gateway.transports.as2.server import load_certificate, load_own_keys, mdn_file
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.httppost import post

POLL_SECONDS = 0.2
log = logging.getLogger(__name__)


class As2Outbound:
    """Deliveries to one AS2 partner (``type: as2``, ``direction: out``)."""

    def __init__(self, conn: As2Connector) -> None:
        assert conn.partner_certificate is not None and conn.partner_as2_id is not None
        assert conn.url is not None
        self.name, self.conn, self.url = conn.name, conn, conn.url
        self.keys = load_own_keys(conn)
        self.partner_cert = load_certificate(conn.name, conn.partner_certificate)
        weak = [
            what
            for what, used in (
                ("sha1 signatures", conn.sign and conn.digest == "sha1"),
                ("3des encryption", conn.encrypt and conn.cipher == "3des"),
            )
            if used
        ]
        if weak:
            log.warning("as2:%s uses %s (legacy): keep it for partners that need it", conn.name,
                        " and ".join(weak))  # fmt: skip

    def deliver(
        self, filename: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> str:
        """POST ``payload`` as one AS2 message; return ``URL Message-ID`` once its receipt
        (when asked) confirmed it."""
        meta = dict(headers or {})
        conn = self.conn
        message_id = self._message_id(meta.get("message_id"))
        built = build_message(
            payload,
            filename=safe_filename(filename, "document.xml"),
            content_type=meta.get("media_type", "application/xml"),
            keys=self.keys if conn.sign else None,
            recipient=self.partner_cert if conn.encrypt else None,
            compress=conn.compress,
            digest=conn.digest,
            cipher=conn.cipher,
        )
        http_headers = {
            **built.headers,
            "AS2-Version": AS2_VERSION,
            "AS2-From": as2_name(conn.as2_id),
            "AS2-To": as2_name(conn.partner_as2_id or ""),
            "Message-ID": message_id,
            "Subject": f"{meta.get('document_type', 'Document')} {meta.get('document_id', '')}",
        }
        if conn.mdn != "none":
            http_headers["Disposition-Notification-To"] = conn.as2_id
            if conn.mdn_signed:
                micalg = MIC_NAMES[conn.digest]
                http_headers["Disposition-Notification-Options"] = (
                    "signed-receipt-protocol=optional, pkcs7-signature; "
                    f"signed-receipt-micalg=optional, {micalg}"
                )
            if conn.mdn == "async":
                http_headers["Receipt-Delivery-Option"] = conn.mdn_url or ""
        _status, answer_headers, body = post(
            self.name, self.url, built.body, http_headers,
            timeout=conn.timeout_seconds, ca_file=conn.ca_file,
        )  # fmt: skip
        if conn.mdn == "sync":
            mdn = self._read(answer_headers.get("Content-Type", ""), body, message_id)
            self._check(mdn, message_id, built.mic)
        elif conn.mdn == "async":
            self._check(self._await_async(message_id), message_id, built.mic)
        return f"{self.url} {message_id}"

    def close(self) -> None:
        """Nothing to release: every delivery is one HTTP request on its own connection."""

    def _message_id(self, row_id: str | None) -> str:
        domain = re.sub(r"[^A-Za-z0-9.-]", "-", self.conn.as2_id)
        if not row_id:
            from edi_gateway.transports.as2.mime import new_message_id

            return new_message_id(self.conn.as2_id)
        local = re.sub(r"[^A-Za-z0-9._-]", "-", row_id)[:200]
        return f"<{local}@{domain}>"

    def _read(self, content_type: str, body: bytes, message_id: str) -> Mdn:
        if not body:
            raise self._failed(f"the partner answered {message_id} without the MDN asked for")
        try:
            return read_mdn(content_type, body, trusted=self.partner_cert, keys=self.keys)
        except As2Refusal as refusal:
            raise self._failed(
                f"the MDN for {message_id} is not valid: {refusal.message}"
            ) from None

    def _await_async(self, message_id: str) -> Mdn:
        assert self.conn.mdn_folder is not None
        path = mdn_file(Path(self.conn.mdn_folder), message_id)
        deadline = time.monotonic() + self.conn.mdn_wait_seconds
        while not path.exists():
            if time.monotonic() >= deadline:
                raise self._failed(
                    f"no MDN for {message_id} within {self.conn.mdn_wait_seconds:g} s: the "
                    "delivery is marked failed"
                )
            time.sleep(POLL_SECONDS)
        content_type, _, body = path.read_bytes().partition(b"\n")
        mdn = self._read(content_type.decode("utf-8", "replace"), body, message_id)
        path.unlink(missing_ok=True)
        return mdn

    def _check(self, mdn: Mdn, message_id: str, mic: str) -> None:
        if self.conn.mdn_signed and not mdn.signed:
            raise self._failed(f"the MDN for {message_id} is not signed, though asked")
        if mdn.original_message_id.strip() != message_id:
            raise self._failed(
                f"the MDN answers {mdn.original_message_id!r}, expected {message_id}"
            )
        if not mdn.ok:
            raise TransportError(
                f"{self.conn.partner_as2_id} refused {message_id}: {mdn.disposition} "
                "(fix what it names with the partner, then retry)",
                recoverable=False,
                code=ErrorCode.DELIVERY_REFUSED,
            )
        duplicate = (mdn.modifier or "").lower().endswith("duplicate-document")
        if not duplicate and mdn.mic is not None and _mic(mdn.mic) != _mic(mic):
            raise self._failed(f"the MDN for {message_id} confirms other content (MIC)")

    def _failed(self, message: str) -> TransportError:
        return TransportError(message, recoverable=False, code=ErrorCode.RECEIPT_FAILED)


def _mic(value: str) -> tuple[str, str]:
    """(digest, algorithm) of a Received-Content-MIC, the algorithm name normalised: partners
    write ``sha-256`` (RFC 5751) or ``sha256`` (pyas2lib, many others) for the same thing."""
    digest, _, alg = value.partition(",")
    return digest.strip(), alg.strip().lower().replace("-", "")
