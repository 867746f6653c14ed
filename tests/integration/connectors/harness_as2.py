"""The AS2 connector's harness: an OpenSSL-built partner (``as2_peer.py``) against the gateway.

Inbound is a push: ``send`` queues the partner's messages (signed and encrypted by openssl);
``take`` starts the gateway's AS2 endpoint for the connector, POSTs what is queued, checks each
MDN with openssl and counts a message taken once its MDN says processed. Outbound deliveries go
to the partner's endpoint, which opens them with openssl; ``delivered`` is what it decrypted.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.integration.connectors.as2_peer import (
    PartnerServer,
    Peer,
    make_identity,
    new_peer,
)
from tests.integration.connectors.harness_push import PushHarness

if TYPE_CHECKING:
    pass


class As2Harness(PushHarness):
    """A partner who POSTs AS2 messages to the gateway and runs an AS2 endpoint of its own."""

    kind = "as2"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.peer, self.gateway_cert, self.gateway_key = new_peer(root)
        self.stranger_cert, _ = make_identity(root / "stranger", "stranger")
        self.partner = PartnerServer(self.peer)
        self.queue: list[tuple[str, str, bytes]] = []  # (Message-ID, name, payload)

    # -- connector entries -----------------------------------------------------------------
    def _own(self) -> dict[str, Any]:
        return {
            "as2_id": self.peer.gateway_id,
            "certificate": str(self.gateway_cert),
            "private_key": {"file": str(self.gateway_key)},
        }

    def inbound(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "as2",
            "direction": "in",
            "port": 0,
            "url_path": "/as2",
            **self._own(),
            "partners": [
                {"as2_id": self.peer.as2_id, "partner": "buyer", "certificate": str(self.peer.cert)}
            ],
        }

    def outbound(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "as2",
            "direction": "out",
            **self._own(),
            "url": self.partner.url,
            "partner_as2_id": self.peer.as2_id,
            "partner_certificate": str(self.peer.cert),
            "timeout_seconds": 20,
        }

    def with_bad_credentials(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Inbound: the partner's signatures checked with a stranger's certificate.
        Outbound: encrypting for a stranger (the partner cannot decrypt)."""
        changed = dict(entry)
        if entry["direction"] == "in":
            changed["partners"] = [
                {**p, "certificate": str(self.stranger_cert)} for p in entry["partners"]
            ]
        else:
            changed["partner_certificate"] = str(self.stranger_cert)
        return changed

    # -- the partner's side ----------------------------------------------------------------
    def send(self, name: str, payload: bytes) -> None:
        clean = name.replace("\x00", "").replace('"', "")
        self.queue.append((f"<{uuid.uuid4().hex}@{self.peer.as2_id}>", clean, payload))

    def deliver_one(self, server: Any, message_id: str, name: str, payload: bytes) -> str | None:
        url = f"http://127.0.0.1:{server.port}/as2"
        disposition = self.push(url, message_id, name, payload)
        taken = disposition.endswith("processed") or "duplicate-document" in disposition
        return None if taken else disposition

    def push(self, url: str, message_id: str, filename: str, payload: bytes) -> str:
        """POST one message built by openssl; the disposition of the MDN (checked by openssl)."""
        content_type, body = self.peer.message(payload, filename)
        status, headers, answer = post_as2(url, content_type, body, message_id, self.peer)
        assert status == 200, (status, answer)
        return self.peer.verify_mdn(headers["Content-Type"], answer)["disposition"]


def post_as2(
    url: str,
    content_type: str,
    body: bytes,
    message_id: str,
    peer: Peer,
    *,
    signed_mdn: bool = True,
    extra: dict[str, str] | None = None,
) -> tuple[int, Any, bytes]:
    """POST an AS2 message as the partner; (status, headers, body) whatever the status."""
    headers = {
        "Content-Type": content_type,
        "AS2-Version": "1.2",
        "AS2-From": peer.as2_id,
        "AS2-To": peer.gateway_id,
        "Message-ID": message_id,
        "Disposition-Notification-To": "edi@partner.example",
    }
    if signed_mdn:
        headers["Disposition-Notification-Options"] = (
            "signed-receipt-protocol=optional, pkcs7-signature; "
            "signed-receipt-micalg=optional, sha-256"
        )
    headers.update(extra or {})
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()
