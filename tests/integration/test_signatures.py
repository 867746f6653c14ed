"""XML signatures against an independent implementation, and through the real ``run``.

xmlsec1 (Debian ``xmlsec1``, libxmlsec1 on OpenSSL, nothing of signxml) verifies what the
gateway signs and signs, from a template, what the gateway verifies. Then a buyer whose
settings say ``verify: required`` and ``sign: true`` sends signed, unsigned and altered orders
through ``edi-gateway run --once``: only the signed one is processed, and the Order Response
the gateway sends back lands in the outbound folder signed (ADR 0021).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.transports.as2 import cms
from edi_gateway.ubl.signature import SigningKey, Verdict, sign_ubl, verify_ubl
from edi_gateway.ubl.validate import validate_document
from tests import factory as f
from tests.integration.conftest import Project
from tests.keys import identity, write_identity
from tests.servers import debian_command

# A plain enveloped UBL signature as a template for ``xmlsec1 --sign``, written here by hand,
# not by the gateway: inclusive c14n and SHA-512 (the gateway itself signs with exclusive c14n
# and SHA-256), indented, the certificate filled in by xmlsec1.
EXTENSION = """
  <ext:UBLExtensions
      xmlns:ext="urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2">
    <ext:UBLExtension>
      <ext:ExtensionURI>urn:oasis:names:specification:ubl:dsig:enveloped</ext:ExtensionURI>
      <ext:ExtensionContent>
        <sig:UBLDocumentSignatures
            xmlns:sig="urn:oasis:names:specification:ubl:schema:xsd:CommonSignatureComponents-2"
            xmlns:sac="urn:oasis:names:specification:ubl:schema:xsd:SignatureAggregateComponents-2"
            xmlns:sbc="urn:oasis:names:specification:ubl:schema:xsd:SignatureBasicComponents-2">
          <sac:SignatureInformation>
            <cbc:ID>urn:oasis:names:specification:ubl:signature:1</cbc:ID>
            <sbc:ReferencedSignatureID>urn:oasis:names:specification:ubl:signature:Order</sbc:ReferencedSignatureID>
            <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="buyer-signature">
              <ds:SignedInfo>
                <ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>
                <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"/>
                <ds:Reference URI="">
                  <ds:Transforms>
                    <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
                  </ds:Transforms>
                  <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha512"/>
                  <ds:DigestValue></ds:DigestValue>
                </ds:Reference>
              </ds:SignedInfo>
              <ds:SignatureValue></ds:SignatureValue>
              <ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo>
            </ds:Signature>
          </sac:SignatureInformation>
        </sig:UBLDocumentSignatures>
      </ext:ExtensionContent>
    </ext:UBLExtension>
  </ext:UBLExtensions>
"""
HEAD_SIGNATURE = (
    "<cac:Signature><cbc:ID>urn:oasis:names:specification:ubl:signature:Order</cbc:ID>"
    "<cbc:SignatureMethod>urn:oasis:names:specification:ubl:dsig:enveloped</cbc:SignatureMethod>"
    "</cac:Signature>"
)


def xmlsec1(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [debian_command("xmlsec1"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def xmlsec1_verifies(document: Path, trusted: Path) -> subprocess.CompletedProcess[str]:
    """``xmlsec1 --verify`` trusting only ``trusted``, over the whole document only."""
    return xmlsec1(
        "--verify",
        "--enabled-reference-uris",
        "empty",
        "--enabled-key-data",
        "x509",
        "--trusted-pem",
        trusted,
        document,
    )


def xmlsec1_signs(order: bytes, key: Path, cert: Path, folder: Path) -> bytes:
    """``order`` (a factory Order) signed by xmlsec1 from the template above."""
    text = order.decode()
    head = text.index("<cbc:CustomizationID>")
    text = text[:head] + EXTENSION + text[head:]
    text = text.replace("<cac:BuyerCustomerParty>", HEAD_SIGNATURE + "<cac:BuyerCustomerParty>")
    template, out = folder / "template.xml", folder / "signed-by-xmlsec1.xml"
    template.write_text(text, encoding="utf-8")
    done = xmlsec1("--sign", "--privkey-pem", f"{key},{cert}", "--output", out, template)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def signing_key(keys: cms.Keys) -> SigningKey:
    assert isinstance(keys.private_key, rsa.RSAPrivateKey)
    return SigningKey(keys.private_key, keys.certificate)


@pytest.fixture(scope="module")
def pair() -> tuple[cms.Keys, cms.Keys]:
    return identity("gateway"), identity("buyer")


def test_xmlsec1_verifies_what_we_sign(tmp_path: Path, pair: tuple[cms.Keys, cms.Keys]) -> None:
    us, them = pair
    _, our_cert = write_identity(us, tmp_path, "us")
    _, their_cert = write_identity(them, tmp_path, "them")
    for name, document in (
        ("order", f.order("PO-1", f.items(5))),
        ("invoice", f.invoice("I-1", "PO-1", [("1", "5", "10.00")])),
    ):
        payload = sign_ubl(document, signing_key(us))
        signed, altered = tmp_path / f"{name}.xml", tmp_path / f"{name}-altered.xml"
        signed.write_bytes(payload)
        altered.write_bytes(payload.replace(b"<cbc:ID>", b"<cbc:ID>X", 1))
        done = xmlsec1_verifies(signed, our_cert)
        assert done.returncode == 0 and "OK" in done.stdout + done.stderr, done.stderr
        assert xmlsec1_verifies(altered, our_cert).returncode != 0
        assert xmlsec1_verifies(signed, their_cert).returncode != 0  # another trusted key


def test_we_verify_what_xmlsec1_signs(tmp_path: Path, pair: tuple[cms.Keys, cms.Keys]) -> None:
    us, them = pair
    key, cert = write_identity(them, tmp_path, "them")
    payload = xmlsec1_signs(f.order("PO-7", f.items(4)), key, cert, tmp_path)
    assert b"<ds:SignatureValue>" in payload and b"<ds:SignatureValue></" not in payload
    validate_document(payload, max_size=len(payload) + 1)
    assert verify_ubl(payload, them.certificate, required=True) is Verdict.VERIFIED
    for certificate, altered in (
        (them.certificate, payload.replace(b">PO-7<", b">PO-8<")),
        (us.certificate, payload),
    ):
        with pytest.raises(DocumentError) as caught:
            verify_ubl(altered, certificate, required=True)
        assert caught.value.code is ErrorCode.SIGNATURE_INVALID


def _configure(project: Project, us: cms.Keys, them: cms.Keys) -> None:
    keys = project.root / "keys"
    write_identity(us, keys, "gateway")
    write_identity(them, keys, "buyer")
    data = yaml.safe_load(project.config.read_text(encoding="utf-8"))
    buyer = next(p for p in data["partners"] if p["id"] == "buyer")
    buyer.update(
        outbound="outbox",
        auto_response="acknowledge",
        signature={
            "sign": True,
            "key": "keys/gateway.key",
            "certificate": "keys/gateway.pem",
            "verify": "required",
            "partner_certificate": "keys/buyer.pem",
        },
    )
    project.config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def test_run_verifies_what_arrives_and_signs_what_leaves(
    make_project: Callable[..., Project], tmp_path: Path, pair: tuple[cms.Keys, cms.Keys]
) -> None:
    us, them = pair
    project = make_project()
    _configure(project, us, them)
    key, cert = write_identity(them, tmp_path, "them")
    signed = xmlsec1_signs(f.order("PO-S1"), key, cert, tmp_path)
    project.drop("signed.xml", signed)
    project.drop("ours.xml", sign_ubl(f.order("PO-S2"), signing_key(them)))
    project.drop("unsigned.xml", f.order("PO-U1"))
    project.drop("altered.xml", signed.replace(b">PO-S1<", b">PO-A1<"))
    project.drop("forged.xml", sign_ubl(f.order("PO-F1"), signing_key(us)))
    done = project.run("run", "--once")
    assert done.returncode in (0, 1), done.stderr
    outcome = {m["filename"]: (m["state"], m["error_code"]) for m in project.messages()}
    assert outcome == {
        "signed.xml": ("processed", None),
        "ours.xml": ("processed", None),
        "unsigned.xml": ("failed", "SIGNATURE_MISSING"),
        "altered.xml": ("failed", "SIGNATURE_INVALID"),
        "forged.xml": ("failed", "SIGNATURE_INVALID"),
    }
    sent = sorted((project.root / "outbox").glob("*.xml"))
    assert len(sent) == 2, sent  # an acknowledgement of each accepted order
    _, our_cert = write_identity(us, tmp_path, "us")
    for path in sent:
        payload = path.read_bytes()
        validate_document(payload, max_size=len(payload) + 1)
        assert verify_ubl(payload, us.certificate, required=True) is Verdict.VERIFIED
        done = xmlsec1_verifies(path, our_cert)
        assert done.returncode == 0, done.stderr
