"""The connector contract: what a real server must offer the shared suite (``test_contract.py``).

Each connector type provides one :class:`Harness` (a module ``harness_<type>.py`` beside this
one) that starts its real server (sshd, RabbitMQ, Dovecot + SMTP, an AS2 peer) on loopback, in
a temporary folder, and plays the trading partner's side: it sends payloads for the gateway's
inbound connector to take, and reads what the gateway's outbound connector delivered. The suite
(``test_contract.py``) then proves the same properties for every type: round trip, many files,
a server restart in the middle (nothing lost, nothing twice), bad credentials and hostile names.

Servers are started by the fixtures in ``conftest.py`` (one server per module, restarted only by
the restart test). A server that cannot be started fails the test under CI=true; it never skips.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from edi_gateway.transports import TransportError, open_inbound

if TYPE_CHECKING:
    from edi_gateway.app import Gateway, Outcome

Stop = Callable[[], bool]


class Harness(Protocol):
    """A running server for one connector type, seen from the partner's side."""

    kind: str
    """The connector ``type`` in gateway.yaml: ``folder``, ``sftp``, ``amqp``, ``imap`` ..."""

    def inbound(self, name: str) -> dict[str, Any]:
        """A ``direction: in`` connector entry for gateway.yaml that reads what :meth:`send` sends.

        Secrets are referenced (``{env: ...}`` / ``{file: ...}``), never inlined.
        """
        ...

    def outbound(self, name: str) -> dict[str, Any]:
        """A ``direction: out`` connector entry whose deliveries :meth:`delivered` sees."""
        ...

    def with_bad_credentials(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The same connector entry with credentials the server refuses."""
        ...

    def take(self, gateway: Gateway, name: str, stop: Stop = lambda: False) -> Outcome:
        """Let ``gateway``'s inbound connector ``name`` take what was sent: one poll cycle for a
        polling connector (:func:`poll_once`), or serving until the partner's pushes are
        answered for a push connector (AS2, HTTP). ``stop`` is asked between batches."""
        ...

    def send(self, name: str, payload: bytes) -> None:
        """As the partner: send ``payload`` called ``name``; where the protocol cannot carry a
        name as given (a directory entry with "/", NUL), the nearest name it can carry."""
        ...

    def waiting(self) -> int:
        """How many sent payloads the gateway has not yet taken for good (not acknowledged)."""
        ...

    def delivered(self) -> dict[str, bytes]:
        """As the partner: every payload the gateway delivered, by the name it arrived under."""
        ...

    def reset(self) -> None:
        """Forget everything sent and delivered (each contract test starts from empty)."""
        ...

    def restart(self) -> None:
        """Stop the server and start it again on the same port with the same data."""
        ...

    def outside_files(self) -> list[str]:
        """Files that appeared outside the areas the connectors may write (hostile names test).

        Harnesses without a file system view return ``[]``.
        """
        ...


def poll_once(gateway: Gateway, name: str, stop: Stop = lambda: False) -> Outcome:
    """One poll cycle of a polling connector (the ``take`` of every polling harness)."""
    transport = open_inbound(gateway.settings.connector(name), gateway.policy.max_size)
    try:
        return gateway.poll(transport, stop=stop)
    finally:
        transport.close()


def take_all(harness: Harness, gateway: Gateway, name: str, tries: int = 6) -> dict[int, str]:
    """``take`` until nothing is left waiting; a recoverable TransportError (a server coming
    back after a restart) is tried again. Returns every message id with its final state."""
    states: dict[int, str] = {}
    for _ in range(tries):
        try:
            states.update(harness.take(gateway, name).states)
        except TransportError as exc:
            if not exc.recoverable:
                raise
            continue
        if harness.waiting() == 0:
            break
    return states
