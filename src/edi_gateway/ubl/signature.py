"""Enveloped XML signatures in the UBL 2.1 signature extension (signxml): sign and verify.

Where the signature goes (UBL 2.1, "UBL Digital Signatures"; the schemas
UBL-CommonSignatureComponents, -SignatureAggregateComponents, -SignatureBasicComponents)::

    ext:UBLExtensions/ext:UBLExtension
        ext:ExtensionURI       urn:oasis:names:specification:ubl:dsig:enveloped
        ext:ExtensionContent/sig:UBLDocumentSignatures/sac:SignatureInformation
            cbc:ID                   urn:oasis:names:specification:ubl:signature:1
            sbc:ReferencedSignatureID urn:oasis:names:specification:ubl:signature:<Type>
            ds:Signature             (enveloped: Reference URI="" with the enveloped-signature
                                      transform, exclusive c14n, RSA-SHA256, SHA-256 digest,
                                      the signer's certificate in KeyInfo/X509Data)
    cac:Signature (where the document type's schema puts it)
        cbc:ID                 urn:oasis:names:specification:ubl:signature:<Type>
        cbc:SignatureMethod    urn:oasis:names:specification:ubl:dsig:enveloped

A verified signature covers the whole document but itself: exactly one reference, to ``""``.
The key that counts is the partner's certificate from the configuration, never one the
document carries. Parsing resolves no entity and touches no network; signxml is handed the
expected certificate, so it loads no trust store and fetches nothing.

No store and no I/O here: keys and certificates come in as PEM bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.ubl.namespaces import CAC, CBC, EXT, clark, maindoc_ns
from edi_gateway.ubl.parse import hardened_parser, parse
from edi_gateway.ubl.schemas import default_schema_set

DS = "http://www.w3.org/2000/09/xmldsig#"
SIG = "urn:oasis:names:specification:ubl:schema:xsd:CommonSignatureComponents-2"
SAC = "urn:oasis:names:specification:ubl:schema:xsd:SignatureAggregateComponents-2"
SBC = "urn:oasis:names:specification:ubl:schema:xsd:SignatureBasicComponents-2"
ENVELOPED = "urn:oasis:names:specification:ubl:dsig:enveloped"
"""ExtensionURI and cac:Signature/cbc:SignatureMethod of a plain (not XAdES) enveloped
signature."""
SIGNATURE_ID = "urn:oasis:names:specification:ubl:signature:1"
LOCATION = "/".join(
    (
        ".",
        clark(EXT, "UBLExtensions"),
        clark(EXT, "UBLExtension"),
        clark(EXT, "ExtensionContent"),
        clark(SIG, "UBLDocumentSignatures"),
        clark(SAC, "SignatureInformation"),
        "",
    )
)
"""Where the ds:Signature of a UBL document is (an ElementPath prefix, for signxml too)."""
_DS_SIGNATURE = clark(DS, "Signature")
ACCEPTED_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)
"""Signature algorithms a partner may sign with: public-key ones on SHA-2 (no SHA-1, no
shared-secret HMAC)."""


class Verdict(Enum):
    """What :func:`verify_ubl` found: a signature that verifies, or none (allowed)."""

    VERIFIED = "verified"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """Our private key and the certificate that goes with it (sent in every signature)."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate


def load_certificate(pem: bytes, what: str = "certificate") -> x509.Certificate:
    """A certificate from PEM bytes; ValueError saying what is wrong otherwise."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ValueError(f"{what} is not a PEM certificate ({exc})") from exc


def load_signing_key(key_pem: bytes, certificate_pem: bytes) -> SigningKey:
    """Our RSA private key (PEM, unencrypted) and its certificate; ValueError when either
    does not load, the key is not RSA or the certificate is not the key's."""
    certificate = load_certificate(certificate_pem)
    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"key is not an unencrypted PEM private key ({str(exc).splitlines()[0]})"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"key is a {type(key).__name__}, expected an RSA private key")
    if key.public_key() != certificate.public_key():
        raise ValueError(
            f"certificate ({certificate.subject.rfc4514_string()}) is not the certificate of key"
        )
    return SigningKey(key, certificate)


def subject(certificate: x509.Certificate) -> str:
    """The certificate's subject as text (``CN=...,O=...``), for messages."""
    return certificate.subject.rfc4514_string()


def sign_ubl(payload: bytes, key: SigningKey) -> bytes:
    """``payload`` with an enveloped signature in its UBL signature extension and the
    ``cac:Signature`` that names it (UTF-8, with an XML declaration) when it is a UBL 2.1
    document; any other XML (a supplier's own layout) comes back unchanged.

    A signature the document already carries (a buyer's order forwarded as received) is
    replaced: it would not survive the additions, and the gateway vouches for what it sends.
    """
    root = parse(payload, max_size=len(payload) + 1, keep_markup=True)
    name = etree.QName(root)
    root_name = name.localname
    schemas = default_schema_set()
    if root_name not in schemas.root_names() or name.namespace != maindoc_ns(root_name):
        return payload
    _drop_signatures(root)
    _add_extension(root, root_name)
    _add_signature_reference(root, root_name)
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(root, key=key.private_key, cert=[key.certificate])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def without_signatures(root: etree._Element) -> bytes:
    """A tree parsed with ``keep_markup``, without the UBL signature extensions and the
    ``cac:Signature`` they name (changed in place), as bytes: the document the signature
    covers, as the official rules judge it (a signature is the envelope a non-Peppol partner
    asked for)."""
    _drop_signatures(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _drop_signatures(root: etree._Element) -> None:
    """Remove the UBL signature extensions and the ``cac:Signature`` elements they name."""
    extensions = root.find(clark(EXT, "UBLExtensions"))
    if extensions is None:
        return
    content = f"{clark(EXT, 'ExtensionContent')}/{clark(SIG, 'UBLDocumentSignatures')}"
    named: set[str | None] = set()
    for extension in extensions.findall(clark(EXT, "UBLExtension")):
        signatures = extension.find(content)
        if signatures is not None:
            named.update(i.findtext(clark(SBC, "ReferencedSignatureID")) for i in signatures)
            extensions.remove(extension)
    if len(extensions) == 0:
        root.remove(extensions)
    for element in root.findall(clark(CAC, "Signature")):
        if element.findtext(clark(CBC, "ID")) in named:
            root.remove(element)


def _add_extension(root: etree._Element, root_name: str) -> None:
    """The signature extension, a placeholder ds:Signature in it (signxml fills it in)."""
    extensions = root.find(clark(EXT, "UBLExtensions"))
    if extensions is None:
        extensions = etree.Element(clark(EXT, "UBLExtensions"), nsmap={"ext": EXT})
        extensions.text = root.text  # keep an indented document indented
        root.insert(0, extensions)
    extension = etree.SubElement(extensions, clark(EXT, "UBLExtension"))
    etree.SubElement(extension, clark(EXT, "ExtensionURI")).text = ENVELOPED
    content = etree.SubElement(extension, clark(EXT, "ExtensionContent"))
    nsmap = {"sig": SIG, "sac": SAC, "sbc": SBC, "cbc": CBC, "ds": DS}
    signatures = etree.SubElement(content, clark(SIG, "UBLDocumentSignatures"), nsmap=nsmap)
    information = etree.SubElement(signatures, clark(SAC, "SignatureInformation"))
    etree.SubElement(information, clark(CBC, "ID")).text = SIGNATURE_ID
    etree.SubElement(information, clark(SBC, "ReferencedSignatureID")).text = _reference(root_name)
    etree.SubElement(information, _DS_SIGNATURE, Id="placeholder")


def _add_signature_reference(root: etree._Element, root_name: str) -> None:
    """``cac:Signature`` at the place the document type's schema gives it."""
    order = default_schema_set().child_order(root_name)
    after = set(order[order.index(clark(CAC, "Signature")) :])
    element = etree.Element(clark(CAC, "Signature"))
    etree.SubElement(element, clark(CBC, "ID")).text = _reference(root_name)
    etree.SubElement(element, clark(CBC, "SignatureMethod")).text = ENVELOPED
    following = next((child for child in root if child.tag in after), None)
    if following is None:
        root.append(element)
        return
    before = following.getprevious()
    element.tail = root.text if before is None else before.tail  # the document's indentation
    following.addprevious(element)


def _reference(root_name: str) -> str:
    return f"urn:oasis:names:specification:ubl:signature:{root_name}"


def verify_ubl(payload: bytes, certificate: x509.Certificate, *, required: bool) -> Verdict:
    """Check the UBL signature of ``payload`` (the bytes as received) against ``certificate``.

    ``VERIFIED`` when the signature in the UBL signature extension verifies with that
    certificate's key over the whole document; ``ABSENT`` when there is no signature and none
    is ``required``. Raises ``DocumentError`` with ``SIGNATURE_MISSING`` (none, but required)
    or ``SIGNATURE_INVALID`` (saying what failed) otherwise.
    """
    try:
        root = parse(payload, max_size=len(payload) + 1, keep_markup=True)
    except DocumentError as exc:
        if not required:
            return Verdict.ABSENT
        raise _missing(
            f"the message cannot be read as XML ({exc.code}), so it carries no XML signature"
        ) from exc
    found = root.findall(LOCATION + _DS_SIGNATURE)
    if not found:
        if root.find(".//" + _DS_SIGNATURE) is not None:
            raise _invalid(
                "a ds:Signature is outside the UBL signature extension "
                "(ext:UBLExtensions/.../sig:UBLDocumentSignatures/sac:SignatureInformation)"
            )
        if required:
            raise _missing("the document carries no signature in its UBL signature extension")
        return Verdict.ABSENT
    if len(found) > 1:
        raise _invalid(f"the document carries {len(found)} signatures, expected one")
    references = found[0].findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    uris = [reference.get("URI") for reference in references]
    if uris != [""]:
        raise _invalid(
            f"the signature references {uris or 'nothing'}, expected exactly one reference to "
            'the whole document (URI="")'
        )
    config = SignatureConfiguration(
        location=LOCATION, expect_references=1, signature_methods=ACCEPTED_METHODS
    )
    try:
        XMLVerifier().verify(
            root,
            x509_cert=certificate,
            parser=hardened_parser(keep_markup=True),
            expect_config=config,
        )
    except (SignXMLException, ValueError, TypeError, etree.LxmlError) as exc:
        # hostile input reaches signxml here: whatever it refuses with is the reason
        reason = str(exc).splitlines()[0].strip().rstrip(":") if str(exc).strip() else "refused"
        raise _invalid(f"{reason} ({type(exc).__name__})") from exc
    return Verdict.VERIFIED


def _missing(text: str) -> DocumentError:
    return DocumentError(ErrorCode.SIGNATURE_MISSING, text)


def _invalid(text: str) -> DocumentError:
    return DocumentError(ErrorCode.SIGNATURE_INVALID, text)
