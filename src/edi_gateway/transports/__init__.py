"""Transports: one module per protocol behind the interfaces in :mod:`.base`.

``open_inbound`` / ``open_outbound`` pick the class by the connector's ``type``; a new protocol
is one module plus one entry in each table below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from edi_gateway.config import Connector
from edi_gateway.errors import ConfigError
from edi_gateway.transports.base import InboundTransport, OutboundTransport, TransportError
from edi_gateway.transports.folder import FolderInbound, FolderOutbound

__all__ = [
    "InboundTransport",
    "OutboundTransport",
    "TransportError",
    "open_inbound",
    "open_outbound",
]

_T = TypeVar("_T")

_INBOUND: dict[str, Callable[[Any, int | None], InboundTransport]] = {"folder": FolderInbound}
_OUTBOUND: dict[str, Callable[[Any], OutboundTransport]] = {"folder": FolderOutbound}


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
