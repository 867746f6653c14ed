"""Transports: one module per protocol behind the interfaces in :mod:`.base`.

``open_inbound`` / ``open_outbound`` pick the class by the connector's ``type``. A new protocol
is its config model in a light ``<name>_spec.py`` (no protocol library imported there; the
registry :data:`edi_gateway.config.connectors.CONNECTOR_TYPES` names it), its module, and one
entry in each table below. The tables name ``module:attribute``, imported on first use (like the
connector models): a flush to a folder never loads paramiko, pika or cryptography. The
interfaces re-exported here are imported on first use too, so that loading a config (which
imports the spec modules, hence this package) costs no more than the specs themselves.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edi_gateway.errors import ConfigError

if TYPE_CHECKING:
    from edi_gateway.config import Connector
    from edi_gateway.transports.base import InboundTransport, OutboundTransport, TransportError
    from edi_gateway.transports.claims import Claimants
    from edi_gateway.transports.push import InboundServer, Receipt, Receive

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

_EXPORTS = {
    "InboundServer": "edi_gateway.transports.push:InboundServer",
    "InboundTransport": "edi_gateway.transports.base:InboundTransport",
    "OutboundTransport": "edi_gateway.transports.base:OutboundTransport",
    "Receipt": "edi_gateway.transports.push:Receipt",
    "Receive": "edi_gateway.transports.push:Receive",
    "TransportError": "edi_gateway.transports.base:TransportError",
}

_INBOUND = {
    "amqp": "edi_gateway.transports.amqp:AmqpInbound",
    "folder": "edi_gateway.transports.folder:FolderInbound",
    "imap": "edi_gateway.transports.email_in:ImapInbound",
    "sftp": "edi_gateway.transports.sftp:SftpInbound",
}
_OUTBOUND = {
    "amqp": "edi_gateway.transports.amqp:AmqpOutbound",
    "as2": "edi_gateway.transports.as2:As2Outbound",
    "folder": "edi_gateway.transports.folder:FolderOutbound",
    "http": "edi_gateway.transports.http:HttpOutbound",
    "sftp": "edi_gateway.transports.sftp:SftpOutbound",
    "smtp": "edi_gateway.transports.email_out:SmtpOutbound",
}

# Push connectors (the partner connects to us: AS2, HTTP): type -> server factory; the daemon
# starts one server per ``direction: in`` connector of such a type (see transports/push.py).
_SERVERS = {
    "as2": "edi_gateway.transports.as2:serve_as2",
    "http": "edi_gateway.transports.http:serve_http",
}


def is_push(conn: Connector) -> bool:
    """Whether ``conn`` is an inbound connector the partner pushes to (a server, not polled)."""
    return conn.direction == "in" and conn.type in _SERVERS


def open_server(conn: Connector, receive: Receive, max_bytes: int | None = None) -> InboundServer:
    """Start the listening server of a push connector; each payload goes to ``receive``."""
    server: InboundServer = _open(conn, "in", _SERVERS)(conn, receive, max_bytes)
    return server


def open_inbound(
    conn: Connector, max_bytes: int | None = None, claimants: Claimants | None = None
) -> InboundTransport:
    """The inbound transport for an ``direction: in`` connector.

    Payloads over ``max_bytes`` are not read; they reach intake as ``Envelope.oversize``.
    ``claimants`` (the daemon's leases) tells transports that claim files whose claims they may
    take over (``transports/claims.py``); a broker or a mail server returns what a dead gateway
    never acknowledged by itself.
    """
    transport: InboundTransport = _open(conn, "in", _INBOUND)(conn, max_bytes, claimants)
    return transport


def open_outbound(conn: Connector) -> OutboundTransport:
    """The outbound transport for an ``direction: out`` connector."""
    transport: OutboundTransport = _open(conn, "out", _OUTBOUND)(conn)
    return transport


def _open(conn: Connector, direction: str, table: dict[str, str]) -> Any:
    """The factory for ``conn``'s type (imported now), after checking its direction."""
    if conn.direction != direction:
        raise ConfigError(
            f"connector {conn.name!r} has direction: {conn.direction}, "
            f"expected direction: {direction} here"
        )
    target = table.get(conn.type)
    if target is None:
        raise ConfigError(f"connector {conn.name!r}: no {direction}bound transport for {conn.type}")
    return _load(target)


def _load(target: str) -> Any:
    """The attribute ``module:attribute`` names, its module imported now."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str) -> Any:
    """The re-exported interfaces (:data:`__all__`), imported on first use."""
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _load(target)
    globals()[name] = value
    return value
