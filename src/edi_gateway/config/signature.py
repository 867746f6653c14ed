"""A partner's ``signature:`` settings: sign what we send it, verify what it sends us.

Paths are relative to gateway.yaml. Every file named is loaded when the configuration is
(a missing file, a key that is not RSA or a certificate that is not the key's stops the
gateway with the key path and the reason). See docs/adr/0021-xml-signatures.md.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import model_validator

from edi_gateway.config.base import ConfigPath, _Model
from edi_gateway.config.profiles import ForwardProfile

if TYPE_CHECKING:  # cryptography and signxml are imported only when a partner signs
    from cryptography import x509

    from edi_gateway.ubl.signature import SigningKey

PEPPOL_REFUSAL = (
    "signature.sign: found true on a partner with validation: peppol, expected false: Peppol "
    "BIS documents forbid UBL extensions (ext:UBLExtensions), so a signature cannot be "
    "embedded in them"
)

ZIP_REFUSAL = (
    "signature.sign: found true on a supplier whose forward profile sends UBL in zip bundles, "
    "expected bundle: none (or no ubl format): only UBL files sent as themselves are signed"
)


class SignatureSettings(_Model):
    """XML signatures in the UBL signature extension, per partner."""

    sign: bool = False
    """Sign every UBL document sent to this partner (enveloped, RSA-SHA256)."""
    key: ConfigPath | None = None
    """Our PEM private key (RSA, unencrypted); needed with ``sign``."""
    certificate: ConfigPath | None = None
    """Our PEM certificate, the key's; sent in each signature. Needed with ``sign``."""
    verify: Literal["off", "if_present", "required"] = "off"
    """Documents from this partner: not checked, checked when signed, or refused unsigned."""
    partner_certificate: ConfigPath | None = None
    """The partner's PEM certificate: the only key its signatures are checked with."""

    @model_validator(mode="after")
    def _complete_and_loadable(self) -> SignatureSettings:
        problems: list[str] = []
        if self.sign and (self.key is None or self.certificate is None):
            problems.append("sign: true needs key: and certificate: (PEM files)")
        if self.verify != "off" and self.partner_certificate is None:
            problems.append(f"verify: {self.verify} needs partner_certificate: (a PEM file)")
        if problems:
            raise ValueError("; ".join(problems))
        if self.sign:
            _ = self.signing_key  # loaded now: a bad file stops the configuration
        if self.verify != "off":
            _ = self.partner_cert
        return self

    @cached_property
    def signing_key(self) -> SigningKey:
        """Our key and certificate, loaded (ValueError naming the file when they do not)."""
        from edi_gateway.ubl.signature import load_signing_key

        assert self.key is not None and self.certificate is not None
        try:
            return load_signing_key(_read(self.key, "key"), _read(self.certificate, "certificate"))
        except ValueError as exc:
            raise ValueError(f"{exc} ({self.key}, {self.certificate})") from exc

    @cached_property
    def partner_cert(self) -> x509.Certificate:
        """The partner's certificate, loaded (ValueError naming the file when it does not)."""
        from edi_gateway.ubl.signature import load_certificate

        assert self.partner_certificate is not None
        what = "partner_certificate"
        try:
            return load_certificate(_read(self.partner_certificate, what), what)
        except ValueError as exc:
            raise ValueError(f"{exc} ({self.partner_certificate})") from exc

    def check(self, partner: str, payload: bytes) -> None:
        """Verify the signature of ``payload`` (a message from ``partner``, as stored) when
        ``verify`` asks for it; DocumentError with SIGNATURE_MISSING or SIGNATURE_INVALID
        naming the partner, the certificate and what failed."""
        if self.verify == "off":
            return
        from edi_gateway.errors import DocumentError, ErrorCode
        from edi_gateway.ubl.signature import subject, verify_ubl

        try:
            verify_ubl(payload, self.partner_cert, required=self.verify == "required")
        except DocumentError as exc:
            if exc.code is ErrorCode.SIGNATURE_MISSING:
                text = f"partner {partner!r} must sign (signature.verify: required): {exc.message}"
            else:
                text = (
                    f"the signature of partner {partner!r} does not verify with its "
                    f"partner_certificate {self.partner_certificate} "
                    f"({subject(self.partner_cert)}): {exc.message}"
                )
            raise DocumentError(exc.code, text) from exc


VERIFY_REFUSAL = (
    "signature.verify: required cannot be used with validation: peppol: Peppol BIS documents "
    "forbid UBL extensions, so a signed document always fails the Peppol rules and an unsigned "
    "one cannot pass. Use validation: xsd for a partner that signs, or verify: if_present"
)


def signing_refused(
    signature: SignatureSettings | None, validation: str, forward: ForwardProfile | None
) -> str | None:
    """Why ``signature`` cannot be the settings of a partner with this ``validation`` and
    ``forward`` profile, or None."""
    if signature is None:
        return None
    if validation == "peppol" and signature.verify == "required":
        return VERIFY_REFUSAL
    if not signature.sign:
        return None
    if validation == "peppol":
        return PEPPOL_REFUSAL
    if forward is not None and forward.bundle == "zip" and "ubl" in forward.formats:
        return ZIP_REFUSAL
    return None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path}: {exc.strerror}") from exc
