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

from typing import Any, Protocol


class Harness(Protocol):
    """A running server for one connector type, seen from the partner's side."""

    kind: str
    """The connector ``type`` in gateway.yaml (``folder``, ``sftp``, ``amqp``, ``email``, ``as2``)."""

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

    def send(self, name: str, payload: bytes) -> None:
        """As the partner: send ``payload`` (called ``name`` where the protocol has names)."""
        ...

    def waiting(self) -> int:
        """How many sent payloads the gateway has not yet taken for good (not acknowledged)."""
        ...

    def delivered(self) -> dict[str, bytes]:
        """As the partner: every payload the gateway delivered, by the name it arrived under."""
        ...

    def restart(self) -> None:
        """Stop the server and start it again on the same port with the same data."""
        ...

    def outside_files(self) -> list[str]:
        """Files that appeared outside the areas the connectors may write (hostile names test).

        Harnesses without a file system view return ``[]``.
        """
        ...
