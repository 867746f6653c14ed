"""The plain-HTTP connector's harness (``type: http``): a partner that POSTs over HTTPS.

Inbound is a push: ``send`` queues the partner's documents; ``take`` starts the gateway's real
HTTPS endpoint for the connector and POSTs what is queued with the partner's basic-auth
credentials, counting a document taken once the gateway answered 200. Outbound deliveries go to
the partner's own HTTPS endpoint, which accepts only the gateway's bearer token and keeps one
copy per Message-ID. TLS uses a self-signed certificate made at test time; secrets are files.
"""

from __future__ import annotations

import base64
import hmac
import ssl
import threading
import uuid
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.connectors.as2_peer import OpensslError, make_identity
from tests.integration.connectors.harness_push import PushHarness

if TYPE_CHECKING:
    pass

USER, PASSWORD, TOKEN = "buyer-user", "pw-of-the-buyer", "token-of-the-gateway"


class HttpHarness(PushHarness):
    """A partner who POSTs documents to the gateway and runs an HTTPS endpoint of its own."""

    kind = "http"

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            self.cert, self.key = make_identity(root / "tls", "localhost")
        except OpensslError as exc:
            pytest.fail(f"openssl could not make the test TLS certificate: {exc}")
        self.secrets = {
            name: self._secret(name, value)
            for name, value in [("password", PASSWORD), ("token", TOKEN), ("wrong", "nope")]
        }
        self.queue: list[tuple[str, str, bytes]] = []  # (Message-ID, name, payload)
        self.partner = PartnerEndpoint(self.cert, self.key, TOKEN)

    def _secret(self, name: str, value: str) -> dict[str, str]:
        path = self.root / f"{name}.secret"
        path.write_text(value + "\n", encoding="utf-8")
        path.chmod(0o600)
        return {"file": str(path)}

    # -- connector entries -----------------------------------------------------------------
    def inbound(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "http",
            "direction": "in",
            "port": 0,
            "url_path": "/upload",
            "tls_certificate": str(self.cert),
            "tls_private_key": {"file": str(self.key)},
            "partners": [
                {"partner": "buyer", "username": USER, "password": self.secrets["password"]}
            ],
        }

    def outbound(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "http",
            "direction": "out",
            "url": self.partner.url,
            "ca_file": str(self.cert),
            "token": self.secrets["token"],
            "timeout_seconds": 20,
        }

    def with_bad_credentials(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Inbound: the gateway expects another password than the partner sends.
        Outbound: the gateway sends a token the partner does not accept."""
        changed = dict(entry)
        if entry["direction"] == "in":
            changed["partners"] = [
                {**p, "password": self.secrets["wrong"]} for p in entry["partners"]
            ]
        else:
            changed["token"] = self.secrets["wrong"]
        return changed

    # -- the partner's side ----------------------------------------------------------------
    def send(self, name: str, payload: bytes) -> None:
        clean = name.replace("\x00", "").replace('"', "")  # a header cannot carry NUL
        self.queue.append((f"<{uuid.uuid4().hex}@partner>", clean, payload))

    def deliver_one(self, server: Any, message_id: str, name: str, payload: bytes) -> str | None:
        status = self.push(server.port, message_id, name, payload)
        return None if status == 200 else f"HTTP {status}"

    def push(self, port: int, message_id: str, filename: str, payload: bytes) -> int:
        """POST one document over HTTPS with basic auth; the HTTP status."""
        import http.client

        basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/xml",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Message-ID": message_id,
        }
        context = ssl.create_default_context(cafile=str(self.cert))
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
        try:
            connection.request("POST", "/upload", body=payload, headers=headers)
            answer = connection.getresponse()
            answer.read()
            return answer.status
        finally:
            connection.close()


class PartnerEndpoint:
    """The partner's HTTPS endpoint: bearer token required; one copy per Message-ID; the
    ``delivered`` documents survive restarts (the partner's data)."""

    def __init__(self, cert: Path, key: Path, token: str) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(cert), str(key))
        self.token = token
        self.delivered: dict[str, bytes] = {}
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/inbox"

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self.server.socket = self.context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def answer(self, headers: Message, body: bytes) -> int:
        """Take one POST: 401 without the token, else keep it (once per Message-ID)."""
        given = headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return 401
        name = headers.get_filename() or "document.xml"
        message_id = headers.get("Message-ID") or uuid.uuid4().hex
        with self.lock:
            if message_id not in self.seen:
                self.seen.add(message_id)
                self.delivered[name] = body
        return 200


def _handler(partner: PartnerEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = partner.answer(self.headers, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
