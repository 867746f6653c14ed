"""Connector models of gateway.yaml: one class per transport type, and :data:`Connector`.

Every connector shares :class:`ConnectorBase` (name, direction, schedule, partner, reply
layouts). Secrets (passwords, private keys, tokens) are never written in the YAML: a
:class:`Secret` names an environment variable or a file, read when the connector opens.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edi_gateway.config_base import ConfigPath, Slug, _Model
from edi_gateway.errors import ConfigError

__all__ = [
    "AmqpConnector",
    "As2Connector",
    "Connector",
    "ConnectorBase",
    "FolderConnector",
    "HttpConnector",
    "ImapConnector",
    "Secret",
    "SftpConnector",
    "SmtpConnector",
]

_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


class Secret(_Model):
    """A secret by reference: ``{env: NAME}`` or ``{file: PATH}`` (exactly one).

    The value is read only when needed, so a config can be validated on a machine that does not
    hold the secrets; a missing variable or file is a ConfigError naming it.
    """

    env: str | None = None
    file: ConfigPath | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_reference(cls, data: Any) -> Any:
        if not isinstance(data, dict):  # never echo it: it may be the secret itself
            raise ValueError(
                "expected {env: VARIABLE} or {file: PATH}: secrets are never written in "
                "gateway.yaml itself (the value found is not repeated here)"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError(
                "expected exactly one of env: VARIABLE or file: PATH (secrets are never "
                "written in gateway.yaml itself)"
            )
        return self

    def value(self) -> str:
        """The secret's text (a file's trailing newline removed)."""
        if self.env is not None:
            found = os.environ.get(self.env)
            if found is None:
                raise ConfigError(f"secret: environment variable {self.env} is not set")
            return found
        assert self.file is not None
        try:
            return Path(self.file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"secret: cannot read {self.file}: {exc.strerror}") from exc


class ConnectorBase(_Model):
    """What every connector has: a name, a direction, when it is polled and for whom."""

    name: Slug
    type: str
    """Each connector class narrows this to its own ``Literal``."""
    direction: Literal["in", "out"]
    every_seconds: float = Field(default=10, gt=0, le=86400)
    """Inbound: seconds between polls."""
    cron: str | None = None
    """Inbound, instead of ``every_seconds``: poll at the times of this five-field cron
    expression, in UTC (``"*/5 * * * *"``, ``"0 6 * * MON-FRI"``); see edi_gateway/cron.py."""
    partner: Slug | None = None
    replies: dict[str, Slug] = Field(default_factory=dict)
    """Supplier replies in the supplier's own layout: file-name pattern -> column map name in
    ``mappings/<partner>/replies/<name>.yaml``; files matching no pattern are read as UBL."""

    @field_validator("cron")
    @classmethod
    def _cron_expression(cls, value: str | None) -> str | None:
        from edi_gateway.cron import cron_problem

        problem = None if value is None else cron_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> ConnectorBase:
        if self.cron is None:
            return self
        if "every_seconds" in self.model_fields_set:
            raise ValueError(
                "every_seconds and cron are both given, expected one schedule: "
                "every_seconds: N (seconds between polls) or cron: 'EXPR' (UTC)"
            )
        if self.direction == "out":
            raise ValueError(
                "cron is for inbound connectors (direction: in); outbound deliveries "
                "follow the outbox (daemon.outbox_every_seconds)"
            )
        return self


class FolderConnector(ConnectorBase):
    """A local (or mounted) folder: inbound polls ``path``, outbound writes files into it."""

    type: Literal["folder"]
    path: ConfigPath
    archive: ConfigPath | None = Field(default=None, validate_default=True)
    error: ConfigPath | None = Field(default=None, validate_default=True)
    pattern: str = "*.xml"

    @field_validator("archive", "error")
    @classmethod
    def _default_beside_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        direction, path, name = (info.data.get(k) for k in ("direction", "path", "name"))
        if direction == "out":
            if value is not None:
                raise ValueError(
                    f"found {value}, expected no {info.field_name} folder: only inbound "
                    "connectors (direction: in) have one"
                )
            return None
        if value is None and isinstance(path, Path) and isinstance(name, str):
            return path.parent / str(info.field_name) / name
        return value


class SftpConnector(ConnectorBase):
    """A directory on a partner's SFTP server: inbound polls ``path``, outbound uploads into it.

    Remote paths are POSIX paths on the server; relative ones start at the login directory.
    The server's host key must be pinned (``known_hosts`` or ``host_key_fingerprint``): an
    unknown or changed key refuses the connection, nothing is ever added automatically.
    """

    type: Literal["sftp"]
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    username: str = Field(min_length=1)
    private_key: Secret | None = None
    """The client's private key (OpenSSH or PEM text): ``{file: PATH}`` or ``{env: NAME}``."""
    private_key_passphrase: Secret | None = None
    password: Secret | None = None
    """Tried after the key (or alone) when the server asks for a password."""
    known_hosts: ConfigPath | None = None
    """An OpenSSH known_hosts file holding the server's key (``[host]:port`` when not 22)."""
    host_key_fingerprint: str | None = None
    """The server's key as ``ssh-keygen -lf`` prints it: ``SHA256:`` + 43 base64 characters."""
    path: str = Field(min_length=1)
    """Inbound: the remote folder polled. Outbound: the remote folder written into."""
    pattern: str = "*.xml"
    ignore: list[str] = Field(default_factory=lambda: ["*.part", "*.tmp", ".*"])
    """Inbound: names never taken (files still being written under a temporary name)."""
    stable_seconds: float = Field(default=0, ge=0, le=3600)
    """Inbound: take a file only after two looks this many seconds apart saw the same size and
    time (0: rely on the temporary-name convention alone)."""
    claimed: str | None = None
    """Inbound: the remote folder files are renamed into when claimed (``<path>/.claimed``)."""
    claim_tag: Slug | None = None
    """Inbound: marks this gateway's claims (default: the connector name); give each gateway
    its own when several poll one remote folder."""
    archive: str | None = None
    """Inbound: the remote folder taken files are moved to after intake committed them."""
    delete: bool = False
    """Inbound: delete taken files instead of moving them to ``archive``."""
    error: str | None = None
    """Inbound: the remote folder failed files are moved to (default: as taken files)."""
    connect_timeout: float = Field(default=15, gt=0, le=600)
    timeout: float = Field(default=60, gt=0, le=3600)
    """Seconds one SFTP operation may take before the link counts as dead."""

    @field_validator("path", "claimed", "archive", "error")
    @classmethod
    def _remote_path(cls, value: str | None) -> str | None:
        if value is not None and ("\x00" in value or "\\" in value or not value.strip()):
            raise ValueError(
                f"found {value!r}, expected a POSIX path on the server such as /upload/orders"
            )
        return (value.rstrip("/") or "/") if value is not None else None

    @field_validator("host_key_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is not None and not _FINGERPRINT.match(value.rstrip("=")):
            raise ValueError(
                f"found {value!r}, expected SHA256:<43 base64 characters> as printed by "
                "ssh-keygen -lf or ssh-keyscan HOST | ssh-keygen -lf -"
            )
        return value.rstrip("=") if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> SftpConnector:
        if (self.known_hosts is None) == (self.host_key_fingerprint is None):
            raise ValueError(
                "expected exactly one of known_hosts: FILE or host_key_fingerprint: "
                "'SHA256:...' (the server's host key is always pinned)"
            )
        if self.private_key is None and self.password is None:
            raise ValueError("expected private_key: {file: PATH} and/or password: {env: NAME}")
        inbound_only = {"archive": self.archive, "error": self.error, "claimed": self.claimed}
        if self.direction == "out":
            given = [k for k, v in inbound_only.items() if v is not None] + (
                ["delete"] if self.delete else []
            )
            if given:
                raise ValueError(f"found {', '.join(given)}, expected none on direction: out")
        elif (self.archive is None) == (not self.delete):
            raise ValueError(
                "expected exactly one of archive: REMOTE_FOLDER or delete: true (what happens "
                "to a file on the server once the gateway has it)"
            )
        return self


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
    notify: list[Literal["order.received", "message.failed"]] = Field(default_factory=list)
    """Operator notifications this connector sends to ``to`` (one mail per poll that brought
    such events, listing them); a connector only for notifications is routed nowhere."""

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


class AmqpConnector(ConnectorBase):
    """A RabbitMQ broker (AMQP 0-9-1): inbound consumes ``queue``, outbound publishes to
    ``exchange`` with ``routing_key``.

    Inbound acknowledges a message only after intake committed it; a message that fails is
    rejected into ``dead_letter_exchange`` (routed with the queue's name to
    ``dead_letter_queue``). Outbound publishes persistent messages and waits for the broker's
    publisher confirm. See README "RabbitMQ connector" and docs/adr (AMQP).
    """

    type: Literal["amqp"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    """Default 5672, or 5671 with ``tls: true``."""
    virtual_host: str = Field(default="/", min_length=1)
    username: str = Field(min_length=1)
    password: Secret
    tls: bool = False
    """Connect with TLS; the broker's certificate must be valid for ``host``."""
    ca_file: ConfigPath | None = None
    """With ``tls``: the CA certificates (PEM) the broker's certificate is checked against
    (default: the system's)."""
    heartbeat: int = Field(default=60, ge=0, le=3600)
    """Seconds of the AMQP heartbeat the client proposes (0: none)."""
    connect_timeout: float = Field(default=15, gt=0, le=600)
    """Seconds for the TCP connect and the AMQP handshake."""
    blocked_timeout: float = Field(default=60, gt=0, le=3600)
    """Seconds a connection the broker blocks (low memory or disk) may stay blocked before it
    counts as dropped."""
    declare: bool = True
    """Declare the queues and the dead-letter exchange (durable); false: only check that they
    exist, for brokers whose topology an administrator manages."""
    queue: str | None = None
    """Inbound: the queue consumed."""
    prefetch: int = Field(default=100, ge=1, le=65535)
    """Inbound: messages the broker hands out before the gateway acknowledged them."""
    max_per_poll: int = Field(default=1000, ge=1, le=1_000_000)
    """Inbound: at most this many messages are taken in one poll cycle."""
    wait_seconds: float = Field(default=1.0, gt=0, le=60)
    """Inbound: a poll cycle ends when no message came for this long."""
    dead_letter_exchange: str = "edi-gateway.dead-letter"
    """Inbound: the (direct) exchange failed messages are rejected into."""
    dead_letter_queue: str | None = Field(default=None, validate_default=True)
    """Inbound: the durable queue that keeps failed messages (default ``<queue>.dead-letter``)."""
    exchange: str = ""
    """Outbound: the exchange published to ("": the default exchange, which routes to the queue
    named by ``routing_key``)."""
    routing_key: str | None = None
    """Outbound: the routing key of published messages."""

    @field_validator("queue", "dead_letter_exchange", "dead_letter_queue", "exchange")
    @classmethod
    def _amqp_name(cls, value: str | None) -> str | None:
        if value is not None and (
            len(value.encode()) > 255 or not value.isprintable() or value != value.strip()
        ):
            raise ValueError(
                f"found {value!r}, expected an AMQP name: at most 255 bytes, printable, "
                "without leading or trailing blanks"
            )
        return value

    @field_validator("dead_letter_queue")
    @classmethod
    def _default_dead_letter_queue(cls, value: str | None, info: ValidationInfo) -> str | None:
        queue = info.data.get("queue")
        if value is None and info.data.get("direction") == "in" and queue:
            return f"{queue}.dead-letter"
        return value

    @model_validator(mode="after")
    def _by_direction(self) -> AmqpConnector:
        if self.direction == "in":
            if not self.queue:
                raise ValueError("expected queue: NAME on direction: in (the queue consumed)")
            if self.exchange or self.routing_key is not None:
                raise ValueError(
                    "found exchange/routing_key, expected them only on direction: out "
                    "(inbound consumes queue:)"
                )
            if not self.dead_letter_exchange:
                raise ValueError("expected dead_letter_exchange: NAME (not empty)")
            return self
        if self.routing_key is None:
            raise ValueError(
                "expected routing_key: KEY on direction: out (with exchange: '' the name of "
                "the partner's queue)"
            )
        if self.queue is not None or "dead_letter_queue" in self.model_fields_set:
            raise ValueError(
                "found queue/dead_letter_queue, expected them only on direction: in "
                "(outbound publishes to exchange: with routing_key:)"
            )
        return self


# The HTTP transports (as2, http) live in config_http.py, which imports ConnectorBase and Secret
# from here: imported at the end, once those exist.
from edi_gateway.config_http import As2Connector, HttpConnector  # noqa: E402

# A discriminated union on `type`: add each new connector class here (`FolderConnector | ...`).
Connector = Annotated[
    FolderConnector
    | SftpConnector
    | ImapConnector
    | SmtpConnector
    | AmqpConnector
    | As2Connector
    | HttpConnector,
    Field(discriminator="type"),
]
