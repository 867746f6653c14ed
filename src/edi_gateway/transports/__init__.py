"""Transports: one module per protocol behind the interfaces in :mod:`.base`.

``open_inbound`` / ``open_outbound`` pick the class by the connector's ``type``; a new protocol
is one module plus one entry in each table below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from edi_gateway.config import Connector
from edi_gateway.errors import ConfigError
from edi_gateway.transports.amqp import AmqpInbound, AmqpOutbound
from edi_gateway.transports.as2 import As2Outbound, serve_as2
from edi_gateway.transports.base import InboundTransport, OutboundTransport, TransportError
from edi_gateway.transports.email_in import ImapInbound
from edi_gateway.transports.email_out import SmtpOutbound
from edi_gateway.transports.folder import FolderInbound, FolderOutbound
from edi_gateway.transports.http import HttpOutbound, serve_http
from edi_gateway.transports.push import InboundServer, Receipt, Receive, ServerFactory
from edi_gateway.transports.sftp import SftpInbound, SftpOutbound

__all__ = [
    "InboundServer",
    "InboundTransport",
    "OutboundTransport",
    "Receipt",
    "Receive",
    "TransportError",
    "is_push",
    "open_inbound",
    "open_outbound",
    "open_server",
]

_T = TypeVar("_T")

_INBOUND: dict[str, Callable[[Any, int | None], InboundTransport]] = {
    "amqp": AmqpInbound,
    "folder": FolderInbound,
    "imap": ImapInbound,
    "sftp": SftpInbound,
}
_OUTBOUND: dict[str, Callable[[Any], OutboundTransport]] = {
    "amqp": AmqpOutbound,
    "as2": As2Outbound,
    "folder": FolderOutbound,
    "http": HttpOutbound,
    "sftp": SftpOutbound,
    "smtp": SmtpOutbound,
}

# Push connectors (the partner connects to us: AS2, HTTP): type -> server factory; the daemon
# starts one server per ``direction: in`` connector of such a type (see transports/push.py).
_SERVERS: dict[str, ServerFactory] = {"as2": serve_as2, "http": serve_http}


def is_push(conn: Connector) -> bool:
    """Whether ``conn`` is an inbound connector the partner pushes to (a server, not polled)."""
    return conn.direction == "in" and conn.type in _SERVERS


def open_server(conn: Connector, receive: Receive, max_bytes: int | None = None) -> InboundServer:
    """Start the listening server of a push connector; each payload goes to ``receive``."""
    return _open(conn, "in", _SERVERS)(conn, receive, max_bytes)


def open_inbound(conn: Connector, max_bytes: int | None = None) -> InboundTransport:
    """The inbound transport for an ``direction: in`` connector.

    Payloads over ``max_bytes`` are not read; they reach intake as ``Envelope.oversize``.
    """
    factory = _open(conn, "in", _INBOUND)
    return factory(conn, max_bytes)


def open_outbound(conn: Connector) -> OutboundTransport:
    """The outbound transport for an ``direction: out`` connector."""
    return _open(conn, "out", _OUTBOUND)(conn)


def _open(conn: Connector, direction: str, table: dict[str, _T]) -> _T:
    """The factory for ``conn``'s type, after checking its direction."""
    if conn.direction != direction:
        raise ConfigError(
            f"connector {conn.name!r} has direction: {conn.direction}, "
            f"expected direction: {direction} here"
        )
    factory = table.get(conn.type)
    if factory is None:
        raise ConfigError(f"connector {conn.name!r}: no {direction}bound transport for {conn.type}")
    return factory
