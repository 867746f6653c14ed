"""Inbound connectors the partner pushes to (AS2, HTTP): the daemon starts a server for them.

A push connector type registers one factory in ``transports/__init__.py``'s ``_SERVERS``
table: ``factory(connector, receive, max_bytes) -> InboundServer``, returning a server that
already listens. For each payload a partner pushes, the server builds an :class:`Envelope`
(a stable ``source_ref`` such as the AS2 Message-ID, so a re-send is recognised) and calls
``receive(envelope)``. ``receive`` returns once intake has committed the payload and processing
has run (it waits its turn: the daemon processes one batch at a time), with a :class:`Receipt`;
only then may the server answer the partner (an MDN, an HTTP 2xx). When ``receive`` raises, the
server answers with a temporary failure so the partner sends again.

The daemon starts the servers after start-up and calls ``close()`` at shutdown, after the
polling loop ended; ``close`` stops accepting, lets requests in hand finish and releases the
port. A factory raising ``TransportError`` (port in use, certificate unreadable) is retried with
the connector's backoff, like a failing poll. ``run --once`` starts no servers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edi_gateway.envelope import Envelope


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of a pushed payload: its message id and final state."""

    message_id: int
    state: str
    """``processed``, ``orphan``, ``duplicate`` or ``failed``."""
    repeated: bool = False
    """The payload's ``(source, source_ref)`` was stored before this push: a re-send of
    something already taken (an AS2 Message-ID seen again). Nothing new was stored."""

    @property
    def ok(self) -> bool:
        """Whether the document was accepted (a failed one is kept, with its error code)."""
        return self.state != "failed"


Receive = Callable[[Envelope], Receipt]


class InboundServer(Protocol):
    """A listening server of a push connector."""

    name: str

    def close(self) -> None:
        """Stop accepting, finish the requests in hand, release the port."""
        ...


ServerFactory = Callable[[Any, Receive, int | None], InboundServer]
