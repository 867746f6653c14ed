"""The AS2 protocol core without sockets (cms, mime, mdn) and the as2 / http config entries."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edi_gateway.config import load_config
from edi_gateway.errors import ConfigError
from edi_gateway.transports.as2 import cms
from edi_gateway.transports.as2.mdn import build_mdn, read_mdn, requested
from edi_gateway.transports.as2.mime import (
    As2Refusal,
    Partner,
    build_message,
    read_message,
    safe_filename,
)
from edi_gateway.transports.http_spec import HttpConnector
from tests.keys import identity


@pytest.fixture(scope="module")
def keys() -> tuple[cms.Keys, cms.Keys, cms.Keys]:
    return identity("us"), identity("them"), identity("stranger")


@pytest.mark.parametrize("compress", [False, True])
def test_message_round_trip(keys: tuple[cms.Keys, cms.Keys, cms.Keys], compress: bool) -> None:
    us, them, _ = keys
    payload = b"<Order>\n  <x>\x00\xff</x>\n</Order>"
    out = build_message(
        payload,
        filename="../../o.xml",
        content_type="application/xml",
        keys=them,
        recipient=us.certificate,
        compress=compress,
    )
    got = read_message(
        out.headers["Content-Type"],
        out.body,
        keys=us,
        partner=Partner("them", them.certificate),
        max_bytes=1 << 20,
    )
    assert (got.payload, got.filename, got.signed, got.encrypted) == (payload, "o.xml", True, True)
    assert got.compressed is compress and got.mic == out.mic


def test_tampering_and_wrong_keys_are_refused(keys: tuple[cms.Keys, cms.Keys, cms.Keys]) -> None:
    us, them, stranger = keys
    signed = build_message(
        b"<a/>", filename="a.xml", content_type="application/xml", keys=them, recipient=None
    )
    with pytest.raises(As2Refusal) as bad:
        read_message(
            signed.headers["Content-Type"],
            signed.body.replace(b"<a/>", b"<b/>"),
            keys=us,
            partner=Partner("them", them.certificate, require_encrypted=False),
            max_bytes=1000,
        )
    assert bad.value.modifier == "authentication-failed"
    sealed = build_message(
        b"<a/>",
        filename="a.xml",
        content_type="application/xml",
        keys=them,
        recipient=stranger.certificate,
    )
    with pytest.raises(As2Refusal) as closed:
        read_message(
            sealed.headers["Content-Type"],
            sealed.body,
            keys=us,
            partner=Partner("them", them.certificate),
            max_bytes=1000,
        )
    assert closed.value.modifier == "decryption-failed"


@pytest.mark.parametrize(
    ("cipher", "digest", "label"),
    [
        ("3des", "sha1", "des-ede3-cbc"),
        ("aes128", "sha384", "aes128-cbc"),
        ("aes192", "sha512", "aes192-cbc"),
        ("aes256", "sha256", "aes256-cbc"),
    ],
)
def test_every_outbound_cipher_and_digest_round_trips(
    keys: tuple[cms.Keys, cms.Keys, cms.Keys], cipher: str, digest: str, label: str
) -> None:
    us, them, _ = keys
    out = build_message(
        b"<a/>",
        filename="a.xml",
        content_type="application/xml",
        keys=them,
        recipient=us.certificate,
        digest=digest,
        cipher=cipher,
    )
    got = read_message(
        out.headers["Content-Type"],
        out.body,
        keys=us,
        partner=Partner("them", them.certificate),
        max_bytes=1000,
    )
    assert (got.payload, got.cipher, got.mic) == (b"<a/>", label, out.mic)
    assert got.mic.endswith({"sha1": "sha1"}.get(digest, f"sha-{digest[3:]}"))


def test_ec_keys_sign_and_verify() -> None:
    signer = identity("ec", ec.SECP256R1())
    for digest in ("sha1", "sha256", "sha512"):
        signature = cms.sign(b"content", signer, digest)
        assert cms.verify(signature, b"content", signer.certificate) == digest
        with pytest.raises(cms.CmsError):
            cms.verify(signature, b"altered", signer.certificate)


def test_unknown_outbound_cipher_and_non_rsa_recipient_are_errors(
    keys: tuple[cms.Keys, cms.Keys, cms.Keys],
) -> None:
    from edi_gateway.transports.as2 import enveloped

    with pytest.raises(cms.CmsError, match="unsupported cipher rc2"):
        enveloped.encrypt(b"x", keys[0].certificate, "rc2")
    with pytest.raises(cms.CmsError, match="not RSA"):
        enveloped.encrypt(b"x", identity("ec", ec.SECP256R1()).certificate, "aes256")


def test_a_compression_bomb_is_refused(keys: tuple[cms.Keys, cms.Keys, cms.Keys]) -> None:
    with pytest.raises(cms.CmsError, match="inflates beyond"):
        cms.decompress(cms.compress(b"0" * 100_000), max_bytes=1000)


def test_mdn_round_trip(keys: tuple[cms.Keys, cms.Keys, cms.Keys]) -> None:
    us, them, _ = keys
    headers, body = build_mdn(
        original_message_id="<1@them>",
        our_id="us",
        their_id="them",
        modifier="error: decryption-failed",
        mic=None,
        text="no",
        keys=us,
    )
    mdn = read_mdn(headers["Content-Type"], body, trusted=us.certificate, keys=them)
    assert mdn.signed and not mdn.ok and mdn.modifier == "error: decryption-failed"
    with pytest.raises(As2Refusal):
        read_mdn(headers["Content-Type"], body, trusted=them.certificate, keys=us)


def test_requested_mdn_options() -> None:
    asked = requested(
        {
            "Disposition-Notification-To": "x",
            "Disposition-Notification-Options": "signed-receipt-protocol=optional, "
            "pkcs7-signature; signed-receipt-micalg=optional, sha1, sha-256",
        }
    )
    assert asked.wanted and asked.signed and asked.digest == "sha1" and asked.async_url is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/x.xml", "x.xml"),
        ("/abs.xml", "abs.xml"),
        ("nul\x00.xml", "nul.xml"),
        ("..", "fallback"),
        ("a\\b.xml", "b.xml"),
        ("é" * 150, "é" * 100),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name, "fallback") == expected


AS2_IN = """\
connectors:
  - name: as2-in
    type: as2
    direction: in
    as2_id: gateway
    certificate: certs/gateway.pem
    private_key: {file: certs/gateway.key}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", "expected partners"),
        ("    url: https://x.example/as2\n", "expected it only on direction: out"),
        (
            "    partners: [{as2_id: p, partner: p, certificate: p.pem}]\n"
            "    tls_certificate: t.pem\n",
            "tls_certificate and tls_private_key together",
        ),
        # the documents an AS2 partner sends must come from that partner (ADR 0020)
        ("    partners: [{as2_id: p, certificate: p.pem}]\n", "partners[0].partner: missing"),
        (
            "    partners: [{as2_id: p, partner: p, send_for: [q], certificate: p.pem}]\n",
            "partners[0].send_for[0]: found 'q', expected a partner id",
        ),
    ],
)
def test_as2_config_problems(tmp_path: Path, extra: str, expected: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(textwrap.dedent(AS2_IN) + extra, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in info.value.message


@pytest.mark.parametrize(
    ("partner", "expected"),
    [
        (
            "{partner: buyer, token: {env: T}, username: u, password: {env: P}}",
            "username + password",
        ),
        ("{partner: buyer, token: {env: T}}", "tls_certificate"),
    ],
)
def test_http_inbound_demands_tls_and_one_auth_method(
    tmp_path: Path, partner: str, expected: str
) -> None:
    path = tmp_path / "gateway.yaml"
    text = "connectors:\n  - {name: h, type: http, direction: in, partners: [PARTNER]}\n"
    path.write_text(text.replace("PARTNER", partner), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in info.value.message


README = Path(__file__).resolve().parents[2] / "README.md"
PUSH_PARTNERS = "partners:\n" + "".join(
    f"  - {{id: {p}, name: {p}, role: both, endpoint: {{scheme: '0088', value: '{gln}'}}}}\n"
    for gln, p in zip(
        ["7300010000001", "7300010000025", "7310000000003"],
        ["vastra", "nordisk", "delftlab"],
        strict=True,
    )
)


def _push_example() -> str:
    """The README's plain-HTTP example with its commented ``send_for`` and the push settings
    block of "Push endpoints: who may send, and the limits" put in."""
    text = README.read_text(encoding="utf-8")
    http = text.split("### Plain HTTP connector", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    limits = text.split("### Push endpoints:", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    http = http.replace("# send_for:", "send_for:")
    return http.replace("    url_path: /upload\n", "    url_path: /upload\n" + limits, 1)


def test_readme_push_example_loads_with_its_settings(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(PUSH_PARTNERS + _push_example(), encoding="utf-8")
    inbound = load_config(path).connectors[0]
    assert isinstance(inbound, HttpConnector)
    assert (inbound.workers, inbound.max_connections, inbound.backlog) == (4, 256, 1024)
    assert (inbound.header_seconds, inbound.read_seconds) == (10, 300)
    assert inbound.min_bytes_per_second == 10240
    assert inbound.partners[1].send_for == ["delftlab"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("workers: 4", "workers: 0"), "workers"),
        (("backlog: 1024", "backlog: 5"), "backlog"),
        (("read_seconds: 300", "read_seconds: 5"), "expected the headers' deadline within"),
        (("min_bytes_per_second: 10240", "min_bytes_per_second: -1"), "min_bytes_per_second"),
        (("send_for: [delftlab]", "send_for: [nobody]"), "send_for[0]: found 'nobody'"),
    ],
)
def test_push_settings_are_checked(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(PUSH_PARTNERS + _push_example().replace(*change), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in info.value.message
