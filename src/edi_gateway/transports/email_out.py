"""SMTP transport (``type: smtp``): each document or bundle as the attachment of one mail.

``deliver`` sends one mail from ``from_address`` to every address in ``to``, with the payload
attached under its (sanitised) file name and content type ``headers["media_type"]``, a subject
and text from the connector's patterns, and a Message-ID made from ``headers["message_id"]``
(one per outbox row, the same on every retry): SMTP cannot take a mail back, so a re-send after
a crash between the server's "250 OK" and the outbox commit is a second mail with the same
Message-ID, which the receiver can recognise as the same.

``notify`` sends a plain text mail (no attachment) for operators: "new order received",
"message failed" (see ``notify.py``).

``security``: ``ssl`` (TLS from the first byte, port 465), ``starttls`` (refused when the server
does not offer it, never silently plain), ``plain``. The certificate and host name are checked.
"""

from __future__ import annotations

import email.policy
import hashlib
import re
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate

from edi_gateway.errors import ConfigError, ErrorCode
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.email_common import auth_error, network_error
from edi_gateway.transports.email_spec import SmtpConnector
from edi_gateway.transports.folder import safe_name
from edi_gateway.transports.tls import client_tls

_TOKEN = re.compile(r"[^A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]")
# Long lines are allowed up to RFC 5322's 998: the default 78 folds a long subject right after
# "Subject:", which some readers (Python's own) then show with a leading blank.
_POLICY = email.policy.default.clone(max_line_length=998)
_MEDIA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")


class SmtpOutbound:
    """Sends documents as mail attachments over SMTP; see the module docstring."""

    def __init__(self, conn: SmtpConnector) -> None:
        if conn.direction != "out":
            raise ConfigError(f"connector {conn.name!r} is not outbound (direction: out)")
        self.name = conn.name
        self._conn = conn
        self._where = f"SMTP {conn.host}:{conn.server_port} ({conn.name})"
        self._domain = conn.from_address.rsplit("@", 1)[1]

    def close(self) -> None:
        """Nothing to release: each delivery opens and closes its own SMTP session."""

    def deliver(
        self, filename: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> str:
        """Mail ``payload`` as the attachment ``filename``; return the Message-ID and recipients."""
        given = dict(headers or {})
        name = safe_name(filename)
        values = {
            "document_type": given.get("document_type", ""),
            "document_id": given.get("document_id", ""),
            "partner": given.get("partner", ""),
            "filename": name,
        }
        msg = self._message(
            self._conn.subject.format_map(values) or name, self._message_id(given, name, payload)
        )
        msg.set_content(self._conn.body.format_map(values))
        maintype, subtype = _media_type(given.get("media_type", ""), name)
        msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=name)
        return self._send(msg)

    def notify(self, subject: str, text: str, to: list[str] | None = None) -> str:
        """Send an operator notification: a plain text mail to ``to`` (else the connector's)."""
        digest = hashlib.sha256(f"{subject}\n{text}".encode()).hexdigest()[:24]
        msg = self._message(subject, f"<edi-gateway-notice-{digest}@{self._domain}>", to)
        msg.set_content(text)
        return self._send(msg)

    def _message(self, subject: str, message_id: str, to: list[str] | None = None) -> EmailMessage:
        msg = EmailMessage(policy=_POLICY)
        msg["From"] = self._conn.from_address
        msg["To"] = ", ".join(to or self._conn.to)
        msg["Subject"] = " ".join(subject.split())[:250]  # no line breaks: no header injection
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id
        msg["Auto-Submitted"] = "auto-generated"
        return msg

    def _message_id(self, headers: Mapping[str, str], name: str, payload: bytes) -> str:
        """``<message_id@from-domain>``; without one, derived from the name and the bytes."""
        token = _TOKEN.sub("-", headers.get("message_id", ""))[:200].strip(".")
        if not token:
            token = "edi-gateway-" + hashlib.sha256(name.encode() + b"\0" + payload).hexdigest()
        return f"<{token}@{self._domain}>"

    def _send(self, msg: EmailMessage) -> str:
        conn = self._conn
        recipients = [a.strip() for a in str(msg["To"]).split(",")]
        try:
            refused = self._transmit(msg, recipients)
        except smtplib.SMTPAuthenticationError as exc:
            raise auth_error(self._where, conn.username or "", _reply(exc)) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise TransportError(
                f"{self._where}: {exc}; check security (servers often offer AUTH only after "
                "STARTTLS) or drop username and password",
                recoverable=False,
                code=ErrorCode.AUTH_FAILED,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise _refused(self._where, "every recipient", exc.recipients) from exc
        except smtplib.SMTPResponseException as exc:
            raise _refused(self._where, "the mail", {"": (exc.smtp_code, exc.smtp_error)}) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise network_error(self._where, exc) from exc
        where = f"{self._where}: {msg['Message-ID']} to {', '.join(recipients)}"
        if refused:
            where += f" (refused: {', '.join(sorted(refused))})"
        return where

    def _transmit(self, msg: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
        conn = self._conn
        context = client_tls(conn.ca_file)
        smtp: smtplib.SMTP
        if conn.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                conn.host, conn.server_port, timeout=conn.timeout_seconds, context=context
            )
        else:
            smtp = smtplib.SMTP(conn.host, conn.server_port, timeout=conn.timeout_seconds)
        with smtp:
            smtp.ehlo()
            if conn.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise TransportError(
                        f"{self._where}: the server does not offer STARTTLS; use security: ssl "
                        "with its TLS port, or ask for STARTTLS",
                        recoverable=False,
                        code=ErrorCode.TLS_FAILED,
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if conn.username is not None and conn.password is not None:
                smtp.login(conn.username, conn.password.value())
            return smtp.send_message(msg, from_addr=conn.from_address, to_addrs=recipients)


def _media_type(given: str, name: str) -> tuple[str, str]:
    """(maintype, subtype) of ``headers["media_type"]``; else guessed from the file name."""
    media = given.split(";", 1)[0].strip().lower()
    if not _MEDIA.match(media):
        lower = name.lower()
        media = "application/xml" if lower.endswith(".xml") else "application/octet-stream"
        if lower.endswith(".zip"):
            media = "application/zip"
    maintype, subtype = media.split("/", 1)
    return maintype, subtype


def _reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    return f"{exc.smtp_code} {text}"


def _refused(
    where: str, what: str, replies: Mapping[str, tuple[int, bytes | str]]
) -> TransportError:
    """The server refused ``what``: 4xx is temporary (recoverable), 5xx needs an operator."""
    parts, permanent = [], False
    for address, (code, text) in replies.items():
        reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        parts.append(f"{address + ': ' if address else ''}{code} {reply}")
        permanent = permanent or code >= 500
    return TransportError(
        f"{where}: the server refused {what} ({'; '.join(parts)}); "
        + ("check to, from_address and size limits" if permanent else "tried again later"),
        recoverable=not permanent,
        code=ErrorCode.DELIVERY_REFUSED if permanent else ErrorCode.CONNECTION_FAILED,
    )
