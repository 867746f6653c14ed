"""TLS for the client side of every transport (IMAP, SMTP, AMQP, HTTP POST)."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_tls(ca_file: Path | str | None) -> ssl.SSLContext:
    """A client TLS context that verifies the server's certificate and name, TLS 1.2 or newer.

    ``ca_file`` replaces the system's trusted authorities (a private CA, a self-signed server).
    """
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
