"""Which connectors this gateway polls, when several share a store (docs/adr/0018).

A running gateway holds the lease ``instance:<id>`` (it is alive) and ``connector:<name>`` for
each polled inbound connector it owns (``store/leases.py``). The loop renews them every third of
``daemon.lease_seconds``, and between the batches of a long poll; a gateway that dies or stalls
stops renewing, and another takes its connectors once the lease has run out. Push connectors
(AS2, HTTP) need no owner: every gateway serves them, intake being idempotent on its key.

Gateways share the polled connectors fairly: each takes at most its share (the number of
polled connectors over the number of gateways alive, rounded up) and, when more gateways are
alive than when it took them, gives back what exceeds its share for another to take. Work
spreads over gateways by connector: one connector's messages are taken by its owner.

Folder and SFTP claims carry the claimant's instance id: a gateway offers again only its own
claims and those of gateways that are no longer alive (:meth:`Ownership.alive`).

On SQLite the daemon holds the store alone (``store/instance.py``): whatever a previous run left
(leases, claims) is taken over at once, since no other gateway can be alive.
"""

from __future__ import annotations

import json
import logging
from time import monotonic
from typing import TYPE_CHECKING

from edi_gateway.store.db import Store
from edi_gateway.store.instance import instance_id, whoami
from edi_gateway.store.leases import alive, hold, read, release

if TYPE_CHECKING:
    from sqlalchemy import Connection

log = logging.getLogger("edi_gateway.daemon_leases")  # not __name__: the name log filters know


class Ownership:
    """This gateway's leases: who it is, the connectors it owns, when to renew them."""

    def __init__(self, store: Store, seconds: float, polled: int = 1) -> None:
        self.store, self.seconds = store, seconds
        self.polled = max(polled, 1)
        """How many polled connectors the gateways share."""
        self.share = self.polled
        """How many of them this gateway takes (as of its last renewal)."""
        self.alone = store.engine.dialect.name == "sqlite"
        """The only gateway on this store (SQLite: the run lock says so)."""
        self.me = instance_id()
        self.info = json.dumps(whoami(), sort_keys=True)[:300]
        self.owned: dict[str, int] = {}
        """Connector -> the fencing token of its lease, for those this gateway owns."""
        self.renew_at = 0.0  # monotonic: when the leases are renewed next

    @property
    def every(self) -> float:
        """How often the leases are renewed, in seconds."""
        return self.seconds / 3

    def beat(self) -> None:
        """Renew this gateway's leases when a third of their time has passed; drop the
        connectors whose lease somebody else took meanwhile (this gateway stalled)."""
        if monotonic() < self.renew_at:
            return
        with self.store.connect() as conn:
            hold(conn, f"instance:{self.me}", self.me, self.seconds, self.info, force=True)
            for name in list(self.owned):
                self._renew(conn, name)
            if not self.alone:
                running = len(read(conn, "instance:", current=True)) or 1
                self.share = -(-self.polled // running)
                extra = sorted(self.owned)[self.share :]
                if extra:  # more gateways than when these were taken: give them back
                    release(conn, [f"connector:{n}" for n in extra], self.me)
                    for name in extra:
                        del self.owned[name]
                    log.info("gave up %s for other gateways to poll", ", ".join(extra))
        self.renew_at = monotonic() + self.every

    def may_poll(self, connector: str) -> bool:
        """Take the lease of ``connector`` (one it holds is renewed with the others, by
        :meth:`beat`): True when this gateway is its owner. A gateway that has its share
        already takes no more."""
        if connector in self.owned:
            return self.keeps(connector)
        if len(self.owned) >= self.share:
            return False
        with self.store.connect() as conn:
            return self._renew(conn, connector)

    def keeps(self, connector: str) -> bool:
        """Between batches of a poll: renew when due; False once ``connector`` is lost."""
        if monotonic() >= self.renew_at:
            self.beat()
        return connector in self.owned

    def alive(self, claimants: set[str]) -> set[str]:
        """Which of these claimants (instance ids) are running: this gateway, and those whose
        instance lease is current."""
        others = claimants - {self.me}
        if self.alone:
            return claimants & {self.me}
        with self.store.connect() as conn:
            found = alive(conn, others) if others else set()
        return found | (claimants & {self.me})

    def release(self) -> None:
        """At a clean stop: give up every lease, so the others need not wait them out."""
        names = [f"connector:{n}" for n in self.owned] + [f"instance:{self.me}"]
        try:
            with self.store.connect() as conn:
                release(conn, names, self.me)
        except Exception:  # the leases run out by themselves
            log.warning("could not give up this gateway's leases", exc_info=True)
        self.owned.clear()

    def _renew(self, conn: Connection, connector: str) -> bool:
        name = f"connector:{connector}"
        token = hold(conn, name, self.me, self.seconds, self.info, force=self.alone)
        if token is None:
            if self.owned.pop(connector, None) is not None:
                log.warning("connector %s: another gateway took it over", connector)
            return False
        if self.owned.get(connector) != token:
            log.info(
                "connector %s: polled by this gateway (%s, lease %d)", connector, self.me, token
            )
        self.owned[connector] = token
        return True
