"""Forwarding orders to suppliers: each order a ``forwards`` row, then outbox rows, then files.

States of a forward (one per order and supplier)::

    held ──release──▶ waiting ──flush──▶ queued ──outbox delivered──▶ delivered
                         │                  └──outbox gave up──▶ failed
                         └──cannot render──▶ failed

    held, waiting, queued (nothing of it sent yet), failed ──order cancelled──▶ withdrawn

- ``forward_orders`` (the react step) makes the row the moment the order is processed:
  ``held`` when the supplier's profile says ``hold: true``, else ``waiting``.
- ``flush_forwards`` takes, per supplier whose bundle is due, every waiting row, renders its
  files (the orders read in chunks), builds the bundle(s), queues them in the outbox and marks
  the rows ``queued`` with the bundle's number, all in ONE transaction: a crash anywhere before
  the commit leaves every row ``waiting`` and nothing queued; after it, the outbox owns
  delivery (idempotent per file name and content). A bundle over the profile's ``max_orders``
  / ``max_bytes`` goes as parts, each a bundle of its own (its own number and ``seq``), all
  queued in that same transaction (docs/adr/0039-bundles-that-scale.md). The rows are
  claimed with ``UPDATE ... WHERE state = 'waiting'``: two flushes at once cannot put an order
  in two bundles (the loser rolls back).
- ``note_deliveries`` moves ``queued`` rows on once their outbox rows are sent (or failed).
- A cancelled order is never forwarded: ``outbound/cancel_supplier.py`` withdraws the forward
  of an order cancelled before it reached the supplier (docs/adr/0008-cancellations.md).

Every step writes a history event on each order involved.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CursorResult, func, select, update

from edi_gateway.crashpoints import reach
from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.outbox import Outgoing, enqueue
from edi_gateway.pipeline.history import SYSTEM, now, record, record_many
from edi_gateway.store.leases import (
    DELIVERIES,
    SUPPLIER,
    skip_locked,
    try_xact_lock,
    xact_locks,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row, Table
    from sqlalchemy.orm import Session

    from edi_gateway.config import ForwardProfile, Partner, Settings
    from edi_gateway.outbound.bundle import Forwarded, Packed
    from edi_gateway.store.db import Store

    Waiting = Row[tuple[int, int, datetime | None]]
    """A waiting forward as a flush reads it: its ID, its order's ID, since when it waits."""

HELD, WAITING, QUEUED, DELIVERED, FAILED = "held", "waiting", "queued", "delivered", "failed"
WITHDRAWN = "withdrawn"
_CHUNK = 500  # orders (forwards) per query while rendering or moving a bundle
log = logging.getLogger(__name__)


class ForwardConflict(GatewayError):
    """Another flush claimed some of these orders first; this flush rolled back."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.NOT_ALLOWED, message)


@dataclass(frozen=True, slots=True)
class Released:
    """An order an operator released: for which suppliers, and their forwards' states now."""

    order_id: int
    order_number: str
    states: dict[str, str]


def forward_orders(
    store: Store, settings: Settings, message_ids: Sequence[int], *, at: datetime | None = None
) -> list[int]:
    """Make forward rows for the new orders these messages brought; return the rows' ids.

    Suppliers that take orders one by one (``bundle: none``) are flushed at once.
    """
    from edi_gateway.store.queries import orders_created_by
    from edi_gateway.store.tables import Forward, Message

    suppliers = {p.id: p for p in settings.partners if p.forward is not None}
    if not suppliers or not message_ids:
        return []
    moment = at or now()
    made: list[int] = []
    with store.session() as session:
        found = list(session.execute(orders_created_by(message_ids).add_columns(Message.source)))
        forwarded = {
            (order_id, partner)
            for order_id, partner in session.execute(
                select(Forward.order_id, Forward.partner).where(
                    Forward.order_id.in_([order.id for order, _ in found])
                )
            )
        }
        for order, source in found:
            route = settings.route_for(order.buyer_partner, connector_of(source))
            supplier = suppliers.get(route.deliver_to if route else order.seller_partner or "")
            if supplier is None:
                continue
            if order.cancelled:  # its cancellation came with it: the supplier never sees it
                record(
                    session,
                    "forward.withdrawn",
                    f"not forwarded to {supplier.id}: the order is cancelled",
                    order_id=order.id,
                )
                continue
            if (order.id, supplier.id) in forwarded:
                continue
            held = supplier.forward is not None and supplier.forward.hold
            row = Forward(
                order_id=order.id,
                partner=supplier.id,
                state=HELD if held else WAITING,
                waiting_since=None if held else moment,
                created_at=moment,
                updated_at=moment,
            )
            session.add(row)
            session.flush()
            made.append(row.id)
            detail = (
                f"held for {supplier.id} until an operator releases it "
                f"(edi-gateway orders release {order.id})"
                if held
                else f"waiting to go to {supplier.id}"
            ) + (f" (route {route.name})" if route else "")
            record(session, f"forward.{row.state}", detail, order_id=order.id)
    at_once = [p.id for p in suppliers.values() if p.forward and p.forward.bundle == "none"]
    if made and at_once:  # a supplier another gateway is bundling takes these at its next flush
        flush_forwards(store, settings, partners=at_once, at=at, wait=False)
    return made


def connector_of(source: str) -> str | None:
    """The connector name in a message's source (``folder:inbox`` -> ``inbox``); None for
    payloads that came through no connector (``cli`` for ``ingest``)."""
    kind, colon, name = source.partition(":")
    return name if colon and kind and name else None


def release(store: Store, settings: Settings, order_ref: str, *, actor: str) -> Released:
    """Release an order's held forwards (refused, saying why, when none is held)."""
    from edi_gateway.outbound.issuing import NotAllowed
    from edi_gateway.store.queries import locked_order
    from edi_gateway.store.tables import Forward

    moment = now()
    with store.session() as session:
        order = locked_order(session, order_ref)  # two releases at once: one sends
        rows = list(session.scalars(select(Forward).where(Forward.order_id == order.id)))
        held = [r for r in rows if r.state == HELD]
        if not held:
            listing = ", ".join(f"to {r.partner}: {r.state}" for r in rows)
            raise NotAllowed(
                f"order {order.order_number} is not held, so there is nothing to release"
                + (
                    f" (its forward {listing})"
                    if listing
                    else " (it is not forwarded to a supplier)"
                )
            )
        for row in held:
            row.state, row.waiting_since, row.updated_at = WAITING, moment, moment
            record(
                session,
                "forward.released",
                f"released for {row.partner}",
                actor=actor,
                order_id=order.id,
            )
        order_id, number, partners = order.id, order.order_number, [r.partner for r in held]
    at_once = [p for p in partners if _profile(settings, p).bundle == "none"]
    if at_once:
        flush_forwards(store, settings, partners=at_once)
    with store.session() as session:
        states = {
            r.partner: r.state
            for r in session.scalars(select(Forward).where(Forward.order_id == order_id))
        }
    return Released(order_id, number, states)


def waiting_bundles(
    session: Session, settings: Settings, moment: datetime, *, limit: int = 100
) -> tuple[list[dict[str, object]], int]:
    """Forwards not yet in the outbox, oldest first (at most ``limit``, and how many in all):
    ``held`` ones until an operator releases them, ``waiting`` ones until their supplier's
    bundle is due (``goes``: when, by its ``forward:`` schedule, or at the next delivery
    cycle when it is due already)."""
    from edi_gateway.store.queries import utc_text
    from edi_gateway.store.tables import Forward, Order

    pending = (Forward.state.in_((HELD, WAITING)),)
    total = session.scalar(select(func.count()).select_from(Forward).where(*pending)) or 0
    waiting: dict[str, list[datetime]] = defaultdict(list)
    for partner_id, since in session.execute(
        select(Forward.partner, Forward.waiting_since).where(Forward.state == WAITING)
    ):
        waiting[partner_id].append(since or moment)
    rows = session.execute(
        select(Forward, Order.order_number)
        .join(Order, Order.id == Forward.order_id)
        .where(*pending)
        .order_by(Forward.id)
        .limit(limit)
    )
    out: list[dict[str, object]] = []
    for row, number in rows:
        goes = "when an operator releases it"
        partner = settings.partner(row.partner)
        if row.state == WAITING and (partner is None or partner.forward is None):
            goes = f"never: {row.partner} has no forward profile in gateway.yaml"
        elif row.state == WAITING and partner is not None and partner.forward is not None:
            goes = _goes(partner.forward, waiting[row.partner], moment)
        out.append(
            {
                "forward_id": row.id,
                "order_id": row.order_id,
                "order_number": number,
                "partner": row.partner,
                "state": row.state,
                "since": utc_text(row.waiting_since or row.created_at),
                "goes": goes,
                "bundled_with": len(waiting[row.partner]) if row.state == WAITING else 0,
            }
        )
    return out, int(total)


def _goes(profile: ForwardProfile, since: list[datetime], moment: datetime) -> str:
    """When the waiting orders of one supplier go, in words."""
    from edi_gateway.outbound.bundle import is_due, next_instant
    from edi_gateway.store.queries import utc_text

    if is_due(profile, waiting=len(since), oldest=min(since), now=moment):
        return "with the next delivery cycle"
    due = next_instant(profile, min(since))
    parts = [f"at {utc_text(due)}"] if due else []
    if profile.when_waiting is not None:
        parts.append(f"once {profile.when_waiting} orders wait")
    return " or ".join(parts) or "never by schedule (no every_minutes, at or when_waiting)"


def flush_forwards(
    store: Store,
    settings: Settings,
    *,
    partners: Sequence[str] | None = None,
    at: datetime | None = None,
    force: bool = False,
    wait: bool = True,
    skipped: set[str] | None = None,
) -> dict[str, list[int]]:
    """Queue the due bundles (all, with ``force``); return supplier -> outbox ids queued.

    One transaction per supplier; a supplier whose flush fails is logged and retried next time.
    A supplier is bundled by one gateway at a time; without ``wait``, one that another gateway
    is bundling right now is left to the next flush (by then it has what is committed), and
    its id added to ``skipped``.
    """
    moment = at or now()
    queued: dict[str, list[int]] = {}
    for partner in settings.partners:
        if partner.forward is None or (partners is not None and partner.id not in partners):
            continue
        try:
            # Core, not an ORM session: a flush of a bundle, whose run is mostly start-up,
            # does not import the ORM (nor does the delivery that follows: outbox.Delivery)
            with store.connect() as conn:
                if wait:
                    xact_locks(conn, SUPPLIER, [partner.id])
                elif not try_xact_lock(conn, SUPPLIER, partner.id):
                    if skipped is not None:
                        skipped.add(partner.id)
                    continue
                ids = _flush_supplier(conn, settings, partner, moment, force=force)
        except ForwardConflict as exc:
            log.warning("%s", exc.message)
            continue
        if ids:
            queued[partner.id] = ids
    return queued


def note_deliveries(store: Store, *, wait: bool = True) -> dict[str, str]:
    """Move queued forwards on whose outbox rows are done; return bundle -> new state. One
    gateway at a time; without ``wait``, nothing when another is at it."""
    from edi_gateway.store.schema import forwards, outbox

    moved: dict[str, str] = {}
    with store.connect() as conn:
        waiting = select(forwards.c.id).where(forwards.c.state == QUEUED).limit(1)
        if conn.execute(waiting).first() is None:
            return moved  # nothing queued (most flushes)
    f, o = forwards.c, outbox.c
    with store.connect() as conn:
        if wait:
            xact_locks(conn, DELIVERIES, ["bundles"])
        elif not try_xact_lock(conn, DELIVERIES, "bundles"):
            return moved
        # locked: a retry or withdrawal of their files changes them after this, not meanwhile;
        # those it (or a cancellation) holds are skipped, for the next round (never waited for)
        # (Core rows, not ORM objects: a bundle of 1,000 orders moves 1,000 forwards)
        rows = conn.execute(
            skip_locked(select(f.id, f.partner, f.bundle, f.order_id).where(f.state == QUEUED))
        )
        by_bundle: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for row_id, partner, bundle, order_id in rows:
            by_bundle[(partner, bundle or "")].append((row_id, order_id))
        # The files of every queued bundle in one query per 500 bundles, not one per bundle,
        # on the outbox's doc_number index (docs/adr/0036)
        found: list[tuple[int, str, str, str, str | None]] = []
        names = sorted({bundle for _, bundle in by_bundle})
        for start in range(0, len(names), 500):
            found += [
                (row_id, partner, bundle, state, where)
                for row_id, partner, bundle, state, where in conn.execute(
                    select(o.id, o.partner, o.doc_number, o.state, o.delivered_to).where(
                        o.doc_number.in_(names[start : start + 500])
                    )
                )
            ]
        of_bundle: dict[tuple[str, str], list[tuple[str, str | None]]] = defaultdict(list)
        for _, partner, bundle, state, where in sorted(found):  # in id order, as they were made
            if (partner, bundle) in by_bundle:
                of_bundle[(partner, bundle)].append((state, where))
        for (partner, bundle), members in by_bundle.items():
            files = of_bundle.get((partner, bundle), [])
            if files and all(state == "sent" for state, _ in files):
                where = ", ".join(str(w) for _, w in files)
                _move(conn, members, DELIVERED, f"delivered to {partner}: {where}")
                moved[bundle] = DELIVERED
            elif any(state == "failed" for state, _ in files):
                _move(conn, members, FAILED, f"delivery of {bundle} failed: see outbox list")
                moved[bundle] = FAILED
    return moved


def flush_all(
    store: Store,
    settings: Settings,
    *,
    partner: str | None = None,
    at: datetime | None = None,
    wait: bool = True,
    skipped: set[str] | None = None,
) -> dict[int, str]:
    """One delivery cycle: due bundles into the outbox, the outbox flushed (``partner``'s rows
    only, if given), deliveries noted. Without ``wait`` (the daemon, which comes back soon),
    what another gateway is doing at this moment is left to it (``skipped``: the suppliers)."""
    from edi_gateway.outbound.outbox import flush

    flush_forwards(store, settings, at=at, wait=wait, skipped=skipped)
    done = flush(store, settings, partner=partner, at=at)
    note_deliveries(store, wait=wait)
    return done


def _flush_supplier(
    conn: Connection, settings: Settings, partner: Partner, moment: datetime, *, force: bool
) -> list[int]:
    # bundling (and its layouts) imported only when a supplier forwards: a delivery cycle of
    # a gateway that forwards nothing (a run --once of the intake benchmark) skips it
    from edi_gateway.outbound.bundle import build, is_due
    from edi_gateway.store.schema import forwards

    profile = _profile(settings, partner.id)
    f = forwards.c
    # Core rows, not ORM objects: a flush of 1,000 orders reads 1,000 of them
    rows: list[Waiting] = list(
        conn.execute(
            select(f.id, f.order_id, f.waiting_since)
            .where(f.partner == partner.id, f.state == WAITING)
            .order_by(f.id)
        )
    )
    oldest = min((r.waiting_since or moment for r in rows), default=None)
    if not force and not is_due(profile, waiting=len(rows), oldest=oldest, now=moment):
        return []
    seq = conn.scalar(select(func.max(f.seq)).where(f.partner == partner.id)) or 0
    orders = {r.id: r.order_id for r in rows}
    # With max_orders, each part's orders are read, rendered and queued before the next part's
    # are read: a flush holds one part's orders at a time (all in this one transaction).
    cap = (profile.max_orders if profile.bundle != "none" else None) or max(len(rows), 1)
    what = "bundle" if profile.bundle != "none" else "file(s)"
    queued: list[int] = []
    part = 1
    for start in range(0, len(rows), cap):
        ready = _render(conn, partner, rows[start : start + cap], moment)
        groups = [[f] for f in ready] if profile.bundle == "none" else [ready] if ready else []
        del ready
        groups.reverse()
        while groups:
            # each group's rendered files are let go once built (a 5,000-order zip: ~100 MB)
            packed = build(
                profile,
                partner.id,
                groups.pop(),
                seq=seq + 1,
                sent_on=moment.date(),
                language=partner.language,
                part=part,
            )
            events: list[tuple[str, str | None, int | None]] = []
            for number in sorted({p.seq for p in packed}):
                files = [p for p in packed if p.seq == number]
                bundle = f"{partner.id}-{number}"
                queued += [
                    _queue(conn, settings, partner, p, bundle=bundle, orders=orders) for p in files
                ]
                ids = list(dict.fromkeys(i for p in files for i in p.forward_ids))
                _mark(conn, ids, bundle, number, moment)
                names = ", ".join(p.filename for p in files)
                events += [
                    ("forward.queued", f"in {what} {bundle} for {partner.id}: {names}", orders[i])
                    for i in ids
                ]
                reach("after-bundle-part")
                seq, part = number, part + 1
            record_many(conn, events)
    return queued


def _render(
    conn: Connection, partner: Partner, rows: Sequence[Waiting], moment: datetime
) -> list[Forwarded]:
    """The orders of ``rows`` with their files, read in chunks; an order that cannot be
    rendered fails its row (recorded), a cancelled one is withdrawn, the rest go."""
    from edi_gateway.outbound.bundle import Forwarded, render_order
    from edi_gateway.outbound.issuing import stored_order
    from edi_gateway.store.queries import order_payloads
    from edi_gateway.store.schema import forwards, orders

    profile = partner.forward
    assert profile is not None
    per_order = profile.bundle in ("none", "zip")
    ready: list[Forwarded] = []
    events: list[tuple[str, str | None, int | None]] = []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        ids = [r.order_id for r in chunk]
        # the three columns used, not ORM objects: the document itself comes from the payload
        order_rows = {
            o.id: o
            for o in conn.execute(
                select(
                    orders.c.id, orders.c.cancelled, orders.c.buyer_partner, orders.c.buyer_key
                ).where(orders.c.id.in_(ids))
            )
        }
        payloads = order_payloads(conn, ids)
        for row in chunk:
            order_row = order_rows[row.order_id]
            if order_row.cancelled:  # cancelled while waiting: withdrawn, not sent
                _set(conn, forwards, row.id, state=WITHDRAWN, updated_at=moment)
                detail = f"not forwarded to {partner.id}: the order is cancelled"
                events.append(("forward.withdrawn", detail, row.order_id))
                continue
            try:
                payload = payloads.get(row.order_id)
                if payload is None:
                    raise GatewayError(
                        ErrorCode.INTERNAL_ERROR, f"order {row.order_id} has no stored Order"
                    )
                document = stored_order(payload)
                files = (
                    render_order(
                        profile,
                        partner.id,
                        document,
                        payload,
                        language=partner.language,
                        sent_on=moment.date(),
                    )
                    if per_order
                    else ()
                )
            except Exception as exc:  # noqa: BLE001 -- one bad order must not hold back the rest
                message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                _set(conn, forwards, row.id, state=FAILED, error=message[:2000], updated_at=moment)
                detail = f"not forwarded to {partner.id}: {message}"[:2000]
                events.append(("forward.failed", detail, row.order_id))
                continue
            buyer = order_row.buyer_partner or order_row.buyer_key
            whole = None if per_order else document
            ready.append(Forwarded(row.id, document.document_id, buyer, files, whole))
    record_many(conn, events)
    return ready


def _set(conn: Connection, forwards: Table, forward_id: int, **values: object) -> None:
    """Set ``values`` on one forward (one the flush could not send: rare, one at a time)."""
    conn.execute(update(forwards).where(forwards.c.id == forward_id).values(**values))


def _queue(
    conn: Connection,
    settings: Settings,
    partner: Partner,
    packed: Packed,
    *,
    bundle: str,
    orders: dict[int, int],
) -> int:
    """Queue one file in the outbox under its pattern name (never one already used there)."""

    profile = partner.forward
    assert profile is not None
    connector = profile.connector or partner.outbound or ""
    single = len(packed.forward_ids) == 1
    outbox_id = enqueue(
        conn,
        Outgoing(
            partner=partner.id,
            connector=connector,
            kind="Order" if profile.bundle == "none" else "OrderBundle",
            doc_number=bundle,
            payload=packed.payload,
            extension=packed.extension,
            media_type=packed.media_type,
            order_id=orders[packed.forward_ids[0]] if single else None,
            filename=packed.filename,  # the supplier's pattern; enqueue keeps names unique
        ),
        settings,
    )
    return outbox_id


def _mark(
    conn: Connection, forward_ids: list[int], bundle: str, seq: int, moment: datetime
) -> None:
    """Claim the rows for ``bundle``; ForwardConflict (rolling back) if another flush did."""
    from edi_gateway.store.schema import forwards

    result = conn.execute(
        update(forwards)
        .where(forwards.c.id.in_(forward_ids), forwards.c.state == WAITING)
        .values(state=QUEUED, bundle=bundle, seq=seq, updated_at=moment)
    )
    claimed = result.rowcount if isinstance(result, CursorResult) else -1
    if claimed != len(forward_ids):
        raise ForwardConflict(
            f"another flush queued some of these orders first; bundle {bundle} is rolled back"
        )


def _move(conn: Connection, rows: list[tuple[int, int]], state: str, detail: str) -> None:
    """Move the forwards ``rows`` (forward ID, order ID), locked by the caller, to ``state``."""
    from edi_gateway.store.schema import forwards

    moment = now()
    ids = [row_id for row_id, _ in rows]
    for start in range(0, len(ids), _CHUNK):
        conn.execute(
            update(forwards)
            .where(forwards.c.id.in_(ids[start : start + _CHUNK]))
            .values(state=state, updated_at=moment)
        )
    record_many(
        conn,
        [(f"forward.{state}", detail[:2000], order_id) for _, order_id in rows],
        actor=SYSTEM,
    )


def _profile(settings: Settings, partner_id: str) -> ForwardProfile:
    partner = settings.partner(partner_id)
    if partner is None or partner.forward is None:
        raise GatewayError(
            ErrorCode.CONFIG_INVALID,
            f"partner {partner_id!r} has no forward profile in {settings.path}",
        )
    return partner.forward
