"""Process stored messages: validate -> interpret -> check partner and duplicates -> correlate.

A batch of messages is examined one by one (pure work: parse, XSD, interpret), checked against
the store with one query per batch (identical earlier messages, document-ID conflicts), then
written: orders in bulk, every other document through its own savepoint. A bad document marks
only itself ``failed``; the batch goes on. Every message ends in one terminal state with a
history event: ``processed``, ``orphan``, ``duplicate`` or ``failed`` (with a stable code).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from edi_gateway import crashpoints
from edi_gateway.domain.documents import Document, DocumentKind, Order, Party
from edi_gateway.domain.findings import Severity, apply_severity, fatal
from edi_gateway.errors import DocumentError, ErrorCode, GatewayError
from edi_gateway.pipeline.limits import check_lengths
from edi_gateway.pipeline.orders import insert_orders
from edi_gateway.pipeline.work import (
    DUPLICATE,
    FAILED,
    ORPHAN,
    PROCESSED,
    Work,
    unexpected,
    write_outcomes,
)
from edi_gateway.rules.evaluate import RuleEngine, RulesFailed, check_document
from edi_gateway.store import search
from edi_gateway.store.db import Store, again_after_deadlocks, transient
from edi_gateway.store.leases import (
    SAME_BYTES,
    SAME_NUMBER,
    db_now,
    lease_timeout,
    skip_locked,
    xact_locks,
)
from edi_gateway.store.purged import DEDUP_STATES, HOLDING_STATES
from edi_gateway.store.schema import (
    SHA256_KEY_CHARS,
    documents,
    message_payloads,
    messages,
    sha256_key,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.pipeline.readahead import Examined

log = logging.getLogger(__name__)

__all__ = ["DUPLICATE", "FAILED", "ORPHAN", "PROCESSED", "Policy", "process_messages"]
# How long a processing transaction may sit idle on PostgreSQL while the batch is parsed and
# validated (a batch holds at most 64 MB; an all-invalid document that size takes about a
# minute). Only availability hangs on it: a stalled transaction keeps its rows locked, so
# nobody else processes them, and once ended it cannot commit (docs/adr/0018).
EXAMINE_SECONDS = 600
# On PostgreSQL a processing transaction takes at most this many messages: it locks each one's
# bytes and numbers (store/leases.py MAX_KEYS), and the server's lock table is finite.
PG_CHUNK = 500
SUPPORTED = frozenset(kind.value for kind in DocumentKind)
RECEIVED = "received"
CUT_OFF_LIMIT = 3
"""Processing of a message cut off this many times (the process died at it: once in a batch,
then twice alone), the message is failed unread: PROCESSING_CUT_OFF (docs/adr/0046)."""


ReplyReader = Callable[[bytes, str], list[Document]]
Prepared = Callable[[int], "Examined | None"]
React = Callable[[Store, Sequence[int]], None]
"""What follows processing, given a store joined to the processing transaction and the ids of
the messages that ended ``processed`` or ``orphan``."""
Reset = Callable[[Store, Sequence[int]], None]
"""What a redrive does first in each processing transaction, given a store joined to it and
the ids it holds: take back to ``received`` those still as the operator found them
(``app.Gateway.redrive``). In the same transaction as their outcome, so no other redrive ever
finds them redriven and not yet processed (docs/adr/0018)."""


def _no_replies(source: str, filename: str) -> ReplyReader | None:
    return None


@dataclass(frozen=True, slots=True)
class Checks:
    """What one partner's documents must pass beyond the UBL 2.1 XSD."""

    peppol: bool = False
    """The official Peppol rules of the document's CustomizationID (``validation: peppol``)."""
    severity: Mapping[str, Severity] = field(default_factory=dict)


def _no_invoicee(partner: str) -> Party | None:
    return None


def _xsd_only(partner: str | None) -> Checks:
    return Checks()


def _no_rules() -> RuleEngine | None:
    return None


@dataclass(frozen=True, slots=True)
class Policy:
    """What processing needs from the configuration.

    ``reply_reader(source, filename)`` gives the reader of a supplier's own CSV/Excel reply
    layout for files that arrive that way, else None (the file is UBL).
    """

    max_size: int
    accept_unknown_partners: bool
    partner_of: Callable[[Sequence[str]], str | None]
    invoicee_of: Callable[[str], Party | None] = _no_invoicee
    """The party a buyer partner's bills go to when its order names none (``invoicee:``)."""
    reply_reader: Callable[[str, str], ReplyReader | None] = _no_replies
    checks_of: Callable[[str | None], Checks] = _xsd_only
    rule_engine: Callable[[], RuleEngine | None] = _no_rules
    """The installed rule release (None: none installed; raises when it fails to verify)."""
    answer: Callable[[Store, Sequence[Work]], None] | None = None
    """What tells senders how their messages ended (Peppol MLRs), in the same transaction."""
    check_signature: Callable[[str, bytes], None] | None = None
    """``check_signature(partner, payload)`` verifies the XML signature of a message from a
    known partner on its stored bytes (raises DocumentError); None: no partner asks for it."""


def process_messages(
    store: Store,
    policy: Policy,
    ids: Sequence[int],
    payloads: Mapping[int, bytes] | None = None,
    prepared: Prepared | None = None,
    *,
    react: React | None = None,
    reset: Reset | None = None,
) -> dict[int, str]:
    """Take the given messages to terminal states in one transaction; return their states.

    ``payloads`` may hand over bytes intake already holds, saving a read of the store.
    ``prepared(message_id)`` may give what read-ahead already made of a message's bytes
    (``pipeline/readahead.py``); it is used only when its sha256 is the committed bytes'.
    ``react(store, message_ids)`` is what follows processing (answers, forwards, relays); it
    runs on a store joined to this transaction, so an outcome and the outbox rows it causes
    commit together. Messages not in state ``received`` are left as they are (a transport
    re-offered them). ``reset``: a redrive's (:data:`Reset`), first in every transaction.

    A message whose processing or reactions raise fails alone: everything it wrote is undone
    and it ends ``failed`` with a stable code; the others go on. Only a store that cannot be
    reached (:func:`transient`) ends the call: then nothing of the batch is committed and the
    messages stay ``received`` for the next try.
    """
    if len(ids) > PG_CHUNK and store.engine.dialect.name == "postgresql":
        states: dict[int, str] = {}  # bounded transactions: a lock per key (store/leases.py)
        for start in range(0, len(ids), PG_CHUNK):
            chunk = ids[start : start + PG_CHUNK]
            states.update(
                process_messages(store, policy, chunk, payloads, prepared, react=react, reset=reset)
            )
        return states
    run = _Run(store, policy, payloads or {}, prepared, react, reset)
    cut = _cut_offs(store, ids)
    if not cut:
        return run.batch(ids)
    # Some were being processed when the gateway died (docs/adr/0046): each of those goes
    # alone, where it stands (arrival order is kept: an Order Change after its Order, a
    # sequence after the one before), the others between them in batches; one cut off
    # CUT_OFF_LIMIT times is set aside unread. A message that kills the process can neither
    # hold up the others nor take the gateway down at every start.
    states = {}
    stretch: list[int] = []
    for mid in ids:
        times = cut.get(mid, 0)
        if not times:
            stretch.append(mid)
            continue
        if stretch:
            states.update(run.batch(stretch))
            stretch = []
        if times >= CUT_OFF_LIMIT:
            states[mid] = _set_aside(store, mid, times, reset)
        else:
            states.update(run.batch([mid]))
    if stretch:
        states.update(run.batch(stretch))
    return states


@dataclass(frozen=True, slots=True)
class _Run:
    """One call of :func:`process_messages`: what each of its transactions needs."""

    store: Store
    policy: Policy
    payloads: Mapping[int, bytes]
    prepared: Prepared | None
    react: React | None
    reset: Reset | None

    def batch(self, ids: Sequence[int]) -> dict[int, str]:
        """Process ``ids`` in one transaction; when that raises (not a store gone away), each
        message in a transaction of its own."""
        try:
            return self.attempt(ids)
        except Exception as exc:
            if transient(exc):
                raise
            _log_failure(exc, "processing %d message(s) failed; each alone", len(ids))
            if len(ids) == 1:
                return {ids[0]: _fail_alone(self.store, ids[0], exc, self.reset)}
        states = {}
        for mid in ids:  # last resort: each message in its own transaction
            try:
                states.update(self.attempt([mid]))
            except Exception as exc:
                if transient(exc):
                    raise
                _log_failure(exc, "processing message %s failed", mid, extra={"message_id": mid})
                states[mid] = _fail_alone(self.store, mid, exc, self.reset)
        return states

    def attempt(self, ids: Sequence[int]) -> dict[int, str]:
        """Count the start (committed first: a process that dies now leaves it counted), then
        process; the outcome sets the count back to 0."""
        _count_start(self.store, ids)
        try:
            return self.again_after_deadlocks(ids)
        except Exception:
            _uncount(self.store, ids)  # this process lives to see it: nothing was cut off
            raise

    def again_after_deadlocks(self, ids: Sequence[int]) -> dict[int, str]:
        """Process; when PostgreSQL broke a circle of waits by rolling this transaction back
        (a document reaching its order through other documents locks the order's number after
        the batch's own, see ``correlate._lock_chain`` and ``correlate._locked``), process
        again (``store.db.again_after_deadlocks``). After the last try the call ends as when
        the store went away: the messages stay ``received`` for the next round."""
        return again_after_deadlocks(
            lambda: _process(
                self.store,
                self.policy,
                ids,
                self.payloads,
                self.prepared,
                react=self.react,
                reset=self.reset,
            ),
            f"processing {len(ids)} message(s)",
        )


def _cut_offs(store: Store, ids: Sequence[int]) -> dict[int, int]:
    """message id -> how many times its processing began and never ended, for those of
    ``ids`` still ``received`` with any."""
    c = messages.c
    found: dict[int, int] = {}
    with store.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = conn.execute(
                select(c.id, c.cut_off).where(c.id.in_(chunk), c.state == RECEIVED, c.cut_off > 0)
            )
            found.update({mid: int(n) for mid, n in rows})
    return found


def _count_start(store: Store, ids: Sequence[int]) -> None:
    """``cut_off + 1`` on those of ``ids`` still ``received``, committed (rows another gateway
    is processing are locked: left to it, without waiting)."""
    with store.connect() as conn:
        _shift_count(conn, ids, +1)


def _uncount(store: Store, ids: Sequence[int]) -> None:
    """Take back the count of a start that ended in an exception (a store that went away, a
    lock timeout, a bug): best effort, since the store may be gone; then the count stays and
    the messages go alone next time, which costs time, not correctness."""
    try:
        with store.connect() as conn:
            _shift_count(conn, ids, -1)
    except Exception as exc:  # noqa: BLE001 - the error being raised matters more
        log.warning("could not take back the processing count of %d message(s): %s", len(ids), exc)


def _shift_count(conn: Connection, ids: Sequence[int], by: int) -> None:
    """``cut_off + by`` (never below 0) on those of ``ids`` still ``received`` that no other
    transaction holds."""
    c = messages.c
    for start in range(0, len(ids), 500):
        mine = select(c.id).where(c.id.in_(ids[start : start + 500]), c.state == RECEIVED)
        if by < 0:
            mine = mine.where(c.cut_off >= -by)
        conn.execute(
            update(messages).where(c.id.in_(skip_locked(mine))).values(cut_off=c.cut_off + by)
        )


def _set_aside(store: Store, message_id: int, times: int, reset: Reset | None) -> str:
    """Fail a message whose processing was cut off ``times`` times, without reading it."""
    said = (
        f"processing of this message was cut off {times} times (the gateway died while at it, "
        "the last times with it alone): it is set aside unread so the others go on"
    )
    log.error("message %s: %s", message_id, said, extra={"message_id": message_id})
    return _fail_alone(store, message_id, GatewayError(ErrorCode.PROCESSING_CUT_OFF, said), reset)


def _process(
    store: Store,
    policy: Policy,
    ids: Sequence[int],
    payloads: Mapping[int, bytes],
    prepared: Prepared | None,
    *,
    react: React | None,
    reset: Reset | None,
) -> dict[int, str]:
    with store.connect() as conn:
        lease_timeout(conn, EXAMINE_SECONDS)  # idle while Python parses and validates
        if reset is not None:
            reset(store.joined(conn), ids)
        states, works = _load(conn, ids, payloads)
        _examine(conn, policy, works, prepared)
        write_outcomes(conn, [w for w in works if not w.pending])
        _settle(store.joined(conn), conn, [w for w in works if w.pending], react)
        if policy.answer is not None:
            policy.answer(store.joined(conn), works)
        search.catch_up(conn)  # index the batch's orders and lines at once (ADR 0035)
    states.update({w.id: w.state or FAILED for w in works})
    # A message another gateway holds (its row was locked) is that gateway's: still received.
    return {mid: states.get(mid, RECEIVED) for mid in ids}


def _settle(store: Store, conn: Connection, works: list[Work], react: React | None) -> None:
    """Write what the documents say, their outcomes and their reactions: the whole batch as one
    savepoint; when anything in it raises, each message again in a savepoint of its own."""
    if not works:
        return
    try:
        with conn.begin_nested():
            _write(store, conn, works, react)
        return
    except Exception as exc:
        if transient(exc):
            raise
        log.warning(
            "writing a batch of %d messages failed (%s); one by one", len(works), unexpected(exc)
        )
    for work in works:
        work.reset()
        try:
            with conn.begin_nested():
                _write(store, conn, [work], react)
        except Exception as exc:
            if transient(exc):
                raise
            _log_failure(
                exc, "message %s failed while being stored", work.id, extra={"message_id": work.id}
            )
            work.reset()
            work.fail(unexpected(exc))
            write_outcomes(conn, [work])


def _write(store: Store, conn: Connection, works: list[Work], react: React | None) -> None:
    _apply(conn, works)
    write_outcomes(conn, works)
    if react is not None:
        done = [w.id for w in works if w.state in (PROCESSED, ORPHAN)]
        if done:
            react(store, done)


def _log_failure(exc: Exception, text: str, *args: object, **kwargs: Any) -> None:
    """A refusal the store explains (a constraint, a value too long) is one warning line; any
    other exception is a bug and is logged with its traceback."""
    error = unexpected(exc)
    if error.code is ErrorCode.INTERNAL_ERROR:
        log.exception(text, *args, **kwargs)
    else:
        log.warning(text + ": %s", *args, error, **kwargs)


def _fail_alone(store: Store, message_id: int, exc: Exception, reset: Reset | None) -> str:
    """Mark one message failed in a transaction of its own (nothing it wrote was kept; a
    redrive's ``reset`` is done again first, since its transaction was rolled back too)."""
    c = messages.c
    with store.connect() as conn:
        if reset is not None:
            reset(store.joined(conn), [message_id])
        query = select(c.state, c.attempts).where(c.id == message_id).with_for_update()
        row = conn.execute(query).first()
        if row is None or row.state != RECEIVED:
            return str(row.state) if row else FAILED
        work = Work(message_id, "", "", row.attempts)
        work.fail(unexpected(exc))
        write_outcomes(conn, [work])
    return FAILED


def pending_ids(store: Store, idle: timedelta | None = None) -> list[int]:
    """Messages committed by intake but not yet processed (e.g. after a crash); with ``idle``,
    only those left alone that long (fresh ones are still in the hands of who took them)."""
    with store.connect() as conn:
        c = messages.c
        query = select(c.id).where(c.state == RECEIVED).order_by(c.id)
        if idle is not None:
            query = query.where(c.updated_at < db_now(conn) - idle)
        return list(conn.scalars(query))


def _load(
    conn: Connection, ids: Sequence[int], payloads: Mapping[int, bytes]
) -> tuple[dict[int, str], list[Work]]:
    states: dict[int, str] = {}
    works: list[Work] = []
    columns = (
        messages.c.id,
        messages.c.state,
        messages.c.sha256,
        messages.c.source,
        messages.c.attempts,
        messages.c.filename,
    )
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        # Rows another gateway is processing are locked: skipped, it has them (store/leases.py).
        for mid, state, sha, source, attempts, filename in conn.execute(
            skip_locked(select(*columns).where(messages.c.id.in_(chunk)))
        ):
            states[mid] = state
            if state == RECEIVED:
                works.append(Work(mid, sha, source, attempts, payloads.get(mid), filename))
    works.sort(key=lambda w: w.id)
    waiting = {w.id: w for w in works if w.payload is None}
    missing = list(waiting)
    for start in range(0, len(missing), 200):
        chunk = missing[start : start + 200]
        rows = conn.execute(
            select(message_payloads.c.message_id, message_payloads.c.payload).where(
                message_payloads.c.message_id.in_(chunk)
            )
        )
        for mid, data in rows:
            waiting[mid].payload = data
    return states, works


def _examine(
    conn: Connection, policy: Policy, works: list[Work], prepared: Prepared | None
) -> None:
    """Duplicates, validation, interpretation, partner and ID-conflict checks; no writes.

    Another gateway may process the same bytes or the same document number at this moment:
    each check first takes the transaction locks on what it looks up (bytes, then document and
    order numbers), so the second to come sees what the first committed."""
    xact_locks(conn, SAME_BYTES, (w.sha256 for w in works))
    originals, set_aside = _originals(conn, works)
    purged = _purged_originals(conn, works, originals)
    first_of: dict[str, Work] = {}
    twins: list[tuple[Work, Work]] = []
    for work in works:
        if work.sha256 in set_aside and not work.attempts:  # not read again (a redrive is)
            said = (
                f"the same bytes as message {set_aside[work.sha256]}, whose processing was cut "
                "off until it was set aside: not read (redrive that one after the fix)"
            )
            work.fail(GatewayError(ErrorCode.PROCESSING_CUT_OFF, said))
            continue
        original = originals.get(work.sha256)
        if original is not None:
            work.duplicate_of = original
            work.end(DUPLICATE)
            continue
        if work.sha256 in purged:  # its original was purged: the dedup key it left (ADR 0037)
            work.purged_original = purged[work.sha256]
            work.end(DUPLICATE)
            continue
        if work.sha256 in first_of:  # same bytes earlier in this batch: same outcome, see below
            twins.append((work, first_of[work.sha256]))
            continue
        first_of[work.sha256] = work
    firsts = list(first_of.values())
    # With read-ahead the worker walks forward, so this side takes the batch from its end.
    for work in reversed(firsts) if prepared else firsts:
        _read(policy, work, prepared)
    _identify_and_check(policy, firsts)
    xact_locks(conn, SAME_NUMBER, (key for w in firsts for key in _numbers(w)))
    _check_id_conflicts(conn, works)
    for twin, first in twins:
        twin.payload = None
        twin.findings = first.findings
        if first.error is not None:  # refused bytes sent again are refused alike
            twin.document, twin.sender_key, twin.partner = (
                first.document,
                first.sender_key,
                first.partner,
            )
            twin.fail(first.error)
        else:
            twin.duplicate_of = first.id
            twin.end(DUPLICATE)


def _identify_and_check(policy: Policy, firsts: list[Work]) -> None:
    """Who sent each document, then the partner's rule sets over its bytes (then dropped)."""
    for work in firsts:
        if work.document is not None and work.error is None:
            try:
                _identify(policy, work)
            except GatewayError as exc:
                work.fail(exc)
            except Exception as exc:  # a bug must fail one message, never the batch
                log.exception(
                    "internal error identifying message %s", work.id, extra={"message_id": work.id}
                )
                work.fail(GatewayError(ErrorCode.INTERNAL_ERROR, repr(exc)))
    for work in firsts:
        if work.pending and work.document is not None:
            _check_rules(policy, work)
        work.payload = None


def _read(policy: Policy, work: Work, prepared: Prepared | None) -> None:
    """Bytes -> domain document(s), or the message fails with the reason (and its bytes are
    dropped; the others keep them until the partner's rules and signature checks are done).

    A UBL document refused by the XSD or by interpretation still names its sender: its keys are
    read loosely from the tree (``read_parties.loose_sender_keys``), so the failed message shows
    its partner."""
    keys: Sequence[str] = ()
    crashpoints.reach("reading", work.filename)
    try:
        assert work.payload is not None
        reader = policy.reply_reader(work.source, work.filename)
        if reader is not None:  # a supplier's own CSV/Excel layout
            work.document, *work.more = reader(work.payload, work.filename)
        else:
            ready = prepared(work.id) if prepared else None
            if ready and ready.sha256 == work.sha256 and ready.size <= policy.max_size:
                keys = ready.sender_keys
                work.document = ready.result()
                work.measured = ready.measured
            else:
                from edi_gateway.ubl.read import interpret
                from edi_gateway.ubl.read_parties import loose_sender_keys
                from edi_gateway.ubl.validate import XsdInvalid, validate_document

                try:
                    validated = validate_document(
                        work.payload, max_size=policy.max_size, kinds=SUPPORTED
                    )
                except XsdInvalid as exc:
                    keys = exc.sender_keys
                    raise
                try:
                    work.document = interpret(validated.root)
                except GatewayError:
                    keys = loose_sender_keys(validated.root)
                    raise
                del validated  # the tree can be large; the domain document is what we keep
    except GatewayError as exc:
        work.fail(exc)
    except Exception as exc:  # a bug must fail one message, never the batch
        log.exception("internal error reading message %s", work.id, extra={"message_id": work.id})
        work.fail(GatewayError(ErrorCode.INTERNAL_ERROR, repr(exc)))
    if work.error is not None:
        work.payload = None  # the rest keep their bytes for the partner's rule sets
        if keys:  # a refused document still names who sent it
            work.sender_key = keys[0]
            work.partner = policy.partner_of(keys)


def _originals(conn: Connection, works: list[Work]) -> tuple[dict[str, int], dict[str, int]]:
    """sha256 -> id of the message whose copy of these bytes a new one duplicates; and sha256
    -> id of one set aside because its processing was cut off (PROCESSING_CUT_OFF).

    The original is the first message that holds what the bytes say (``processed``, or an
    ``orphan``), whether it came before or after: a copy processed first (an ``ingest`` stopped
    after its intake and run again, a message crash-left ``received`` while the same bytes came
    in by another way, a failed one redriven after a later copy went through) makes the earlier
    one its duplicate, not a conflict "with different content". Failing that, the first earlier
    ``duplicate``: a later duplicate never counts, as it may be the copy of this very message
    (an orphan redriven)."""
    keys = sorted({w.sha256[:SHA256_KEY_CHARS] for w in works})
    batch = {w.id for w in works}
    earliest = min(batch, default=0)
    found: dict[str, int] = {}
    copies: dict[str, int] = {}
    set_aside: dict[str, int] = {}
    c = messages.c
    for start in range(0, len(keys), 500):
        # on the index of the sha256's key, a prefix, alone: what is found is keyed by its
        # whole sha256 below, so another payload's with the same key is never asked for (a
        # `sha256 IN` beside the key's would make SQLite put a single value into the key's
        # expression and read every row); the state is tested here, since a state condition
        # lets a planner pick the state index, whose "processed" holds nearly every message
        rows = conn.execute(
            select(c.sha256, c.id, c.state, c.error_code).where(
                sha256_key(c.sha256).in_(keys[start : start + 500])
            )
        )
        for sha, mid, state, code in sorted(rows, key=lambda row: row[1]):
            if mid in batch:
                continue
            if state in HOLDING_STATES:
                found.setdefault(sha, mid)
            elif state in DEDUP_STATES:
                copies.setdefault(sha, mid)
            elif code == ErrorCode.PROCESSING_CUT_OFF.value:
                set_aside.setdefault(sha, mid)
    for sha, mid in copies.items():
        if mid < earliest:  # earlier than every message of the batch
            found.setdefault(sha, mid)
    return found, set_aside


def _purged_originals(
    conn: Connection, works: list[Work], originals: dict[str, int]
) -> dict[str, int]:
    """sha256 -> id a purged message with these bytes had, for those without a stored one."""
    from edi_gateway.store.purged import purged_originals

    return purged_originals(conn, sorted({w.sha256 for w in works} - set(originals)))


def _identify(policy: Policy, work: Work) -> None:
    document = work.document
    assert document is not None
    if not work.measured:
        for each in _documents(work):
            check_lengths(each)
    sender = document.sender()
    keys = sender.keys() if sender else []
    work.sender_key = keys[0] if keys else None
    if work.sender_key is None and document.kind is DocumentKind.ORDER:
        raise DocumentError(
            ErrorCode.INTERPRETATION_FAILED, "the order's buyer party has no identifier or name"
        )
    work.partner = policy.partner_of(keys)
    if isinstance(document, Order) and document.billed is None and work.partner:
        work.invoicee = policy.invoicee_of(work.partner)  # partners[].invoicee
    if work.partner is None and not policy.accept_unknown_partners:
        who = ", ".join(keys) if keys else "a party without any identifier"
        raise DocumentError(
            ErrorCode.UNKNOWN_PARTNER,
            f"{document.kind.value} {document.document_id} comes from {who}, "
            "which is not a partner in gateway.yaml",
        )
    receiver = document.receiver()
    work.counterpart = policy.partner_of(receiver.keys()) if receiver else None
    if policy.check_signature is not None and work.partner and work.payload is not None:
        policy.check_signature(work.partner, work.payload)


def _check_rules(policy: Policy, work: Work) -> None:
    """The partner's rule sets over the message's bytes: findings kept, a fatal one fails it."""
    checks = policy.checks_of(work.partner)
    if not checks.peppol or work.payload is None:
        return
    if policy.reply_reader(work.source, work.filename) is not None:
        return  # a supplier's own CSV/Excel layout: no UBL to check
    try:
        engine = policy.rule_engine()
        if engine is None:
            raise GatewayError(
                ErrorCode.RULES_UNAVAILABLE,
                f"partner {work.partner} has validation: peppol, but no Peppol rule release is "
                "installed (edi-gateway rules install PATH)",
            )
        found = check_document(engine, work.payload, max_size=policy.max_size)
        work.findings = apply_severity(found, checks.severity)
        failing = fatal(work.findings)
        if failing:
            raise RulesFailed(failing)
    except GatewayError as exc:
        work.fail(exc)
    except Exception as exc:  # a bug must fail one message, never the batch
        log.exception("internal error checking message %s", work.id, extra={"message_id": work.id})
        work.fail(GatewayError(ErrorCode.INTERNAL_ERROR, repr(exc)))


def _check_id_conflicts(conn: Connection, works: list[Work]) -> None:
    """The same document ID from the same sender with other bytes is flagged, never merged."""
    candidates = [w for w in works if w.pending and w.document is not None]
    # per sender and kind, on the (sender_key, kind, doc_number) index (docs/adr/0036)
    numbers: dict[tuple[str | None, str], set[str]] = {}
    for work in candidates:
        for d in _documents(work):
            numbers.setdefault((work.sender_key, d.kind.value), set()).add(d.document_id)
    known: dict[tuple[str | None, str, str], int | None] = {}
    c = documents.c
    for (sender, kind), wanted in numbers.items():
        ordered = sorted(wanted)
        for start in range(0, len(ordered), 500):
            rows = conn.execute(
                select(c.sender_key, c.kind, c.doc_number, c.message_id).where(
                    c.sender_key == sender,  # IS NULL for None: the same key as before
                    c.kind == kind,
                    c.doc_number.in_(ordered[start : start + 500]),
                    c.direction == "in",
                    c.state != "refused",  # refused by the rules: its number is free
                )
            )
            known.update({(s, k, n): mid for s, k, n, mid in rows})
    if numbers:  # numbers purged documents had (ADR 0037)
        from edi_gateway.store.purged import purged_numbers

        flat = sorted({n for wanted in numbers.values() for n in wanted})
        for key, mid in purged_numbers(conn, flat).items():
            known.setdefault(key, mid)
    for work in candidates:
        keys = [(work.sender_key, d.kind.value, d.document_id) for d in _documents(work)]
        clash = next((k for k in keys if k in known), None)
        if clash is not None:
            work.fail(_conflict(work, clash, known[clash]))
        else:
            known.update(dict.fromkeys(keys, work.id))


def _documents(work: Work) -> list[Document]:
    return [work.document, *work.more] if work.document is not None else []


def _numbers(work: Work) -> Iterator[str]:
    """The document and order numbers a message's documents write under, and the numbers an
    orphan of each waits for (a credit note's invoice: the two go one after the other, so the
    second to commit finds the first; a bill's preceding invoice besides its order number)."""
    for document in _documents(work):
        yield document.document_id
        yield from document.order_refs
        for waited in (document.waits_for(), document.preceding_ref()):
            if waited is not None:
                yield waited


def _conflict(work: Work, key: tuple[str | None, str, str], earlier: int | None) -> DocumentError:
    _, kind, number = key
    return DocumentError(
        ErrorCode.DUPLICATE_ID_CONFLICT,
        f"{kind} {number} from {work.sender_key} was already received as message {earlier} "
        "with different content; it was not merged",
    )


def _apply(conn: Connection, ready: list[Work]) -> None:
    """Write what the documents say: orders in bulk, then every other document in order.

    Orders need only Core inserts. Replies and orphans go through the ORM correlation, which
    is imported (a start-up cost) and given a session on this same transaction only then.
    """
    orders = [w for w in ready if w.document and w.document.kind is DocumentKind.ORDER]
    if orders:
        insert_orders(conn, orders)  # one the store refuses fails the batch's savepoint: _settle
    others = [w for w in ready if w.pending]
    waiting = _orders_with_orphans(conn, orders)
    if not others and not waiting:
        return
    from sqlalchemy.orm import Session

    from edi_gateway.pipeline.correlate import attach_orphans, attach_waiting

    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        for work in others:
            _correlate_one(session, work)
        arrived = [d.document_id for w in others if w.state == PROCESSED for d in _documents(w)]
        for order_id in waiting:
            arrived += [row.doc_number for row in attach_orphans(session, order_id)]
        batch = {w.id: w for w in others}
        # orphans that wait for a document that arrived (a credit note's invoice), in chains;
        # one of this batch's own ends attached, not as the orphan it was
        for row in attach_waiting(session, arrived):
            mine = batch.get(row.message_id or 0)
            if mine is not None and mine.state == ORPHAN:
                mine.end(PROCESSED, row.order_id)
        session.commit()  # releases the session's savepoint; the caller commits the whole


def _orders_with_orphans(conn: Connection, orders: list[Work]) -> list[int]:
    """The new orders some orphan document names (one query for the whole batch)."""
    by_number = {
        w.document.document_id: w.order_id
        for w in orders
        if w.document and w.order_id is not None and w.state == PROCESSED
    }
    numbers = sorted(by_number)
    waiting: set[str] = set()
    for start in range(0, len(numbers), 500):
        waiting.update(
            conn.scalars(
                select(documents.c.order_ref).where(
                    documents.c.state == ORPHAN,
                    documents.c.order_ref.in_(numbers[start : start + 500]),
                )
            )
        )
    return [order_id for number, order_id in by_number.items() if number in waiting and order_id]


def _correlate_one(session: Session, work: Work) -> None:
    from edi_gateway.pipeline.correlate import MessageRef, correlate, forget_rolled_back

    ref = MessageRef(work.id, work.source, work.partner)
    if work.partner is not None:  # the ledger judges who sent what it counts (discrepancies)
        update = messages.update().where(messages.c.id == work.id)
        session.execute(update.values(partner=work.partner))
    try:
        with session.begin_nested():  # correlation writes all or nothing
            outcomes = [correlate(session, ref, d) for d in _documents(work)]
    except GatewayError as exc:
        # Rolled back (a sum too long for its column: VALUE_TOO_LONG), but the ledger rows the
        # recompute loaded would stay in the session, and on SQLite the next document of the
        # batch gets their IDs again: its recompute would count them instead of its own rows
        # (processed, its quantities lost). As after every savepoint that attached a document.
        forget_rolled_back(session)
        work.fail(exc)
        return
    states = {state for state, _ in outcomes}
    state = ORPHAN if ORPHAN in states else PROCESSED
    work.end(state, next((oid for _, oid in outcomes if oid is not None), None))
