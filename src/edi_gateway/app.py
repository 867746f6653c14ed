"""The gateway's use cases, called by the CLI and the daemon: ingest, poll, redrive.

Everything here is orchestration over the pipeline stages; no parsing, no SQL of its own.
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edi_gateway.crashpoints import reach
from edi_gateway.envelope import Envelope, file_envelope
from edi_gateway.errors import ConfigError, ErrorCode, GatewayError
from edi_gateway.pipeline.history import now, record
from edi_gateway.pipeline.intake import intake
from edi_gateway.pipeline.process import (
    FAILED,
    RECEIVED,
    Checks,
    Policy,
    ReplyReader,
    Reset,
    pending_ids,
    process_messages,
)
from edi_gateway.pipeline.readahead import Examined, ReadAhead, inbound_files
from edi_gateway.rules.evaluate import GATEWAY_RULE_IDS, RuleEngine
from edi_gateway.store.db import Store, open_configured

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.domain.documents import Document, Party
    from edi_gateway.store.tables import Message
    from edi_gateway.transports.base import InboundTransport

Progress = Callable[[int], None]
# A batch is committed once it holds this many bytes, whatever intake.batch_size says, so a
# folder of large files never sits in memory at once.
BATCH_BYTES = 64 * 1024 * 1024
MAX_NOTE = 2000  # characters: a note, not a document
REDRIVABLE = (FAILED, "orphan", "received")
# Kept without a document to process: no bytes (too large), or a whole mail kept as evidence.
NOT_PROCESSABLE = tuple(
    code.value
    for code in (
        ErrorCode.TOO_LARGE,
        ErrorCode.SENDER_NOT_ALLOWED,
        ErrorCode.NO_DOCUMENT,
        ErrorCode.BAD_ARCHIVE,
    )
)


@dataclass(slots=True)
class Outcome:
    """What a run did: message ids with their final states, per source."""

    states: dict[int, str] = field(default_factory=dict)
    sources: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    """Outbound files delivered, per partner (filled by ``run``)."""

    def add(self, source: str, states: dict[int, str]) -> None:
        """Merge one batch's results."""
        self.states.update(states)
        self.sources[source] += len(states)

    def counts(self) -> Counter[str]:
        """How many messages ended in each state."""
        return Counter(self.states.values())

    @property
    def failed(self) -> list[int]:
        """Ids of the messages that failed."""
        return [mid for mid, state in self.states.items() if state == FAILED]


@dataclass(slots=True)
class Gateway:
    """An open gateway: its settings, its store and its processing policy."""

    settings: Settings
    store: Store
    _policy: Policy | None = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, settings: Settings) -> Gateway:
        """Open the configured store (migrating it when needed); STORE_UNAVAILABLE in one line
        when it cannot be (``store.db.open_configured``)."""
        return cls(settings, open_configured(settings))

    @property
    def policy(self) -> Policy:
        """The processing policy from the intake settings and partners (built once, on first
        use: it loads every supplier reply map, and a command that needs none never does)."""
        if self._policy is None:
            self._policy = self._make_policy()
        return self._policy

    def _make_policy(self) -> Policy:
        settings = self.settings

        def partner_of(keys: Sequence[str]) -> str | None:
            partner = settings.partner_by_key(keys)
            return partner.id if partner else None

        invoicees: dict[str, Party] = {  # looked up for every order: made once
            p.id: party for p in settings.partners if (party := settings.invoicee(p))
        }

        def checks_of(partner_id: str | None) -> Checks:
            partner = settings.partner(partner_id) if partner_id else None
            if partner is None:
                return Checks()
            return Checks(peppol=partner.validation == "peppol", severity=partner.severity)

        return Policy(
            max_size=settings.intake.max_size_mb * 1024 * 1024,
            accept_unknown_partners=settings.intake.unknown_partner == "accept",
            partner_of=partner_of,
            invoicee_of=invoicees.get,
            reply_reader=_reply_readers(settings),
            checks_of=checks_of,
            rule_engine=self.rule_engine,
            answer=_answer(settings),
            check_signature=_signature_check(settings),
        )

    def rules_status(self) -> dict[str, Any]:
        """For health and the start-up log: the release in use and whether checks run."""
        rules = self.settings.rules
        try:
            engine = self.rule_engine()
        except GatewayError as exc:
            return {
                "release": None,
                "checks": "failing",
                "dir": str(rules.dir),
                "problem": exc.message,
            }
        if engine is None:
            return {
                "release": None,
                "checks": "off",
                "dir": str(rules.dir),
                "problem": f"no Peppol rule release installed in {rules.dir}: outgoing "
                "documents are not checked against the Peppol rules and partners with "
                "validation: peppol fail with RULES_UNAVAILABLE (edi-gateway rules install PATH)",
            }
        known = engine.release.rule_ids() | GATEWAY_RULE_IDS
        unknown = sorted(
            f"{p.id}: {rule}"
            for p in self.settings.partners
            for rule in p.severity
            if rule not in known
        )
        return {
            "release": engine.release.name,
            "checks": "on",
            "dir": str(rules.dir),
            "problem": None,
            "unknown_severity_rules": unknown,
        }

    def rule_engine(self) -> RuleEngine | None:
        """The installed rule release in use (loaded and verified once), None when none is
        installed; ``RULES_UNAVAILABLE`` when one is but does not verify."""
        from edi_gateway.rules.install import engine_for

        return engine_for(self.settings.rules.dir, self.settings.rules.release)

    def close(self) -> None:
        """Release the store."""
        self.store.close()

    def ingest(
        self,
        paths: Sequence[Path],
        progress: Progress | None = None,
        ahead: ReadAhead | None = None,
    ) -> Outcome:
        """One-shot intake and processing of files (folders are walked for ``*.xml``).

        ``ahead`` is a read-ahead worker started on ``inbound_files(paths)``; its list is the
        one taken, and processing uses what it already examined (``pipeline/readahead.py``).
        """
        outcome = Outcome()
        policy = self.policy
        limit = policy.max_size
        files = ahead.files if ahead is not None else list(inbound_files(paths))
        for batch in _batches((_file_envelope(p, limit) for p in files), self.intake_batch):
            ids = intake(self.store, batch)
            handed = {mid: env.payload for mid, env in zip(ids, batch, strict=True)}
            prepared = None
            if ahead is not None:
                where = {mid: env.meta["path"] for mid, env in zip(ids, batch, strict=True)}
                prepared = _prepared(ahead, where)
            states = process_messages(self.store, policy, ids, handed, prepared, react=self.react)
            outcome.add("cli", states)
            if progress:
                progress(len(batch))
        return outcome

    @property
    def intake_batch(self) -> int:
        """Messages intake commits and processing takes at a time."""
        return self.settings.intake.batch_size

    def poll(
        self,
        transport: InboundTransport,
        stop: Callable[[], bool] = lambda: False,
        observe: Callable[[dict[int, str], float], None] | None = None,
        ahead: ReadAhead | None = None,
    ) -> Outcome:
        """One cycle of one inbound transport: finish what a crash left, then take new files.

        ``stop`` is asked between batches: when it says so, the cycle ends after the batch in
        hand is committed and acknowledged, and unclaimed files stay for the next run.
        ``observe(states, seconds)`` is told of each acknowledged batch (the daemon's metrics
        and message log lines). ``ahead``: a read-ahead worker on the files waiting where the
        transport takes them from (``run --once``), matched by the envelopes' ``origin``.
        """
        from time import perf_counter

        outcome = Outcome()
        policy = self.policy
        size = self.settings.intake.batch_size
        # A transport that holds back payloads until earlier ones are acknowledged (a queue's
        # prefetch) says how many it lets out at once: batches no bigger, or a poll would stall.
        held = getattr(transport, "max_unacknowledged", None)
        if isinstance(held, int) and 0 < held < size:
            size = held
        # Recovered payloads are always finished; new ones are not claimed once stop() says so.
        for source, until in ((transport.recover, None), (transport.poll, stop)):
            recovering = source == transport.recover
            for batch in _batches(source(), size, until):
                started = perf_counter()
                reach("after-claim")
                ids = intake(self.store, batch)
                reach("during-recovery" if recovering else "after-intake-commit")
                handed = {mid: env.payload for mid, env in zip(ids, batch, strict=True)}
                prepared = None
                if ahead is not None:
                    where = {
                        mid: env.meta["origin"]
                        for mid, env in zip(ids, batch, strict=True)
                        if env.meta.get("origin")
                    }
                    prepared = _prepared(ahead, where)
                states = process_messages(
                    self.store, policy, ids, handed, prepared, react=self.react
                )
                states.update(self._finished_elsewhere(states, handed))
                reach("after-process")
                for envelope, message_id in zip(batch, ids, strict=True):
                    transport.ack(envelope, ok=states[message_id] != FAILED)
                outcome.add(transport.name, states)
                if observe is not None:
                    observe(states, perf_counter() - started)
        return outcome

    def _finished_elsewhere(
        self, states: dict[int, str], handed: dict[int, bytes]
    ) -> dict[int, str]:
        """The final states of messages another gateway was processing when this one looked
        (their rows were locked: still ``received``), so each payload is acknowledged by how
        its message ended (a failed one to ``error/``, not ``archive/``). Asked again until
        they are done or the gateway's lease runs out (a gateway that died meanwhile leaves
        them to be taken over: then this one processes them itself)."""
        from time import monotonic, sleep

        waiting = [mid for mid, state in states.items() if state == RECEIVED]
        found: dict[int, str] = {}
        deadline = monotonic() + self.settings.daemon.lease_seconds
        pause = 0.05
        while waiting and monotonic() < deadline:
            sleep(pause)
            pause = min(pause * 2, 1.0)
            again = process_messages(self.store, self.policy, waiting, handed, react=self.react)
            found.update(again)
            waiting = [mid for mid, state in again.items() if state == RECEIVED]
        return found

    def stored(self, source: str, source_ref: str) -> int | None:
        """The id of the message stored under this idempotency key, if any (a push transport
        asks before handing a payload over, to tell a re-send apart: an AS2 duplicate)."""
        from sqlalchemy import select

        from edi_gateway.store.schema import messages

        c = messages.c
        query = select(c.id).where(c.source == source, c.source_ref == source_ref)
        with self.store.connect() as conn:
            found = conn.scalar(query)
        return int(found) if found is not None else None

    def note(self, order_ref: str | int, text: str, *, actor: str | None = None) -> int:
        """Add an operator's note to an order's history; return the order's store id.
        ``order_ref``: a reference as ``resolve_order`` reads it, or (an int) the store ID."""
        from edi_gateway.store.queries import get_order, resolve_order

        if not text.strip():
            raise ConfigError("a note needs some text")
        if len(text) > MAX_NOTE:
            raise GatewayError(ErrorCode.USAGE, f"a note is at most {MAX_NOTE} characters")
        with self.store.session() as session:
            if isinstance(order_ref, int):
                order = get_order(session, order_ref)
            else:
                order = resolve_order(session, order_ref)
            who = actor or operator_name()
            record(session, "order.note", text.strip(), actor=who, order_id=order.id)
            return order.id

    def dismiss(self, message_id: int, reason: str, *, actor: str) -> dict[str, Any]:
        """Mark a failed message dismissed, with the operator's reason (``pipeline.operator``)."""
        from edi_gateway.pipeline.operator import dismiss

        return dismiss(self.store, message_id, reason, actor)

    def attach(self, message_id: int, order_ref: str, *, actor: str) -> dict[str, Any]:
        """Attach an orphan to the order ``order_ref`` names, as correlation would."""
        from edi_gateway.pipeline.operator import attach_orphan

        return attach_orphan(self.store, message_id, order_ref, actor, self.reread)

    def raw_payload(self, message_id: int) -> bytes:
        """A message's bytes exactly as received."""
        from edi_gateway.pipeline.operator import raw_payload

        return raw_payload(self.store, message_id)

    def react(self, store: Store, message_ids: Sequence[int]) -> None:
        """What follows processing: auto rules (Order Responses), forwarding to suppliers,
        relaying supplier replies, then cancellations towards supplier and buyer.

        ``store`` is the one to write to: processing passes its own, joined to the transaction
        that stores the messages' outcomes, so the outbox rows commit with them."""
        if any(p.auto_response != "none" for p in self.settings.partners):
            from edi_gateway.outbound.auto import auto_respond

            auto_respond(store, self.settings, message_ids)
        if any(p.forward is not None for p in self.settings.partners):
            from edi_gateway.outbound.forward import forward_orders

            forward_orders(store, self.settings, message_ids)
        if any(p.relay_replies for p in self.settings.partners):
            from edi_gateway.outbound.relay import relay_replies

            relay_replies(
                store,
                self.settings,
                message_ids,
                partial(self.reread, store=store),
                lambda source, name: self.policy.reply_reader(source, name) is not None,
            )
        self.settle_cancellations(store, message_ids)

    def settle_cancellations(self, store: Store, message_ids: Sequence[int]) -> None:
        """Tell supplier and buyer of the cancellations these messages brought or decided
        (docs/adr/0008-cancellations.md); a Core look-up first, so plain orders cost one query."""
        from edi_gateway.store.cancellations import concern_cancellations

        if not message_ids:
            return
        with store.connect() as conn:
            if not concern_cancellations(conn, message_ids):
                return
        from edi_gateway.outbound.cancel import settle_cancellations

        settle_cancellations(store, self.settings, message_ids)

    def reread(self, message_id: int, store: Store | None = None) -> list[Document]:
        """The documents of a stored message, read again (UBL, or a supplier's own layout)."""
        from sqlalchemy import select

        from edi_gateway.store.tables import Message
        from edi_gateway.ubl.read import read_stored

        with (store or self.store).session() as session:
            source, filename, payload = session.execute(
                select(Message.source, Message.filename, Message.payload).where(
                    Message.id == message_id
                )
            ).one()
        reader = self.policy.reply_reader(source, filename)
        if reader is not None:
            return reader(payload, filename)
        return [read_stored(payload)]

    def process_pending(self, idle: timedelta | None = None) -> Outcome:
        """Process messages that intake committed but processing never finished (after a crash
        or a store that went away), a batch at a time; one bad message fails alone. With
        ``idle``, only those nobody touched for that long (another gateway sharing the store may
        be about to process the fresh ones it took)."""
        outcome = Outcome()
        ids = pending_ids(self.store, idle)
        if ids:
            outcome.add("pending", self._process_stored(ids))
        return outcome

    def _process_stored(self, ids: Sequence[int], reset: Reset | None = None) -> dict[int, str]:
        """Process (and react to) messages already in the store, ``intake_batch`` at a time
        (a redrive's ``reset`` first in each transaction: ``process_messages``)."""
        states: dict[int, str] = {}
        size = self.intake_batch
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            states.update(
                process_messages(self.store, self.policy, chunk, react=self.react, reset=reset)
            )
        return states

    def redrive(
        self,
        ids: Sequence[int] = (),
        *,
        state: str | None = None,
        dry_run: bool = False,
        actor: str | None = None,
    ) -> list[int]:
        """Send failed, orphaned or still unprocessed (``received``) messages through processing
        again; return the ids of those this call redrove. A message stored without its bytes
        (too large, a refused mail) cannot be processed and is not redriven. Named ``ids`` must
        all exist (NOT_FOUND) and be redrivable (NOT_ALLOWED), or nothing is done. ``actor``:
        who, for the history (default: :func:`operator_name`).

        Each message is taken back to ``received`` in the transaction that processes it, and
        only if it is still as this call found it (:class:`_Redrive`): of several operators
        redriving it at once, one redrives it and it is processed once. For the others it is
        no longer redrivable: a named one is NOT_ALLOWED (after the rest were redriven), one
        of ``state`` is left out of the ids returned (docs/adr/0018)."""
        from sqlalchemy import select

        from edi_gateway.store.tables import Message

        actor = actor or operator_name()
        with self.store.reading() as session:  # never waits: the locks are taken per batch
            query = select(Message).order_by(Message.id)
            query = query.where(Message.id.in_(ids)) if ids else query.where(Message.state == state)
            found = list(session.scalars(query))
            chosen = [
                m for m in found if m.state in REDRIVABLE and m.error_code not in NOT_PROCESSABLE
            ]
            if ids:
                _all_redrivable(ids, found, chosen)
            if dry_run:
                return [m.id for m in chosen]
            redrive = _Redrive(actor, {m.id: _as_found(m) for m in chosen})
        self._process_stored(list(redrive.found), reset=redrive)
        done = [mid for mid in redrive.found if redrive.taken.get(mid)]
        if ids and len(done) < len(redrive.found):
            raise _taken_by_another(self.store, redrive, done)
        return done


@dataclass(slots=True)
class _Redrive:
    """A redrive's :data:`~edi_gateway.pipeline.process.Reset`: in each processing
    transaction, the messages still as the redrive found them (state, attempts, last change)
    are locked and taken back to ``received`` (``message.redriven``); the others were
    redriven, dismissed or processed by someone else meanwhile, or are being so now (their rows
    are locked: skipped, not waited for), and are left to that one. Called again when the
    transaction is run again (a circle of lock waits, a message failed alone): ``taken``
    holds the last decision, the one committed."""

    actor: str
    found: dict[int, tuple[str, int, datetime]]
    taken: dict[int, bool] = field(default_factory=dict)

    def __call__(self, store: Store, ids: Sequence[int]) -> None:
        from sqlalchemy import select

        from edi_gateway.store.leases import skip_locked
        from edi_gateway.store.tables import Message

        with store.session() as session:
            query = skip_locked(select(Message).where(Message.id.in_(ids)))
            held = {m.id: m for m in session.scalars(query)}
            for mid in ids:
                message = held.get(mid)
                unchanged = message is not None and _as_found(message) == self.found[mid]
                self.taken[mid] = unchanged
                if message is not None and unchanged:
                    _reset_for_redrive(session, message, self.actor)


def _as_found(message: Message) -> tuple[str, int, datetime]:
    """What tells that a message changed: any outcome raises ``attempts``; a redrive, a
    dismissal, an attachment set ``updated_at``."""
    return message.state, message.attempts, message.updated_at


def _taken_by_another(store: Store, redrive: _Redrive, done: list[int]) -> GatewayError:
    """NOT_ALLOWED for the named messages somebody else took between this redrive's look and
    its lock, with the state each is in now."""
    from sqlalchemy import select

    from edi_gateway.errors import LookupFailed
    from edi_gateway.store.tables import Message

    left = [mid for mid in redrive.found if mid not in done]
    with store.reading() as session:
        now_in = dict(
            session.execute(select(Message.id, Message.state).where(Message.id.in_(left))).all()
        )
    listed = ", ".join(f"{mid} (now {now_in.get(mid, 'gone')})" for mid in left)
    also = f"; redriven: {', '.join(map(str, done))}" if done else ""
    return LookupFailed(
        ErrorCode.NOT_ALLOWED,
        f"not redriven: {listed}: redriven, dismissed or processed by another at the same "
        f"moment, so not redriven twice (see `messages show ID`){also}",
    )


def _answer(settings: Settings) -> Callable[[Store, Sequence[Any]], None] | None:
    """The MLR step when a partner asks for MLRs (``mlr:``), else None (nothing to do)."""
    if all(p.mlr == "never" for p in settings.partners):
        return None
    from edi_gateway.outbound.mlr import answer_senders

    return partial(answer_senders, settings)


def _reply_readers(settings: Settings) -> Callable[[str, str], ReplyReader | None]:
    """(source, file name) -> the reader of the supplier's reply layout it matches, if any."""
    from fnmatch import fnmatchcase

    routes = [c for c in settings.connectors if c.direction == "in" and c.replies]
    if not routes:
        return lambda source, filename: None
    from edi_gateway.config import reply_map_path
    from edi_gateway.replies import load_map, read_reply

    table: dict[str, list[tuple[str, ReplyReader]]] = {}
    for conn in routes:
        partner = settings.partner(conn.partner or "")
        assert partner is not None  # checked when the configuration was loaded
        supplier = partner.party()
        for pattern, name in conn.replies.items():
            mapping = load_map(reply_map_path(settings.path, partner.id, name))

            def reader(payload: bytes, filename: str, m: Any = mapping, p: Party = supplier) -> Any:
                return read_reply(payload, filename, m, supplier=p)

            table.setdefault(f"{conn.type}:{conn.name}", []).append((pattern.lower(), reader))

    def pick(source: str, filename: str) -> ReplyReader | None:
        lower = filename.lower()
        return next((r for pat, r in table.get(source, []) if fnmatchcase(lower, pat)), None)

    return pick


def operator_name() -> str:
    """Who is at the keyboard: $EDI_GATEWAY_OPERATOR, else the login name."""
    return os.environ.get("EDI_GATEWAY_OPERATOR") or getpass.getuser()


def _all_redrivable(ids: Sequence[int], found: Sequence[Message], chosen: list[Message]) -> None:
    from edi_gateway.errors import LookupFailed

    missing = sorted(set(ids) - {m.id for m in found})
    if missing:
        listed = ", ".join(map(str, missing))
        raise LookupFailed(ErrorCode.NOT_FOUND, f"no message {listed} (see `messages list`)")
    refused = [m for m in found if m not in chosen]
    if refused:
        listed = ", ".join(f"{m.id} is {m.state} {m.error_code or ''}".strip() for m in refused)
        raise LookupFailed(
            ErrorCode.NOT_ALLOWED,
            f"not redriven: {listed}; only failed, orphan or received messages that were "
            "kept with their bytes can be; nothing was redriven",
        )


def _reset_for_redrive(session: Session, message: Message, actor: str) -> None:
    from sqlalchemy import delete, select

    from edi_gateway.store.tables import DocumentLine, DocumentRow

    old = session.scalars(select(DocumentRow.id).where(DocumentRow.message_id == message.id)).all()
    if old:
        session.execute(delete(DocumentLine).where(DocumentLine.document_id.in_(old)))
        session.execute(delete(DocumentRow).where(DocumentRow.id.in_(old)))
    previous = f"{message.state} {message.error_code or ''}".strip()
    message.state = "received"
    message.updated_at = now()
    record(session, "message.redriven", f"was {previous}", actor=actor, message_id=message.id)


def _prepared(ahead: ReadAhead, where: dict[int, str]) -> Callable[[int], Examined | None]:
    def prepared(message_id: int) -> Examined | None:
        path = where.get(message_id)
        return ahead.take(path) if path is not None else None

    return prepared


def _file_envelope(path: Path, max_bytes: int) -> Envelope:
    return file_envelope(
        path,
        source="cli",
        # unique per run and file as before (64 random bits), and led by the time in ns so a
        # run's keys go to the end of the (source, source_ref) index, not to random pages of it
        source_ref=f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}:{path}",
        filename=path.name,
        max_bytes=max_bytes,
        meta={"path": str(path)},
    )


def _batches(
    envelopes: Iterable[Envelope],
    size: int,
    stop: Callable[[], bool] | None = None,
    max_bytes: int = BATCH_BYTES,
) -> Iterator[list[Envelope]]:
    """Group envelopes by ``size`` messages, or fewer once they hold ``max_bytes``.

    ``stop`` is asked before each batch is started: once it says so, no further envelope is
    taken from ``envelopes`` (a transport claims a payload when it yields it).
    """
    batch: list[Envelope] = []
    held = 0
    source = iter(envelopes)
    while not (stop is not None and not batch and stop()):
        envelope = next(source, None)
        if envelope is None:
            break
        batch.append(envelope)
        held += len(envelope.payload)
        if len(batch) >= size or held >= max_bytes:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _signature_check(settings: Settings) -> Callable[[str, bytes], None] | None:
    """What verifies the signature of a message from a partner whose ``signature.verify`` is
    not ``off`` (docs/adr/0021-xml-signatures.md); None when no partner's is."""
    verifying = {
        p.id: p.signature
        for p in settings.partners
        if p.signature is not None and p.signature.verify != "off"
    }
    if not verifying:
        return None

    def check(partner: str, payload: bytes) -> None:
        signature = verifying.get(partner)
        if signature is not None:
            signature.check(partner, payload)

    return check
