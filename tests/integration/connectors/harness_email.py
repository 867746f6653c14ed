"""The email connectors' harness: Dovecot + an SMTP front, the partner at partner@example.test.

Inbound (``type: imap``) reads the mailbox of gateway@example.test over IMAPS; the partner
sends by SMTP (STARTTLS + AUTH) to the front, which hands the mail to Dovecot's LMTP.
Outbound (``type: smtp``) sends over STARTTLS + AUTH to partner@example.test; ``delivered``
reads the partner's mailbox, one entry per attachment name, skipping a Message-ID seen before
(a re-sent mail, as a receiving system would).
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.integration.connectors.email_server import DOMAIN, USERS, MailServers, mail_servers
from tests.integration.connectors.harness import Stop, poll_once

if TYPE_CHECKING:
    from edi_gateway.app import Gateway, Outcome

GATEWAY = f"gateway@{DOMAIN}"
PARTNER = f"partner@{DOMAIN}"


class EmailHarness:
    """A partner who mails documents to the gateway's mailbox and reads what it mails back."""

    kind = "email"

    def __init__(self, servers: MailServers, secrets: Path) -> None:
        self.servers = servers
        secrets.mkdir(parents=True, exist_ok=True)
        self.password = secrets / "gateway.pw"
        self.password.write_text(USERS["gateway"] + "\n")
        self.wrong = secrets / "wrong.pw"
        self.wrong.write_text("not-the-password\n")

    def inbound(self, name: str, **extra: Any) -> dict[str, Any]:
        entry = {
            "name": name,
            "type": "imap",
            "direction": "in",
            "host": "127.0.0.1",
            "port": self.servers.ports["imaps"],
            "security": "ssl",
            "ca_file": str(self.servers.cert),
            "username": "gateway",
            "password": {"file": str(self.password)},
            "allowed_senders": [PARTNER],
        }
        return {**entry, **extra}

    def outbound(self, name: str, **extra: Any) -> dict[str, Any]:
        entry = {
            "name": name,
            "type": "smtp",
            "direction": "out",
            "host": "127.0.0.1",
            "port": self.servers.ports["smtp"],
            "security": "starttls",
            "ca_file": str(self.servers.cert),
            "username": "gateway",
            "password": {"file": str(self.password)},
            "from_address": GATEWAY,
            "to": [PARTNER],
        }
        return {**entry, **extra}

    def with_bad_credentials(self, entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "password": {"file": str(self.wrong)}}

    def take(self, gateway: Gateway, name: str, stop: Stop = lambda: False) -> Outcome:
        return poll_once(gateway, name, stop)

    def send(self, name: str, payload: bytes) -> None:
        """Mail ``payload`` attached as ``name`` (NUL, which no header can carry, dropped)."""
        msg = self.mail(PARTNER)
        msg.add_attachment(
            payload, maintype="application", subtype="xml", filename=name.replace("\x00", "")
        )
        self.submit(msg)

    def mail(self, sender: str, subject: str = "Order") -> EmailMessage:
        """An empty mail from ``sender`` to the gateway's mailbox."""
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = GATEWAY
        msg["Subject"] = subject
        msg["Message-ID"] = make_msgid(domain=DOMAIN)
        msg.set_content("Please find our order attached.")
        return msg

    def submit(self, msg: EmailMessage) -> None:
        """Send ``msg`` through the SMTP front as the partner (STARTTLS, AUTH)."""
        with smtplib.SMTP("127.0.0.1", self.servers.ports["smtp"], timeout=20) as smtp:
            smtp.starttls(context=self.servers.client_tls())
            smtp.login("partner", USERS["partner"])
            smtp.send_message(msg, to_addrs=[GATEWAY])

    def waiting(self) -> int:
        return len(self.mails("gateway", "INBOX"))

    def delivered(self) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        seen: set[str] = set()
        for raw in self.mails("partner", "INBOX"):
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            if str(msg["Message-ID"]) in seen:
                continue
            seen.add(str(msg["Message-ID"]))
            assert isinstance(msg, EmailMessage)
            for part in msg.iter_attachments():
                data = part.get_payload(decode=True)
                assert isinstance(data, bytes)
                found[part.get_filename() or ""] = data
        return found

    def mails(self, user: str, folder: str) -> list[bytes]:
        """The raw mails of ``user``'s ``folder`` (not deleted), oldest first."""
        imap = imaplib.IMAP4_SSL(
            "127.0.0.1", self.servers.ports["imaps"], ssl_context=self.servers.client_tls()
        )
        try:
            imap.login(user, USERS[user])
            typ, _ = imap.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return []
            _, data = imap.uid("SEARCH", "UNDELETED")
            raws = []
            for uid in (data[0] or b"").split():
                _, fetched = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                raws.extend(bytes(i[1]) for i in fetched if isinstance(i, tuple))
            return raws
        finally:
            imap.logout()

    def reset(self) -> None:
        self.servers.clear()

    def restart(self) -> None:
        self.servers.restart()

    def outside_files(self) -> list[str]:
        return []  # mail has no file system view: names only travel inside mails


@contextmanager
def mail_partner() -> Iterator[EmailHarness]:
    """Dovecot and the SMTP front in a fresh folder (not under pytest's: the mail user must
    reach it), with the partner's harness; everything removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="edi-gateway-mail-"))
    try:
        with mail_servers(base) as servers:
            yield EmailHarness(servers, base / "secrets")
    finally:
        shutil.rmtree(base, ignore_errors=True)
