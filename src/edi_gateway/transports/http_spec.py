"""Connector models of the HTTP transports: AS2 (``type: as2``) and plain HTTP (``type: http``).

:mod:`edi_gateway.config.connectors` adds them to its ``Connector`` union.
Inbound, both are servers the gateway runs (partners push); outbound, both POST to the partner.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edi_gateway.config.base import ConfigPath, ConnectorBase, Secret, Slug, _Model

__all__ = ["As2Connector", "As2Partner", "HttpConnector", "HttpPartner"]


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
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """Outbound: where to POST (``https://partner.example/as2``)."""
    ca_file: ConfigPath | None = None
    """Outbound over HTTPS: trust this PEM CA bundle (default: the system's)."""
    timeout_seconds: float = Field(default=60, gt=0, le=3600)
    """Outbound: seconds to wait for the partner's answer."""

    @model_validator(mode="after")
    def _listen_or_post(self) -> _Listen:
        if self.direction == "out" and self.url is None:
            raise ValueError("expected url: https://... on direction: out (where to POST)")
        if self.direction == "in" and self.url is not None:
            raise ValueError("found url, expected it only on direction: out")
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ValueError("expected tls_certificate and tls_private_key together (or neither)")
        return self


class As2Partner(_Model):
    """A trading partner allowed to send over AS2, known by its AS2 id."""

    as2_id: str = Field(min_length=1, max_length=128)
    """Its AS2-From value."""
    partner: Slug | None = None
    """The ``partners[].id`` it is (for the record; documents are matched by their parties)."""
    certificate: ConfigPath
    """Its PEM (or DER) certificate: checks its signatures, encrypts MDN-less replies."""
    require_signed: bool = True
    require_encrypted: bool = True


class As2Connector(_Listen):
    """AS2 (RFC 4130). Inbound: an HTTP(S) endpoint that receives, answers with an MDN.
    Outbound: signed, encrypted (optionally compressed) POSTs whose MDN is checked."""

    type: Literal["as2"]
    as2_id: str = Field(min_length=1, max_length=128)
    """Our AS2 id (AS2-To of what we receive, AS2-From of what we send)."""
    certificate: ConfigPath
    """Our PEM certificate (partners encrypt to it and check our signatures with it)."""
    private_key: Secret
    """Our unencrypted PEM private key."""
    partners: list[As2Partner] = Field(default_factory=list)
    """Inbound: who may send; anyone else is refused (MDN unknown-trading-partner)."""
    partner_as2_id: str | None = Field(default=None, min_length=1, max_length=128)
    """Outbound: the partner's AS2 id (AS2-To)."""
    partner_certificate: ConfigPath | None = None
    """Outbound: the partner's certificate (encrypt to it, check its MDN signatures)."""
    sign: bool = True
    """Outbound: sign messages (multipart/signed, detached CMS)."""
    encrypt: bool = True
    """Outbound: encrypt messages to ``partner_certificate`` (CMS enveloped-data)."""
    compress: bool = False
    """Outbound: compress before signing (RFC 5402 compressed-data)."""
    digest: Literal["sha256", "sha384", "sha512", "sha1"] = "sha256"
    """Outbound: the signature digest and the MIC algorithm asked of the receipt. ``sha1`` is
    weak (collisions are practical): only for an old partner that reads nothing else."""
    cipher: Literal["aes256", "aes192", "aes128", "3des"] = "aes256"
    """Outbound: the content cipher (CBC mode; the content key travels RSA-encrypted). ``3des``
    (des-ede3-cbc) is legacy: only for a partner that cannot decrypt AES. Inbound, every one
    of these (and AES-GCM) is decrypted whatever this says."""
    mdn: Literal["sync", "async", "none"] = "sync"
    """Outbound: ask for a receipt on the same connection (sync), later at ``mdn_url``
    (async), or not at all."""
    mdn_signed: bool = True
    """Outbound: ask for a signed receipt (and refuse an unsigned one)."""
    mdn_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """Outbound, mdn: async: where the partner posts the receipt (an inbound AS2 connector of
    this gateway with the same ``mdn_folder``)."""
    mdn_folder: ConfigPath | None = None
    """Where async receipts are kept until the sender picks them up (both connectors)."""
    mdn_wait_seconds: float = Field(default=300, gt=0, le=86400)
    """Outbound, mdn: async: a delivery without its receipt after this long is failed."""

    @model_validator(mode="after")
    def _as2_by_direction(self) -> As2Connector:
        if self.direction == "in":
            if not self.partners:
                raise ValueError("expected partners: [{as2_id, certificate}] on direction: in")
            return self
        if self.partner_as2_id is None or self.partner_certificate is None:
            raise ValueError("expected partner_as2_id and partner_certificate on direction: out")
        if self.mdn == "async" and (self.mdn_url is None or self.mdn_folder is None):
            raise ValueError("expected mdn_url and mdn_folder with mdn: async")
        return self


class HttpPartner(_Model):
    """A partner allowed to POST plain XML, with HTTP basic auth or a bearer token."""

    partner: Slug
    """The ``partners[].id`` it is."""
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
