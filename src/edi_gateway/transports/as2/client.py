"""Outbound AS2: build a signed, encrypted (optionally compressed) message, POST it, check the MDN.

The Message-ID comes from the outbox row's ``message_id``, so a retry re-sends the same
message and the partner's duplicate detection keeps one copy (its ``duplicate-document``
receipt counts as delivered). A negative receipt, a bad receipt signature or a MIC that does
not match what was sent is a TransportError.

With ``mdn: async`` nothing waits here: ``deliver`` returns :class:`AwaitingReceipt` (the
Message-ID and the MIC to expect) as soon as the partner took the POST, and the outbox asks
``check_receipt`` on its own schedule whether the inbound endpoint has kept the MDN in
``mdn_folder`` (``server.mdn_file``); one that has not come within ``mdn_wait_seconds`` is
``missing_receipt`` (docs/adr/0017-waits-on-partners-are-state.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

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
from edi_gateway.transports.as2_spec import As2Connector
from edi_gateway.transports.base import AwaitingReceipt, TransportError
from edi_gateway.transports.httppost import post

if TYPE_CHECKING:
    from cryptography import x509

    from edi_gateway.transports.as2.cms import Keys

log = logging.getLogger(__name__)


class As2Outbound:
    """Deliveries to one AS2 partner (``type: as2``, ``direction: out``)."""

    def __init__(self, conn: As2Connector) -> None:
        assert conn.partner_certificate is not None and conn.partner_as2_id is not None
        assert conn.url is not None
        self.name, self.conn, self.url = conn.name, conn, conn.url
        self.warned = False

    @cached_property
    def keys(self) -> Keys:
        """Our certificate and key, loaded on first use (a ConfigError when unreadable): a look
        for a receipt that has not come needs neither (loading them takes tens of ms)."""
        return load_own_keys(self.conn)

    @cached_property
    def partner_cert(self) -> x509.Certificate:
        """The partner's certificate, loaded on first use."""
        assert self.conn.partner_certificate is not None
        return load_certificate(self.name, self.conn.partner_certificate)

    def _warn_if_weak(self) -> None:
        """Once per opened transport that sends (not when it is opened only to check receipts)."""
        conn, self.warned = self.conn, True
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
    ) -> str | AwaitingReceipt:
        """POST ``payload`` as one AS2 message; return ``URL Message-ID`` once its receipt
        confirmed it (``mdn: sync``) or it was taken (``mdn: none``); with ``mdn: async``, an
        :class:`AwaitingReceipt` as soon as the partner took the POST."""
        if not self.warned:
            self._warn_if_weak()
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
        where = f"{self.url} {message_id}"
        if conn.mdn == "async":
            expected = {"message_id": message_id, "mic": built.mic}
            return AwaitingReceipt(where, conn.mdn_wait_seconds, expected)
        if conn.mdn == "sync":
            mdn = self._read(answer_headers.get("Content-Type", ""), body, message_id)
            self._check(mdn, message_id, built.mic)
        return where

    def check_receipt(self, receipt: Mapping[str, str]) -> bool:
        """Whether the async MDN for ``receipt["message_id"]`` has been kept and confirms the
        delivery (False: not yet). Raises TransportError for a refusal (``DELIVERY_REFUSED``)
        or a receipt that fails a check (``RECEIPT_FAILED``). Only looks; never waits."""
        path = self._mdn_path(receipt)
        if path is None:  # no longer mdn: async; the deadline fails it
            return False
        try:
            kept = path.read_bytes()
        except FileNotFoundError:
            return False
        message_id = receipt["message_id"]
        content_type, _, body = kept.partition(b"\n")
        mdn = self._read(content_type.decode("utf-8", "replace"), body, message_id)
        self._check(mdn, message_id, receipt["mic"])
        return True

    def drop_receipt(self, receipt: Mapping[str, str]) -> None:
        """Remove the MDN ``check_receipt`` read (its outcome is committed)."""
        path = self._mdn_path(receipt)
        if path is not None:
            path.unlink(missing_ok=True)

    def missing_receipt(self, receipt: Mapping[str, str]) -> TransportError:
        """``RECEIPT_FAILED``: no MDN came within ``mdn_wait_seconds``."""
        return self._failed(
            f"no MDN for {receipt['message_id']} within {self.conn.mdn_wait_seconds:g} s "
            "(mdn_wait_seconds): this delivery attempt failed"
        )

    def _mdn_path(self, receipt: Mapping[str, str]) -> Path | None:
        folder = self.conn.mdn_folder
        return None if folder is None else mdn_file(Path(folder), receipt["message_id"])

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
