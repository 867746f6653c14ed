"""What the IMAP and SMTP transports share: TLS contexts and mapping library errors.

Library errors never leave a transport as they are: :func:`network_error` turns the socket,
TLS and protocol errors of imaplib and smtplib into a :class:`TransportError` with a stable code
and a message that says what to check.
"""

from __future__ import annotations

import socket
import ssl

from edi_gateway.errors import ErrorCode
from edi_gateway.transports.base import TransportError


def network_error(what: str, exc: BaseException) -> TransportError:
    """A TransportError for ``exc`` met while ``what`` (e.g. "IMAP mail.example:993").

    TLS failures (untrusted certificate, wrong host name, no TLS on the port) need an operator
    (``TLS_FAILED``); a refused, reset or timed-out link may heal (``CONNECTION_FAILED``).
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError(
            f"{what}: the server's certificate is not trusted ({exc.verify_message}); give the "
            "connector's ca_file or check host",
            recoverable=False,
            code=ErrorCode.TLS_FAILED,
        )
    if isinstance(exc, ssl.SSLError):
        return TransportError(
            f"{what}: TLS failed ({exc.reason or exc}); check security (ssl, starttls, plain) "
            "and port",
            recoverable=False,
            code=ErrorCode.TLS_FAILED,
        )
    if isinstance(exc, socket.gaierror):
        return TransportError(
            f"{what}: cannot resolve the host name ({exc.strerror}); check host",
            recoverable=True,
            code=ErrorCode.CONNECTION_FAILED,
        )
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return TransportError(
        f"{what}: {detail}; the server is away or dropped the link, tried again later",
        recoverable=True,
        code=ErrorCode.CONNECTION_FAILED,
    )


def auth_error(what: str, username: str, detail: str) -> TransportError:
    """The server refused ``username``'s credentials: an operator must fix them."""
    return TransportError(
        f"{what}: the server refused the login of {username!r} ({detail}); check username and "
        "the password secret",
        recoverable=False,
        code=ErrorCode.AUTH_FAILED,
    )
