"""What the harnesses of push connectors (AS2, plain HTTP) share.

Inbound is a push: ``send`` queues the partner's payloads; ``take`` starts the gateway's real
endpoint for the connector (``transports.open_server``) with the daemon's own ``receive`` and
pushes what is queued, counting a payload taken once the gateway accepted it. Outbound
deliveries go to the partner's own endpoint (``partner``: ``delivered``, ``seen``, ``start``,
``stop``), which keeps them in memory.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from edi_gateway.errors import ErrorCode
from edi_gateway.transports import Receipt, TransportError, open_server
from tests.integration.connectors.harness import Stop

if TYPE_CHECKING:
    from edi_gateway.app import Gateway, Outcome
    from edi_gateway.envelope import Envelope


class PushHarness:
    """The partner side of a push connector; subclasses say how one payload is pushed."""

    queue: list[tuple[str, str, bytes]]
    """(Message-ID, name, payload) sent by the partner, not yet accepted by the gateway."""
    partner: Any

    def deliver_one(self, server: Any, message_id: str, name: str, payload: bytes) -> str | None:
        """Push one payload to the gateway's ``server``; None if accepted, else why not."""
        raise NotImplementedError

    def take(self, gateway: Gateway, name: str, stop: Stop = lambda: False) -> Outcome:
        from edi_gateway.app import Outcome
        from edi_gateway.daemon import make_receive

        outcome = Outcome()
        inner = make_receive(gateway, name, threading.Lock())

        def receive(envelope: Envelope) -> Receipt:
            receipt = inner(envelope)
            outcome.add(name, {receipt.message_id: receipt.state})
            return receipt

        server = open_server(gateway.settings.connector(name), receive, gateway.policy.max_size)
        refused: list[str] = []
        try:
            for item in list(self.queue):
                why = self.deliver_one(server, *item)
                if why is None:
                    self.queue.remove(item)
                else:
                    refused.append(why)
                if stop():
                    break
        finally:
            server.close()
        if refused and not outcome.states:
            raise TransportError(
                f"the gateway refused the partner's payloads: {refused[0]}",
                recoverable=False,
                code=ErrorCode.AUTH_FAILED,
            )
        return outcome

    def waiting(self) -> int:
        return len(self.queue)

    def delivered(self) -> dict[str, bytes]:
        return dict(self.partner.delivered)

    def reset(self) -> None:
        self.queue.clear()
        self.partner.delivered.clear()
        self.partner.seen.clear()

    def restart(self) -> None:
        self.partner.stop()
        self.partner.start()

    def outside_files(self) -> list[str]:
        return []  # the partner keeps deliveries in memory; the gateway writes no files

    def close(self) -> None:
        self.partner.stop()
