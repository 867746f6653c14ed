"""Connector models of mail: IMAP in (``type: imap``, :mod:`.email_in`) and SMTP out
(``type: smtp``, :mod:`.email_out`). A light module: loading a config imports it, not imaplib
or smtplib."""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edi_gateway.config.alerts import Cause
from edi_gateway.config.base import ConfigPath, ConnectorBase, Secret

__all__ = ["SUBJECT_PLACEHOLDERS", "ImapConnector", "SmtpConnector"]

_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$")
_DOMAIN = re.compile(r"^@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$")
SUBJECT_PLACEHOLDERS = ("document_type", "document_id", "partner", "filename")
_DEFAULT_PORTS = {"imap": {"ssl": 993, "starttls": 143, "plain": 143}}
_DEFAULT_PORTS["smtp"] = {"ssl": 465, "starttls": 587, "plain": 25}


def _address(value: str, *, domain_ok: bool = False) -> str:
    text = value.strip().lower()
    if _ADDRESS.match(text) or (domain_ok and _DOMAIN.match(text)):
        return text
    expected = "an address such as orders@buyer.example" + (
        " or a whole domain such as @buyer.example" if domain_ok else ""
    )
    raise ValueError(f"found {value!r}, expected {expected}")


class _MailServer(ConnectorBase):
    """What the IMAP and the SMTP connector share: the server and how to reach it."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    """Default by ``security``: IMAP 993 (ssl) / 143; SMTP 465 (ssl), 587 (starttls), 25."""
    security: Literal["ssl", "starttls", "plain"]
    """``ssl``: TLS from the first byte; ``starttls``: plain, then upgraded before login (refused
    if the server does not offer it); ``plain``: no TLS at all (loopback or trusted networks only:
    the password travels in clear)."""
    ca_file: ConfigPath | None = None
    """PEM file of the certificate authorities to trust instead of the system's (a private CA
    or a self-signed server certificate). The server name is always checked."""
    timeout_seconds: float = Field(default=30, gt=0, le=600)
    """How long one network operation may take before the link counts as dead."""

    @property
    def exchange_seconds(self) -> float:
        """The I/O timeout (``ConnectorBase.exchange_seconds``)."""
        return self.timeout_seconds

    @property
    def server_port(self) -> int:
        """``port``, else the usual port of the protocol and ``security``."""
        return self.port or _DEFAULT_PORTS[self.type][self.security]


class ImapConnector(_MailServer):
    """An IMAP mailbox polled for mails whose XML (or zip of XML) attachments are documents.

    A mail stays in ``mailbox`` until every document of it is committed; it is then moved to
    ``processed`` (or ``failed`` when one of its documents failed). Mails from senders not in
    ``allowed_senders`` are kept whole as a failed message (``SENDER_NOT_ALLOWED``).
    """

    type: Literal["imap"]
    security: Literal["ssl", "starttls", "plain"] = "ssl"
    username: str = Field(min_length=1)
    password: Secret
    mailbox: str = Field(default="INBOX", min_length=1)
    """The folder polled."""
    allowed_senders: list[str] = Field(min_length=1)
    """From addresses whose attachments are taken: ``orders@buyer.example`` or a whole domain
    ``@buyer.example``. Required: an open mailbox must not feed the gateway."""
    processed: str | None = "Processed"
    """Folder taken mails are moved to (created when missing); null: leave them in ``mailbox``
    with the keyword ``$EdiProcessed``."""
    failed: str | None = "Failed"
    """Folder mails with a failed or refused document are moved to; null: keyword ``$EdiFailed``."""

    @field_validator("direction")
    @classmethod
    def _inbound(cls, value: str) -> str:
        if value != "in":
            raise ValueError("found out, expected direction: in (type: smtp sends mail)")
        return value

    @field_validator("allowed_senders")
    @classmethod
    def _senders(cls, value: list[str]) -> list[str]:
        return [_address(v, domain_ok=True) for v in value]

    @field_validator("mailbox", "processed", "failed")
    @classmethod
    def _folder(cls, value: str | None) -> str | None:
        if value is not None and not (value.isascii() and value.isprintable() and value.strip()):
            raise ValueError(f"found {value!r}, expected a folder name in printable ASCII")
        return value


class SmtpConnector(_MailServer):
    """Sends each document (or bundle) as the attachment of one mail over SMTP.

    The subject comes from ``subject`` with ``{document_type}``, ``{document_id}``,
    ``{partner}`` and ``{filename}``; the Message-ID from the outbox row, so a re-send after a
    crash carries the same Message-ID and the receiver can recognise it.
    """

    type: Literal["smtp"]
    security: Literal["ssl", "starttls", "plain"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    """With ``username``: log in (AUTH) before sending; neither: send without logging in."""
    from_address: str
    to: list[str] = Field(min_length=1)
    """Recipients of every mail this connector sends."""
    subject: str = "{document_type} {document_id}"
    body: str = "Attached: {filename}"
    """The mail's text; the same placeholders as ``subject``."""
    notify: list[Cause] = Field(default_factory=list)
    """The alerts this connector mails to ``to`` (causes: order.received, message.failed,
    delivery.failed, delivery.overdue, connector.down, store.unavailable, certificate.expiring,
    sla.overdue), as digests throttled by ``alerts.every_minutes``; a connector only for alerts
    is routed nowhere."""

    @field_validator("direction")
    @classmethod
    def _outbound(cls, value: str) -> str:
        if value != "out":
            raise ValueError("found in, expected direction: out (type: imap reads a mailbox)")
        return value

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        return _address(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @field_validator("subject", "body")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as exc:
            raise ValueError(f"found {value!r}, expected a pattern: {exc}") from exc
        unknown = sorted(n for n in names if n not in SUBJECT_PLACEHOLDERS)
        if unknown:
            known = ", ".join("{" + p + "}" for p in SUBJECT_PLACEHOLDERS)
            raise ValueError(f"found {{{unknown[0]}}}, expected only {known}")
        return value

    @model_validator(mode="after")
    def _login(self) -> SmtpConnector:
        if (self.username is None) != (self.password is None):
            raise ValueError("expected both username and password: {env: NAME}, or neither")
        return self
