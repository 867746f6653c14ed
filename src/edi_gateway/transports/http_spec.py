"""Connector model of plain HTTP(S) (``type: http``; the transport is :mod:`.http`), and
what it shares with AS2 (:mod:`.as2_spec`): where an inbound server listens, where outbound POSTs.

Inbound, both are servers the gateway runs (partners push); outbound, both POST to the partner.
A light module: loading a config imports it, not the HTTP client or server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from edi_gateway.config.base import ConfigPath, ConnectorBase, Secret, Slug, _Model

__all__ = ["HttpConnector", "HttpPartner", "PushCredential", "credential_refs"]


class _Listen(ConnectorBase):
    """Where an inbound server listens, and its TLS certificate."""

    host: str = "127.0.0.1"
    """Inbound: the address to listen on (``0.0.0.0`` for every interface)."""
    port: int = Field(default=0, ge=0, le=65535)
    """Inbound: the TCP port (0: any free port, for tests)."""
    url_path: str = Field(default="/", pattern=r"^/[^\s?#]*$")
    """Inbound: the URL path partners POST to (``/as2``); other paths answer 404."""
    tls_certificate: ConfigPath | None = None
    """Inbound: serve HTTPS with this PEM certificate (chain) ..."""
    tls_private_key: Secret | None = None
    """... and this PEM private key (``{file: PATH}`` / ``{env: NAME}``)."""
    max_size_mb: float | None = Field(default=None, gt=0)
    """Inbound: refuse larger requests unread (default: ``intake.max_size_mb``)."""
    workers: int = Field(default=4, ge=1, le=64)
    """Inbound: requests whose body is read and handled at once; the others wait their turn
    (each holds at most ``max_size_mb`` of body in memory)."""
    backlog: int = Field(default=1024, ge=16, le=65535)
    """Inbound: connections the kernel queues before they are accepted (capped by
    ``net.core.somaxconn``)."""
    max_connections: int = Field(default=256, ge=1, le=65535)
    """Inbound: open connections at most (each is a file descriptor); more wait in the backlog.
    Kept below the process's open-file limit."""
    header_seconds: float = Field(default=10, gt=0, le=300)
    """Inbound: the TLS handshake and the request's headers must arrive within this; it is
    also the grace before ``min_bytes_per_second`` applies to the body."""
    read_seconds: float = Field(default=300, gt=0, le=3600)
    """Inbound: one request (headers and body) must arrive within this, else it is cut off."""
    min_bytes_per_second: int = Field(default=10240, ge=0, le=1 << 30)
    """Inbound: a body that arrives slower than this on average (after ``header_seconds``) is
    cut off; 0: only ``read_seconds`` applies."""
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """Outbound: where to POST (``https://partner.example/as2``)."""
    ca_file: ConfigPath | None = None
    """Outbound over HTTPS: trust this PEM CA bundle (default: the system's)."""
    timeout_seconds: float = Field(default=60, gt=0, le=3600)
    """Outbound: seconds to wait for the partner's answer."""

    @property
    def exchange_seconds(self) -> float:
        """The I/O timeout (``ConnectorBase.exchange_seconds``)."""
        return self.timeout_seconds

    @model_validator(mode="after")
    def _listen_or_post(self) -> _Listen:
        if self.direction == "out" and self.url is None:
            raise ValueError("expected url: https://... on direction: out (where to POST)")
        if self.direction == "in" and self.url is not None:
            raise ValueError("found url, expected it only on direction: out")
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ValueError("expected tls_certificate and tls_private_key together (or neither)")
        if self.header_seconds > self.read_seconds:
            raise ValueError(
                f"found header_seconds: {self.header_seconds} over read_seconds: "
                f"{self.read_seconds}, expected the headers' deadline within the request's"
            )
        return self


class PushCredential(_Model):
    """Who may push to an inbound AS2 or HTTP connector: a partner, and for whom it may send."""

    partner: Slug
    """The ``partners[].id`` it is: the documents it pushes must have that partner as their
    sender (or one of ``send_for``); any other is refused with 403 ``SENDER_MISMATCH``."""
    send_for: list[Slug] = Field(default_factory=list)
    """Other ``partners[].id`` whose documents it may push (a service provider sending for
    its clients)."""


def credential_refs(credentials: Sequence[PushCredential]) -> list[tuple[str, str]]:
    """(where, partner id) of every partner inbound credentials name, for the config check."""
    refs: list[tuple[str, str]] = []
    for j, c in enumerate(credentials):
        refs.append((f"partners[{j}].partner", c.partner))
        refs += [(f"partners[{j}].send_for[{k}]", o) for k, o in enumerate(c.send_for)]
    return refs


class HttpPartner(PushCredential):
    """A partner allowed to POST plain XML, with HTTP basic auth or a bearer token."""

    username: str | None = None
    """Basic auth: the user name (with ``password``)."""
    password: Secret | None = None
    token: Secret | None = None
    """Bearer auth: the token (instead of username / password)."""

    @model_validator(mode="after")
    def _one_method(self) -> HttpPartner:
        basic = self.username is not None and self.password is not None
        if basic == (self.token is not None) or (self.username is None) != (self.password is None):
            raise ValueError("expected either username + password: {env: ...}, or token: {...}")
        return self


class HttpConnector(_Listen):
    """AS2-like plain HTTP(S). Inbound: an endpoint partners POST XML to with basic or bearer
    auth. Outbound: POST the document with our credentials for the partner."""

    type: Literal["http"]
    partners: list[HttpPartner] = Field(default_factory=list)
    """Inbound: whose credentials are accepted; anything else is refused (401)."""
    username: str | None = None
    """Outbound, basic auth: the user name (with ``password``)."""
    password: Secret | None = None
    token: Secret | None = None
    """Outbound, bearer auth: the token."""
    require_tls: bool = True
    """Refuse to run (inbound) or send (outbound) credentials over plain http://."""

    def partner_refs(self) -> list[tuple[str, str]]:
        """Every partner id the inbound credentials name (``ConnectorBase.partner_refs``)."""
        return credential_refs(self.partners)

    @model_validator(mode="after")
    def _http_by_direction(self) -> HttpConnector:
        if self.direction == "in":
            if not self.partners:
                raise ValueError("expected partners: [{partner, token | username + password}]")
            if self.require_tls and self.tls_certificate is None:
                raise ValueError(
                    "expected tls_certificate + tls_private_key (credentials travel only over "
                    "TLS), or require_tls: false behind a TLS-terminating proxy"
                )
            return self
        if (self.username is None) != (self.password is None) or (
            self.password is not None and self.token is not None
        ):
            raise ValueError("expected either username + password, or token (or neither)")
        if self.require_tls and self.url is not None and self.url.startswith("http://"):
            raise ValueError("expected an https:// url (or require_tls: false)")
        return self
