"""XML signatures in the UBL signature extension: signing, verifying, the partner settings,
the outbox signing what it queues and processing verifying what arrives (ADR 0021).

The interoperability proof with an independent implementation (xmlsec1) is in
tests/integration/test_signatures.py.
"""

from __future__ import annotations

import re
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import SignatureMethod
from signxml.signer import XMLSigner
from sqlalchemy import select

from edi_gateway.app import Gateway
from edi_gateway.config import Settings, load_config
from edi_gateway.errors import ConfigError, DocumentError, ErrorCode
from edi_gateway.outbound.outbox import Outgoing, signed
from edi_gateway.store.db import Store
from edi_gateway.store.schema import messages
from edi_gateway.transports.as2 import cms
from edi_gateway.ubl.namespaces import CAC, CBC, EXT, clark
from edi_gateway.ubl.signature import (
    DS,
    ENVELOPED,
    LOCATION,
    SAC,
    SBC,
    SigningKey,
    Verdict,
    sign_ubl,
    verify_ubl,
)
from edi_gateway.ubl.validate import validate_document
from tests import factory as f
from tests.keys import identity, write_identity
from tests.unit.support import make_settings, receive

SIGNATURE = LOCATION + clark(DS, "Signature")


@pytest.fixture(scope="module")
def us() -> cms.Keys:
    return identity("gateway")


@pytest.fixture(scope="module")
def them() -> cms.Keys:
    return identity("buyer")


def key(keys: cms.Keys) -> SigningKey:
    assert isinstance(keys.private_key, rsa.RSAPrivateKey)
    return SigningKey(keys.private_key, keys.certificate)


DOCUMENTS: dict[str, Callable[[], bytes]] = {
    "Order": lambda: f.order("PO-1"),
    "OrderResponse": lambda: f.order_response("R-1", "PO-1", "AP"),
    "OrderCancellation": lambda: f.order_cancellation("C-1", "PO-1"),
    "DespatchAdvice": lambda: f.despatch_advice("D-1", "PO-1", [("1", "5")]),
    "Invoice": lambda: f.invoice("I-1", "PO-1", [("1", "5", "10.00")]),
    "CreditNote": lambda: f.invoice("CN-1", "PO-1", [("1", "1", "10.00")], root="CreditNote"),
}


@pytest.mark.parametrize("root_name", sorted(DOCUMENTS))
def test_signed_documents_are_xsd_valid_and_verify(root_name: str, us: cms.Keys) -> None:
    payload = sign_ubl(DOCUMENTS[root_name](), key(us))
    validated = validate_document(payload, max_size=len(payload) + 1)  # XSD_INVALID raises
    root = validated.root
    assert validated.root_name == root_name
    assert root[0].tag == clark(EXT, "UBLExtensions")  # the first child, as the schema says
    extension = root[0][0]
    assert extension.findtext(clark(EXT, "ExtensionURI")) == ENVELOPED
    information = root.find(LOCATION.removesuffix("/"))
    assert information is not None
    referenced = information.findtext(clark(SBC, "ReferencedSignatureID"))
    assert referenced == f"urn:oasis:names:specification:ubl:signature:{root_name}"
    [head] = root.findall(clark(CAC, "Signature"))
    assert head.findtext(clark(CBC, "ID")) == referenced
    assert head.findtext(clark(CBC, "SignatureMethod")) == ENVELOPED
    signature = information.find(clark(DS, "Signature"))
    assert signature is not None
    [reference] = signature.iterfind(f".//{{{DS}}}Reference")
    assert reference.get("URI") == ""
    transforms = [t.get("Algorithm") for t in reference.iterfind(f".//{{{DS}}}Transform")]
    assert transforms == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ]
    method = signature.find(f".//{{{DS}}}SignatureMethod")
    assert method is not None
    assert method.get("Algorithm") == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert verify_ubl(payload, us.certificate, required=True) is Verdict.VERIFIED
    assert information.tag == clark(SAC, "SignatureInformation")


def test_an_indented_document_with_comments_signs_and_verifies(us: cms.Keys) -> None:
    lines = f.order("PO-1").decode().replace("><", ">\n  <").splitlines()
    lines.insert(3, "  <!-- a comment the signature covers -->")
    payload = "\n".join(lines).encode()
    signed_payload = sign_ubl(payload, key(us))
    assert b"<!-- a comment the signature covers -->" in signed_payload
    assert verify_ubl(signed_payload, us.certificate, required=True) is Verdict.VERIFIED
    validate_document(signed_payload, max_size=len(signed_payload) + 1)


def test_altered_content_fails(us: cms.Keys) -> None:
    payload = sign_ubl(f.order("PO-1"), key(us))
    assert b"<cbc:ID>PO-1</cbc:ID>" in payload
    for altered in (
        payload.replace(b"<cbc:ID>PO-1</cbc:ID>", b"<cbc:ID>PO-2</cbc:ID>"),
        payload.replace(b"Buyer AB", b"Buyer AC"),
        payload.replace(b"<cbc:ID>PO-1</cbc:ID>", b"<cbc:ID>PO-1</cbc:ID><!-- x --><?pi x?>"),
    ):
        assert altered != payload
        with pytest.raises(DocumentError) as caught:
            verify_ubl(altered, us.certificate, required=True)
        assert caught.value.code is ErrorCode.SIGNATURE_INVALID
        assert "Digest mismatch" in caught.value.message


def test_another_key_fails(us: cms.Keys, them: cms.Keys) -> None:
    payload = sign_ubl(f.order("PO-1"), key(them))
    with pytest.raises(DocumentError) as caught:
        verify_ubl(payload, us.certificate, required=True)
    assert caught.value.code is ErrorCode.SIGNATURE_INVALID


def test_a_shared_secret_signature_is_refused(us: cms.Keys) -> None:
    root = etree.fromstring(sign_ubl(f.order("PO-1"), key(us)))
    information = root.find(LOCATION.removesuffix("/"))
    assert information is not None
    information.remove(information[-1])
    etree.SubElement(information, clark(DS, "Signature"), Id="placeholder")
    hmac = XMLSigner(signature_algorithm=SignatureMethod.HMAC_SHA256)
    payload = etree.tostring(hmac.sign(root, key=b"a secret both sides know"))
    with pytest.raises(DocumentError) as caught:
        verify_ubl(payload, us.certificate, required=True)
    assert caught.value.code is ErrorCode.SIGNATURE_INVALID
    assert "HMAC_SHA256" in caught.value.message


def test_an_expired_certificate_fails(us: cms.Keys) -> None:
    old = identity("expired", days=-1, start_days=-3)
    payload = sign_ubl(f.order("PO-1"), key(old))
    with pytest.raises(DocumentError) as caught:
        verify_ubl(payload, old.certificate, required=True)
    assert caught.value.code is ErrorCode.SIGNATURE_INVALID
    assert "valid" in caught.value.message


def test_no_signature_is_missing_when_required_and_absent_otherwise(us: cms.Keys) -> None:
    payload = f.order("PO-1")
    assert verify_ubl(payload, us.certificate, required=False) is Verdict.ABSENT
    with pytest.raises(DocumentError) as caught:
        verify_ubl(payload, us.certificate, required=True)
    assert caught.value.code is ErrorCode.SIGNATURE_MISSING
    assert verify_ubl(b"a;b;c\n", us.certificate, required=False) is Verdict.ABSENT
    with pytest.raises(DocumentError) as caught:
        verify_ubl(b"a;b;c\n", us.certificate, required=True)
    assert caught.value.code is ErrorCode.SIGNATURE_MISSING


def _edit(payload: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(payload)
    change(root)
    return etree.tostring(root)


def test_signatures_out_of_place_partial_or_doubled_fail(us: cms.Keys) -> None:
    payload = sign_ubl(f.order("PO-1"), key(us))

    def moved(root: etree._Element) -> None:  # a signature right under the root element
        signature = root.find(SIGNATURE)
        assert signature is not None
        root.append(signature)

    def partial(root: etree._Element) -> None:  # a reference to one element only
        reference = root.find(f".//{{{DS}}}Reference")
        assert reference is not None
        reference.set("URI", "#line-1")

    def doubled(root: etree._Element) -> None:
        information = root.find(LOCATION.removesuffix("/"))
        assert information is not None
        information.getparent().append(etree.fromstring(etree.tostring(information)))  # type: ignore[union-attr]

    for change, expected in (
        (moved, "outside the UBL signature extension"),
        (partial, "expected exactly one reference to the whole document"),
        (doubled, "carries 2 signatures"),
    ):
        with pytest.raises(DocumentError) as caught:
            verify_ubl(_edit(payload, change), us.certificate, required=False)
        assert caught.value.code is ErrorCode.SIGNATURE_INVALID
        assert expected in caught.value.message


@pytest.mark.parametrize(
    ("pattern", "replacement", "expected"),
    [
        (rb"xmldsig-more#rsa-sha256", b"xmldsig-more#rsa-unknown", "Unrecognized SignatureMethod"),
        (rb"<ds:SignatureValue>[^<]*", b"<ds:SignatureValue>!!!notbase64", "base64Binary"),
        (rb"<ds:SignatureValue>[^<]*", b"<ds:SignatureValue>", "TypeError"),
        (rb"xmlenc#sha256", b"xmlenc#sha1", "verification failed"),
    ],
)
def test_malformed_signatures_are_invalid_never_a_crash(
    us: cms.Keys, pattern: bytes, replacement: bytes, expected: str
) -> None:
    payload = re.sub(pattern, replacement, sign_ubl(f.order("PO-1"), key(us)), count=1)
    with pytest.raises(DocumentError) as caught:
        verify_ubl(payload, us.certificate, required=True)
    assert caught.value.code is ErrorCode.SIGNATURE_INVALID
    assert expected in caught.value.message


def test_verifying_fetches_nothing(us: cms.Keys) -> None:
    """Neither a key to retrieve nor a reference to a URL is fetched: a listener on loopback
    sees no connection."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(0.2)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/key"
        root = etree.fromstring(sign_ubl(f.order("PO-1"), key(us)))
        key_info = root.find(f".//{{{DS}}}KeyInfo")
        assert key_info is not None
        etree.SubElement(key_info, clark(DS, "RetrievalMethod"), URI=url)  # KeyInfo is unsigned
        fetching = etree.tostring(root)
        assert verify_ubl(fetching, us.certificate, required=True) is Verdict.VERIFIED
        reference = root.find(f".//{{{DS}}}Reference")
        assert reference is not None
        reference.addnext(etree.fromstring(etree.tostring(reference)))
        reference.set("URI", url)
        with pytest.raises(DocumentError) as caught:
            verify_ubl(etree.tostring(root), us.certificate, required=True)
        assert caught.value.code is ErrorCode.SIGNATURE_INVALID
        with pytest.raises(TimeoutError):
            listener.accept()


def test_signing_again_replaces_the_signature_and_other_xml_is_left_alone(
    us: cms.Keys, them: cms.Keys
) -> None:
    by_them = sign_ubl(f.order("PO-1"), key(them))
    by_us = sign_ubl(by_them, key(us))
    root = etree.fromstring(by_us)
    assert len(root.findall(SIGNATURE)) == 1
    assert len(root.findall(clark(CAC, "Signature"))) == 1
    assert verify_ubl(by_us, us.certificate, required=True) is Verdict.VERIFIED
    validate_document(by_us, max_size=len(by_us) + 1)
    layout = b"<?xml version='1.0'?><orders><order id='PO-1'/></orders>"
    assert sign_ubl(layout, key(us)) == layout


@pytest.fixture
def config_with(tmp_path: Path, us: cms.Keys, them: cms.Keys) -> Callable[[str], Path]:
    """Writes gateway.yaml with one buyer partner and these YAML lines in it; keys/us.* and
    keys/them.* beside it."""
    write_identity(us, tmp_path / "keys", "us")
    write_identity(them, tmp_path / "keys", "them")

    def write(block: str) -> Path:
        config = tmp_path / "gateway.yaml"
        partner = textwrap.indent(textwrap.dedent(block).strip(), "    ")
        role = "" if "role:" in partner else "\n    role: buyer"
        config.write_text(
            "partners:\n  - id: buyer\n    name: Buyer AB\n"
            f"    endpoint: {{scheme: '0088', value: '7300010000001'}}\n{partner}{role}\n",
            encoding="utf-8",
        )
        return config

    return write


def test_config_reads_every_key_relative_to_the_file(
    config_with: Callable[[str], Path], tmp_path: Path, us: cms.Keys, them: cms.Keys
) -> None:
    settings = load_config(
        config_with(
            """
            signature:
              sign: true
              key: keys/us.key
              certificate: keys/us.pem
              verify: required
              partner_certificate: keys/them.pem
            """
        )
    )
    signature = settings.partners[0].signature
    assert signature is not None
    assert (signature.sign, signature.verify) == (True, "required")
    assert signature.key == tmp_path / "keys/us.key"
    assert signature.signing_key.certificate == us.certificate
    assert signature.partner_cert == them.certificate


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("signature: {sign: true, key: keys/us.key}", "sign: true needs key: and certificate:"),
        ("signature: {verify: if_present}", "verify: if_present needs partner_certificate:"),
        ("signature: {verify: always}", "'off', 'if_present' or 'required'"),
        (
            "signature: {verify: required, partner_certificate: keys/nowhere.pem}",
            "partner_certificate: cannot read",
        ),
        (
            "signature: {verify: required, partner_certificate: keys/us.key}",
            "partner_certificate is not a PEM certificate",
        ),
        (
            "signature: {sign: true, key: keys/us.key, certificate: keys/them.pem}",
            "is not the certificate of key",
        ),
        (
            "signature: {sign: true, key: keys/us.pem, certificate: keys/us.pem}",
            "key is not an unencrypted PEM private key",
        ),
        (
            "signature: {sign: true, key: keys/ec.key, certificate: keys/ec.pem}",
            "expected an RSA private key",
        ),
        (
            "validation: peppol\nsignature: {sign: true, key: keys/us.key, certificate: "
            "keys/us.pem}",
            "Peppol BIS documents forbid UBL extensions",
        ),
        (
            "role: both\nforward: {formats: [ubl, pdf], bundle: zip, every_minutes: 60}\n"
            "signature: {sign: true, key: keys/us.key, certificate: keys/us.pem}",
            "only UBL files sent as themselves are signed",
        ),
    ],
)
def test_config_problems_are_named(
    config_with: Callable[[str], Path], tmp_path: Path, block: str, expected: str
) -> None:
    write_identity(identity("ec", ec.SECP256R1()), tmp_path / "keys", "ec")
    with pytest.raises(ConfigError) as caught:
        load_config(config_with(block))
    assert expected in caught.value.message
    assert "partners[0]" in caught.value.message


def test_a_peppol_partner_may_verify_but_not_sign(config_with: Callable[[str], Path]) -> None:
    config = config_with(
        "validation: peppol\nsignature: {verify: if_present, partner_certificate: keys/them.pem}"
    )
    assert load_config(config).partners[0].validation == "peppol"


def _signing_settings(
    tmp_path: Path, us: cms.Keys, them: cms.Keys, **signature: object
) -> Settings:
    key_file, cert_file = write_identity(us, tmp_path / "keys", "us")
    _, their_cert = write_identity(them, tmp_path / "keys", "them")
    values = {
        "sign": True,
        "key": str(key_file),
        "certificate": str(cert_file),
        "verify": "off",
        "partner_certificate": str(their_cert),
        **signature,
    }
    return make_settings(tmp_path, buyer={"signature": values})


def test_the_outbox_signs_ubl_for_a_signing_partner_only(
    tmp_path: Path, us: cms.Keys, them: cms.Keys
) -> None:
    settings = _signing_settings(tmp_path, us, them)
    response = f.order_response("R-1", "PO-1", "AP")
    to_buyer = Outgoing("buyer", "to-buyer", "OrderResponse", "R-1", response)
    done = signed(to_buyer, settings)
    assert verify_ubl(done.payload, us.certificate, required=True) is Verdict.VERIFIED
    pdf = Outgoing("buyer", "to-buyer", "Order", "PO-1", b"%PDF-1.7", "pdf", "application/pdf")
    assert signed(pdf, settings) == pdf
    to_seller = Outgoing("seller", "to-buyer", "Order", "PO-1", f.order("PO-1"))
    assert signed(to_seller, settings) == to_seller


def _message(store: Store, message_id: int) -> tuple[str, str | None, str | None]:
    with store.connect() as conn:
        row = conn.execute(
            select(messages.c.state, messages.c.error_code, messages.c.error_detail).where(
                messages.c.id == message_id
            )
        ).one()
    return row.state, row.error_code, row.error_detail


@pytest.mark.parametrize("verify", ["required", "if_present"])
def test_processing_verifies_what_a_partner_sends(
    store: Store, tmp_path: Path, us: cms.Keys, them: cms.Keys, verify: str
) -> None:
    settings = _signing_settings(tmp_path, us, them, sign=False, verify=verify)
    gateway = Gateway(settings, store)
    good = receive(gateway, sign_ubl(f.order("PO-1"), key(them)))
    assert _message(store, good) == ("processed", None, None)
    forged = receive(gateway, sign_ubl(f.order("PO-2"), key(us)))
    state, code, detail = _message(store, forged)
    assert (state, code) == ("failed", "SIGNATURE_INVALID")
    assert detail is not None
    assert "partner 'buyer'" in detail and "CN=buyer" in detail and "them.pem" in detail
    plain = receive(gateway, f.order("PO-3"))
    if verify == "required":
        state, code, detail = _message(store, plain)
        assert (state, code) == ("failed", "SIGNATURE_MISSING")
        assert detail is not None and "partner 'buyer' must sign" in detail
    else:
        assert _message(store, plain) == ("processed", None, None)
    seller = receive(gateway, f.order_response("R-9", "PO-1", "AP"))  # not checked: verify off
    assert _message(store, seller)[0] == "processed"
