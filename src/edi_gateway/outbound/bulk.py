"""Outbound in bulk: one ``respond``, ``despatch`` or ``invoice`` over many orders (ADR 0038).

The orders come from a filter (those of ``orders list``) or from a CSV of decisions
(:mod:`edi_gateway.outbound.bulk_csv`); either way each becomes an :class:`Item`: an order and
the very request the single-order command would build. :func:`run` issues them in one process,
``batch_size`` items per transaction, through the same ``issue`` functions as the single-order
commands, so every check holds (state, ledger ``QUANTITY_EXCEEDED``, XSD before queueing; the
Peppol rules at delivery, as for every outbox row).

Idempotency: each issued document is recorded in ``bulk_issued`` under the SHA-256 of
(command, order, canonical request), in the same transaction as the document. An item whose key
is there is skipped and reported with the document issued before: re-running the same bulk
command, after a crash or by mistake, issues nothing twice. ``--force`` is not part of the key
(a re-run with it, to push through the orders refused the first time, must not issue again
those that went), and neither is the order of a request's lines, notes or charges (the same
CSV with its rows in another order is the same decision). A kill -9 mid-batch loses the
whole uncommitted batch (document, outbox row and key alike), which the re-run then issues once.

Each item runs in a savepoint: one the product refuses (its state, the ledger, an unknown line)
is rolled back alone and reported with its code; the rest of the batch goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from edi_gateway import crashpoints
from edi_gateway.domain.status import EXACT
from edi_gateway.errors import ErrorCode, GatewayError, first_line

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.outbound.issuing import Issued
    from edi_gateway.store.db import Store
    from edi_gateway.store.queries import Filters
    from edi_gateway.store.tables import Order as OrderRow

COMMANDS = ("respond", "despatch", "invoice")
LATER = "bulk_key"
ADDED_LATER = {LATER: "left out of the key when empty"}
"""The ``metadata`` of a request's field added after bulk keys were first recorded: left
empty, it is not part of the key (:func:`key_of`), so a re-run finds what was issued before."""
DEFAULT_BATCH = 200
ISSUED, SKIPPED, REFUSED = "issued", "skipped", "refused"
log = logging.getLogger(__name__)
Issue = Callable[..., "Issued"]


@dataclass(frozen=True, slots=True)
class Item:
    """One order to answer, despatch or invoice, with the request the single-order command
    takes (``respond.Decision``, ``despatch.DespatchRequest``, ``invoice.InvoiceRequest``)."""

    order_id: int
    request: Any
    force: bool = False
    where: str = ""
    """Where it came from, for the report: ``FILE row N`` (rows ``N-M``), or "" for a filter."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one item: ``issued``, ``skipped`` (issued by an earlier run of the same
    command: ``document_id`` is that document) or ``refused`` (``code``, ``message``)."""

    order_id: int
    order_ref: str
    state: str
    where: str = ""
    document_id: int | None = None
    doc_number: str | None = None
    outbox_id: int | None = None
    status: str | None = None
    code: str | None = None
    message: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The outcome as the ``--json`` output's row (keys without a value are left out)."""
        # its fields are plain values: no deep copy (dataclasses.asdict) needed
        values = ((f, getattr(self, f)) for f in self.__slots__)
        return {k: v for k, v in values if v not in (None, "")}


def key_of(command: str, order_id: int, request: Any) -> str:
    """The idempotency key of issuing ``request`` on the order: the same command with the same
    choices on the same order has the same key, whatever file, row, row order, filter or
    ``--force`` it came with."""
    return _digest([command, order_id, _plain(request, ordered=False)])


def earlier_keys(command: str, order_id: int, request: Any) -> tuple[str, str]:
    """The keys the first release of bulk outbound recorded for the same item (with
    ``force`` False and True; sequences in their given order): a re-run after an upgrade
    finds what that release issued."""
    plain = _plain(request, ordered=True)
    return _digest([command, order_id, plain, False]), _digest([command, order_id, plain, True])


def _digest(value: list[Any]) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(value: Any, *, ordered: bool) -> Any:
    """``value`` as JSON-able data in one spelling (``10`` and ``10.00`` are the same); not
    ``ordered``: the items of the request's sequences sorted, so their order does not count
    (each item keeps its own order).

    A quantity is normalized in the exact context (``EXACT``): Python's default rounds to 28
    significant digits, so two requests differing in the 29th got one key and the second was
    taken for a repeat of the first and not sent. Up to 28 digits both spell a number alike,
    so the keys recorded before stay as they were."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [  # a field added later and left empty keeps the keys recorded before it
            f
            for f in dataclasses.fields(value)
            if getattr(value, f.name) or f.metadata.get(LATER) is None
        ]
        return {f.name: _plain(getattr(value, f.name), ordered=ordered) for f in fields}
    if isinstance(value, Decimal):
        return format(value.normalize(EXACT), "f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        # the items of a request's sequence (its lines, notes, charges) in any order, but each
        # item as it is: ("1", 3) is not ("3", 1)
        items = [_plain(item, ordered=True) for item in value]
        return (
            items if ordered else sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
        )
    if isinstance(value, dict):
        return {str(k): _plain(v, ordered=ordered) for k, v in value.items()}
    return value


def issuer(command: str) -> Issue:
    """The in-transaction ``issue`` function of the single-order ``command``."""
    if command == "respond":
        from edi_gateway.outbound.respond import issue

        return issue
    if command == "despatch":
        from edi_gateway.outbound.despatch import issue_despatch

        return issue_despatch
    if command == "invoice":
        from edi_gateway.outbound.invoice import issue_invoice

        return issue_invoice
    raise GatewayError(ErrorCode.USAGE, f"no bulk {command!r}: expected one of {COMMANDS}")


def filtered(store: Store, filters: Filters) -> list[int]:
    """The store IDs of the orders ``filters`` select (as ``orders list``), oldest first."""
    from edi_gateway.store.queries import order_ids

    with store.reading() as session:
        return order_ids(session, filters)


def run(
    store: Store,
    settings: Settings,
    command: str,
    items: Sequence[Item],
    *,
    actor: str,
    batch_size: int = DEFAULT_BATCH,
    dry_run: bool = False,
) -> list[Outcome]:
    """Issue every item, ``batch_size`` per transaction; what became of each, in order.

    ``dry_run``: every check runs and every document is composed, written and XSD-checked
    exactly as for real, then each batch is rolled back: the outcomes say what would be
    issued (without store IDs, which would not exist) and what would be refused."""
    if batch_size < 1:
        raise GatewayError(ErrorCode.USAGE, f"a batch holds at least 1 order, not {batch_size}")
    from edi_gateway.store.db import again_after_deadlocks
    from edi_gateway.store.leases import MAX_KEYS

    batch_size = min(batch_size, MAX_KEYS)  # a lock per order (issuing.lock_orders)

    def once(batch: Sequence[Item]) -> list[Outcome]:
        with store.session() as session:
            attempt = session.begin_nested() if dry_run else None
            done = _Batch(session, settings, command, issuer(command), actor).run(batch)
            if attempt is not None:
                attempt.rollback()
                done = [dataclasses.replace(o, document_id=None, outbox_id=None) for o in done]
            return done

    # A batch locks its orders' numbers, so PostgreSQL may roll it back to break a circle with
    # processing (whose chains lock numbers after their own): it is run again, not reported.
    outcomes: list[Outcome] = []
    for batch in _chunks(items, batch_size):
        what = f"bulk {command} of {len(batch)} order(s)"
        outcomes += again_after_deadlocks(functools.partial(once, batch), what)
    return outcomes


@dataclass(frozen=True, slots=True)
class _Batch:
    """One transaction of a bulk run."""

    session: Session
    settings: Settings
    command: str
    issue: Issue
    actor: str

    def run(self, batch: Sequence[Item]) -> list[Outcome]:
        """Issue the batch's items that were not issued before, each in a savepoint."""
        from sqlalchemy import select

        from edi_gateway.pipeline.history import together
        from edi_gateway.store import schema
        from edi_gateway.store.prefetch import prefetched
        from edi_gateway.store.queries import lock_orders
        from edi_gateway.store.tables import Order

        session = self.session
        wanted = {item.order_id for item in batch}
        numbers = select(schema.orders.c.order_number).where(schema.orders.c.id.in_(wanted))
        lock_orders(session, session.scalars(numbers))  # before any of them is read
        keys = [key_of(self.command, item.order_id, item.request) for item in batch]
        known = {k: k for k in keys}  # any key an item may have been recorded under -> its key
        for item, key in zip(batch, keys, strict=True):
            known.update(
                dict.fromkeys(earlier_keys(self.command, item.order_id, item.request), key)
            )
        done = {known[k]: found for k, found in self._issued(list(known)).items()}
        orders = {o.id: o for o in session.scalars(select(Order).where(Order.id.in_(wanted)))}
        todo = [item.order_id for item, key in zip(batch, keys, strict=True) if key not in done]
        # every item's history in one statement at the end (a refused item's is dropped)
        chosen = [order_id for order_id in todo if order_id in orders]
        with prefetched(session, chosen), together(session):
            return self._each(batch, keys, orders, done)

    def _each(
        self,
        batch: Sequence[Item],
        keys: list[str],
        orders: dict[int, OrderRow],
        done: dict[str, tuple[int, str]],
    ) -> list[Outcome]:
        out: list[Outcome] = []
        for item, key in zip(batch, keys, strict=True):
            order = orders.get(item.order_id)
            if order is None:
                message = f"there is no order with store ID {item.order_id}"
                out.append(_refused(item, str(item.order_id), ErrorCode.NOT_FOUND, message))
                continue
            ref = f"{order.buyer_partner or order.buyer_key}:{order.order_number}"
            if key in done:
                document_id, number = done[key]
                out.append(Outcome(item.order_id, ref, SKIPPED, item.where, document_id, number))
                continue
            out.append(self.one(item, order, ref, key))
            crashpoints.reach("bulk-issued")
        return out

    def one(self, item: Item, order: OrderRow, ref: str, key: str) -> Outcome:
        """Issue one item in a savepoint: refused, it leaves nothing behind. When another run
        of the same command committed the key after this batch read the keys (two operators
        at once on PostgreSQL), the key's unique index refuses this one's: it is rolled back
        and reported skipped. Issued or not, what the batch read for the order that changes
        with a document (``store.prefetch.forget``) is not used again: a later item on the
        same order reads the store."""
        from edi_gateway.pipeline.correlate import forget_rolled_back
        from edi_gateway.pipeline.history import drop_since, pending_mark
        from edi_gateway.store.prefetch import forget

        mark = pending_mark(self.session)
        try:
            outcome = self._one(item, order, ref, key)
        finally:
            forget(self.session, order.id)
        if outcome.state != ISSUED:  # its savepoint was rolled back, wherever it failed:
            drop_since(self.session, mark)  # the events it handed the batch go with it
            forget_rolled_back(self.session)
        return outcome

    def _one(self, item: Item, order: OrderRow, ref: str, key: str) -> Outcome:
        from sqlalchemy import insert
        from sqlalchemy.exc import IntegrityError

        from edi_gateway.pipeline.history import now
        from edi_gateway.store.schema import bulk_issued

        try:
            with self.session.begin_nested():
                issued = self.issue(
                    self.session,
                    self.settings,
                    order,
                    item.request,
                    actor=self.actor,
                    force=item.force,
                )
                # what the item changed is written here, so that a failure of it is the
                # item's error (refused), not taken for the key's below (skipped)
                self.session.flush()
                values = {
                    "key": key,
                    "command": self.command,
                    "order_id": order.id,
                    "document_id": issued.document_id,
                    "created_at": now(),
                }
                try:  # the item's savepoint, rolled back on the error, undoes it all
                    self.session.execute(insert(bulk_issued), values)
                except IntegrityError as exc:
                    raise _IssuedMeanwhile from exc  # rolls the whole item back
        except _IssuedMeanwhile:
            said = "issued meanwhile by another run of the same command; nothing issued twice"
            return Outcome(order.id, ref, SKIPPED, item.where, message=said)
        except GatewayError as exc:
            earlier = self._issued([key]).get(key)
            if earlier is not None:  # refused because the same item was issued meanwhile
                document_id, number = earlier
                return Outcome(order.id, ref, SKIPPED, item.where, document_id, number)
            return _refused(item, ref, exc.code, exc.message)
        except Exception as exc:  # a bug refuses its order, never the rest of the run
            from edi_gateway.store.db import transient

            if transient(exc):
                raise  # the store went away: the batch is rolled back and the run stops
            log.exception("internal error issuing %s for order %s", self.command, ref)
            message = f"{type(exc).__name__}: {first_line(exc)}; nothing was issued for it"
            return _refused(item, ref, ErrorCode.INTERNAL_ERROR, message)
        return Outcome(
            order.id,
            ref,
            ISSUED,
            item.where,
            issued.document_id,
            issued.doc_number,
            issued.outbox_id,
            issued.status,
        )

    def _issued(self, keys: list[str]) -> dict[str, tuple[int, str]]:
        """key -> (document id, number) of the documents recorded under these keys."""
        from sqlalchemy import select

        from edi_gateway.store.schema import bulk_issued, documents

        query = select(bulk_issued.c.key, bulk_issued.c.document_id, documents.c.doc_number)
        query = query.join(documents, documents.c.id == bulk_issued.c.document_id)
        rows = self.session.execute(query.where(bulk_issued.c.key.in_(keys)))
        return {key: (document_id, number) for key, document_id, number in rows}


class _IssuedMeanwhile(Exception):
    """The item's key was committed by another run after this batch read the keys."""


def _refused(item: Item, ref: str, code: str, message: str) -> Outcome:
    return Outcome(item.order_id, ref, REFUSED, item.where, code=str(code), message=message)


def _chunks(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """How many items were issued, skipped and refused."""
    tally = {ISSUED: 0, SKIPPED: 0, REFUSED: 0}
    for outcome in outcomes:
        tally[outcome.state] += 1
    return tally
