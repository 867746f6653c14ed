"""Connector model of AS2 (``type: as2``, RFC 4130); the transport is :mod:`.as2`.

A light module: loading a config imports it (and :mod:`.http_spec`, whose listen / POST
settings it shares), not cryptography.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edi_gateway.config.base import ConfigPath, Secret
from edi_gateway.transports.http_spec import PushCredential, _Listen, credential_refs

__all__ = ["As2Connector", "As2Partner"]


class As2Partner(PushCredential):
    """A trading partner allowed to send over AS2, known by its AS2 id (and ``partner``: the
    ``partners[].id`` it is, which the documents it sends must come from)."""

    as2_id: str = Field(min_length=1, max_length=128)
    """Its AS2-From value."""
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

    def partner_refs(self) -> list[tuple[str, str]]:
        """Every partner id the inbound partners name (``ConnectorBase.partner_refs``)."""
        return credential_refs(self.partners)

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
