"""An AS2 trading partner built on the OpenSSL command line: the independent implementation the
gateway's AS2 transport is proven against.

Everything cryptographic on the partner's side is done by ``openssl`` (``cms -sign``,
``-encrypt``, ``-decrypt``, ``-verify``; ``asn1parse`` builds and reads RFC 3274 compressed
data, which Debian's OpenSSL cannot do with ``cms -compress``: it is built without zlib). Only
plain MIME framing and HTTP are Python here. Certificates are made at test time in a temporary
folder (``openssl req -x509``), never committed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import tempfile
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers import debian_command

CRLF = b"\r\n"
REPORT_TYPE = 'multipart/report; report-type=disposition-notification; boundary="rb"'


def openssl_binary() -> str:
    """The openssl command (installed with apt when missing; CI=true fails without it)."""
    return debian_command("openssl")


def run(*args: str | Path, data: bytes | None = None) -> bytes:
    """Run openssl; its stdout (a failure raises with openssl's own message)."""
    done = subprocess.run(
        [openssl_binary(), *map(str, args)], input=data, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise OpensslError(done.stderr.decode(errors="replace"))
    return done.stdout


class OpensslError(Exception):
    """openssl refused (a bad signature, the wrong key ...)."""


def make_identity(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed RSA certificate and its key: (cert.pem, key.pem); valid for TLS to
    127.0.0.1 and localhost too."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout",
        key,
        "-out",
        cert,
    )
    return cert, key


def entity(headers: dict[str, str], body: bytes) -> bytes:
    return b"".join(f"{k}: {v}".encode() + CRLF for k, v in headers.items()) + CRLF + body


def split(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Headers (lower-cased names) and body of a MIME entity."""
    cut = raw.find(b"\r\n\r\n")
    head, body = (raw[:cut], raw[cut + 4 :]) if cut >= 0 else raw.split(b"\n\n", 1)
    parsed = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
    return {k.lower(): str(v) for k, v in parsed.items()}, body


@dataclass
class Peer:
    """The partner: its identity, the gateway's certificate, and a temp folder for openssl."""

    work: Path
    cert: Path
    key: Path
    gateway_cert: Path
    as2_id: str = "partner"
    gateway_id: str = "gateway"
    last_signed: bytes = b""
    _n: list[int] = field(default_factory=lambda: [0])

    def _file(self, data: bytes) -> Path:
        self._n[0] += 1
        path = self.work / f"f{self._n[0]}-{uuid.uuid4().hex[:6]}"
        path.write_bytes(data)
        return path

    # -- building messages for the gateway -------------------------------------------------
    def message(
        self,
        payload: bytes,
        filename: str,
        *,
        sign: bool = True,
        encrypt: bool = True,
        compress: bool = False,
        recipient: Path | None = None,
        signer: tuple[Path, Path] | None = None,
        cipher: tuple[str, ...] = ("-aes256",),
    ) -> tuple[str, bytes]:
        """(Content-Type, body) of an AS2 message built by openssl; ``cipher``: the options
        of ``openssl cms -encrypt`` that choose the cipher (given after ``-recip``, so
        ``-keyopt`` may be among them)."""
        part = entity(
            {
                "Content-Type": "application/xml",
                "Content-Transfer-Encoding": "binary",
                "Content-Disposition": f'attachment; filename="{filename}"',
            },
            payload,
        )
        if compress:
            part = entity(
                {
                    "Content-Type": "application/pkcs7-mime; smime-type=compressed-data",
                    "Content-Transfer-Encoding": "base64",
                },
                base64.encodebytes(self.compressed(part)).replace(b"\n", CRLF),
            )
        self.last_signed = part  # the bytes a signature (and so the MIC) covers
        if sign:
            cert, key = signer or (self.cert, self.key)
            part = run(
                "cms",
                "-sign",
                "-binary",
                "-crlfeol",
                "-md",
                "sha256",
                "-signer",
                cert,
                "-inkey",
                key,
                "-in",
                self._file(part),
            )
        if encrypt:
            der = run(
                "cms",
                "-encrypt",
                "-binary",
                "-outform",
                "DER",
                "-in",
                self._file(part),
                "-recip",
                recipient or self.gateway_cert,
                *cipher,
            )
            kind = "authEnveloped-data" if any("gcm" in c for c in cipher) else "enveloped-data"
            return f"application/pkcs7-mime; smime-type={kind}; name=smime.p7m", der
        headers, body = split(part)
        return headers["content-type"], body

    def compressed(self, content: bytes) -> bytes:
        """RFC 3274 CompressedData (zlib) built by ``openssl asn1parse -genconf``."""
        conf = "\n".join(
            [
                "asn1 = SEQUENCE:ci",
                "[ci]",
                "type = OID:1.2.840.113549.1.9.16.1.9",
                "content = EXPLICIT:0,SEQUENCE:cd",
                "[cd]",
                "version = INTEGER:0",
                "alg = SEQUENCE:alg",
                "encap = SEQUENCE:encap",
                "[alg]",
                "oid = OID:1.2.840.113549.1.9.16.3.8",
                "[encap]",
                "type = OID:1.2.840.113549.1.7.1",
                f"content = EXPLICIT:0,FORMAT:HEX,OCTETSTRING:{zlib.compress(content).hex()}",
            ]
        )
        out = self.work / f"c{uuid.uuid4().hex[:6]}.der"
        run("asn1parse", "-genconf", self._file(conf.encode()), "-out", out, "-noout")
        return out.read_bytes()

    def uncompressed(self, der: bytes) -> bytes:
        """The content of a CompressedData, read with ``openssl asn1parse``."""
        listing = run("asn1parse", "-inform", "DER", "-in", self._file(der)).decode()
        octets = re.findall(r"OCTET STRING\s+\[HEX DUMP\]:([0-9A-F]+)", listing)
        assert "1.2.840.113549.1.9.16.3.8" in listing or "zlib" in listing, listing
        return zlib.decompress(bytes.fromhex(octets[-1]))

    # -- reading what the gateway sends ----------------------------------------------------
    def verify_mdn(self, content_type: str, body: bytes, *, signed: bool = True) -> dict[str, str]:
        """The disposition fields of the gateway's MDN; a signed one is checked by openssl
        against the gateway's certificate (raises OpensslError when it does not verify)."""
        raw = entity({"Content-Type": content_type}, body)
        if signed:
            assert content_type.startswith("multipart/signed"), content_type
            raw = self.verify_signed(raw)
        fields = {}
        for line in raw.decode(errors="replace").splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip().lower() in (
                "disposition",
                "original-message-id",
                "received-content-mic",
                "final-recipient",
            ):
                fields[name.strip().lower()] = value.strip()
        return fields

    def verify_signed(self, raw: bytes) -> bytes:
        """The first part of a multipart/signed entity, once ``openssl cms -verify`` confirmed
        the detached signature over its exact bytes with the gateway's certificate. (openssl's
        own S/MIME reader rewrites line ends, so the two parts are cut here and given to it as
        ``-content`` and a DER signature.)"""
        headers, body = split(raw)
        boundary = re.search(r'boundary="?([^";]+)"?', headers["content-type"]).group(1)
        delimiter = b"--" + boundary.encode()
        chunks = body.split(b"\r\n" + delimiter)
        first = chunks[0].split(delimiter + b"\r\n", 1)[1]
        sig_headers, sig_body = split(chunks[1].split(b"\r\n", 1)[1])
        assert "pkcs7-signature" in sig_headers["content-type"], sig_headers
        signature = base64.b64decode(sig_body)
        run(
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            self._file(signature),
            "-content",
            self._file(first),
            "-CAfile",
            self.gateway_cert,
            "-out",
            os.devnull,
        )
        return first

    def open_message(self, content_type: str, body: bytes) -> tuple[str, bytes, bytes, bool]:
        """Decrypt and verify a message from the gateway with openssl: (file name, payload,
        the signed bytes the MIC covers, whether it was compressed)."""
        raw = entity({"Content-Type": content_type}, body)
        if "enveloped-data" in content_type:
            raw = run(
                "cms",
                "-decrypt",
                "-binary",
                "-inform",
                "DER",
                "-in",
                self._file(body),
                "-recip",
                self.cert,
                "-inkey",
                self.key,
            )
        headers, _ = split(raw)
        signed_part = raw
        if headers["content-type"].startswith("multipart/signed"):
            signed_part = raw = self.verify_signed(raw)
        headers, part_body = split(raw)
        compressed = "compressed-data" in headers["content-type"]
        if compressed:
            der = (
                base64.b64decode(part_body)
                if headers.get("content-transfer-encoding", "").lower() == "base64"
                else part_body
            )
            headers, part_body = split(self.uncompressed(der))
        found = re.search(r'filename="?([^";]*)"?', headers.get("content-disposition", ""))
        return (found.group(1) if found else "payload"), part_body, signed_part, compressed

    def signed_mdn(self, message_id: str, disposition: str, mic: str | None) -> tuple[str, bytes]:
        """An MDN (multipart/report) signed by openssl with the partner's key."""
        fields = [
            "Reporting-UA: openssl-peer",
            f"Original-Recipient: rfc822; {self.as2_id}",
            f"Final-Recipient: rfc822; {self.as2_id}",
            f"Original-Message-ID: {message_id}",
        ]
        if mic:
            fields.append(f"Received-Content-MIC: {mic}")
        fields.append(f"Disposition: automatic-action/MDN-sent-automatically; {disposition}")
        report = entity(
            {"Content-Type": REPORT_TYPE},
            b"--rb\r\n"
            + entity({"Content-Type": "text/plain"}, b"receipt\r\n")
            + b"\r\n--rb\r\n"
            + entity(
                {"Content-Type": "message/disposition-notification"},
                "\r\n".join(fields).encode() + CRLF,
            )
            + b"\r\n--rb--\r\n",
        )
        signed = run(
            "cms",
            "-sign",
            "-binary",
            "-crlfeol",
            "-md",
            "sha256",
            "-signer",
            self.cert,
            "-inkey",
            self.key,
            "-in",
            self._file(report),
        )
        headers, body = split(signed)
        return headers["content-type"], body


class PartnerServer:
    """The partner's AS2 endpoint for the gateway's outbound deliveries (openssl inside).

    ``delivered`` survives restarts (the partner's data); duplicate Message-IDs are answered
    ``duplicate-document`` and not delivered twice.
    """

    def __init__(self, peer: Peer, port: int = 0) -> None:
        self.peer = peer
        self.delivered: dict[str, bytes] = {}
        self.seen: set[str] = set()
        self.requests: list[dict[str, str]] = []
        self.bodies: list[bytes] = []
        self.drop_async = False
        self.hold_async = False
        """Keep async MDNs in ``held`` until ``release_async`` (a partner that answers later)."""
        self.held: list[tuple[str, str, bytes]] = []
        self.async_status: list[int] = []
        self.lock = threading.Lock()
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/as2"

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _partner_handler(self))
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def post_async(self, url: str, content_type: str, mdn: bytes) -> None:
        """POST a receipt to the gateway's MDN URL (as the partner, some time later)."""
        import urllib.request

        headers = {
            "Content-Type": content_type,
            "AS2-From": self.peer.as2_id,
            "AS2-To": self.peer.gateway_id,
            "AS2-Version": "1.2",
        }
        request = urllib.request.Request(url, data=mdn, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            self.async_status.append(answer.status)

    def release_async(self) -> int:
        """Post the held async MDNs now; how many."""
        with self.lock:
            held, self.held = self.held, []
        for url, content_type, mdn in held:
            self.post_async(url, content_type, mdn)
        return len(held)

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[str, bytes]:
        """Open one message with openssl and build the signed MDN."""
        message_id = headers.get("message-id", "")
        self.requests.append(headers)
        self.bodies.append(body)
        try:
            name, payload, signed_part, _ = self.peer.open_message(headers["content-type"], body)
        except OpensslError as exc:
            modifier = (
                "decryption-failed" if "decrypt" in str(exc).lower() else "authentication-failed"
            )
            return self.peer.signed_mdn(message_id, f"processed/error: {modifier}", None)
        options = headers.get("disposition-notification-options", "")
        asked = re.search(r"signed-receipt-micalg\s*=\s*\w+\s*,\s*([\w-]+)", options)
        micalg = asked.group(1).lower() if asked else "sha-256"
        digest = hashlib.new(micalg.replace("-", ""), signed_part).digest()
        mic = f"{base64.b64encode(digest).decode()}, {micalg}"
        with self.lock:
            if message_id in self.seen:
                return self.peer.signed_mdn(
                    message_id, "processed/warning: duplicate-document", mic
                )
            self.seen.add(message_id)
            self.delivered[name] = payload
        return self.peer.signed_mdn(message_id, "processed", mic)


def _partner_handler(partner: PartnerServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            content_type, mdn = partner.answer(headers, body)
            later = headers.get("receipt-delivery-option")
            if later:  # an async MDN: answer now, post the receipt afterwards
                if partner.hold_async:  # held before the answer: the sender may look at once
                    with partner.lock:
                        partner.held.append((later, content_type, mdn))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if not partner.hold_async and not partner.drop_async:
                    threading.Thread(
                        target=partner.post_async, args=(later, content_type, mdn)
                    ).start()
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("AS2-From", partner.peer.as2_id)
            self.send_header("AS2-To", partner.peer.gateway_id)
            self.send_header("Content-Length", str(len(mdn)))
            self.end_headers()
            self.wfile.write(mdn)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def new_peer(root: Path) -> tuple[Peer, Path, Path]:
    """A partner and the gateway's identity (cert, key) in ``root``."""
    work = Path(tempfile.mkdtemp(dir=root, prefix="openssl-"))
    try:
        gw_cert, gw_key = make_identity(root / "gateway", "gateway")
        cert, key = make_identity(root / "partner", "partner")
    except OpensslError as exc:
        pytest.fail(f"openssl could not make test certificates: {exc}")
    return Peer(work, cert, key, gw_cert), gw_cert, gw_key
