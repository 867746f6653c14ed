"""`edi-gateway run`: poll every inbound connector on its schedule until told to stop.

One loop in the main thread does all the work, one batch at a time (the SQLite store has one
writer, and transports block): it polls each connector when its schedule says
(``every_seconds`` or ``cron``, UTC; :mod:`.schedule`), flushes the outbox every
``daemon.outbox_every_seconds`` and after each poll that took messages, and sleeps until the
next thing is due. A connector that fails (``TransportError`` or anything else) backs off
exponentially on its own and is logged; the others go on. SIGTERM / SIGINT let the batch in
hand finish (committed, processed, acknowledged), then ``run`` returns and the process exits 0.

Besides the loop: the ``/healthz`` + ``/metrics`` server (:mod:`.http`, a thread that only
reads) and the servers of push connectors (:mod:`edi_gateway.transports.push`), whose payloads
wait for the same lock as the loop, so processing stays one batch at a time.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from time import monotonic
from types import FrameType
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from edi_gateway.alerts.clocks import LOOK_EVERY, look
from edi_gateway.alerts.digest import prepare, send_due
from edi_gateway.alerts.events import (
    StoreTrouble,
    record_connector_down,
    record_deliveries,
    record_outcome,
    record_store_unavailable,
)
from edi_gateway.app import Gateway, Outcome
from edi_gateway.clocks.sla import LOOK_EVERY as SLA_EVERY
from edi_gateway.clocks.sla import look as sla_look
from edi_gateway.daemon.events import (
    Waiting,
    deliveries,
    messages_taken,
    outbox_pending,
    receipts_waiting,
    settle_receipts,
)
from edi_gateway.daemon.leases import Ownership
from edi_gateway.daemon.metrics import Metrics, Tally, for_daemon
from edi_gateway.daemon.schedule import Backoff, Clock, Schedule, Scheduler, utc_now
from edi_gateway.envelope import Envelope
from edi_gateway.errors import ErrorCode, GatewayError, first_line
from edi_gateway.logs import log_fields
from edi_gateway.outbound.outbox import delivery_states
from edi_gateway.store.db import deadlocked, transient, unavailable
from edi_gateway.transports import (
    InboundServer,
    InboundTransport,
    Receipt,
    Receive,
    TransportError,
    is_push,
    open_inbound,
    open_server,
)

if TYPE_CHECKING:
    from edi_gateway.outbound.outbox import ConnectorDeliveries
    from edi_gateway.pipeline.readahead import ReadAhead

log = logging.getLogger("edi_gateway.daemon")  # not __name__: the name log filters know
Report = Callable[[str, Outcome], None]
Observe = Callable[[dict[int, str], float], None]
LONGEST_SLEEP = 60.0  # wake at least this often (a wall clock that jumped is noticed)
ONCE_TRIES = 6
"""``run --once``: tries at a store gone while starting (0.5 s doubling: ~15 s) before its
error ends the run (STORE_UNAVAILABLE) rather than wait forever for it."""
SKIPPED_AGAIN_SECONDS = 0.2  # a supplier another gateway was bundling: flush again this soon
RETENTION_SECONDS = 30.0  # a retention look purges this long at most, then intake goes on
RETENTION_AGAIN_SECONDS = 60.0  # and comes back this soon while finished work is left
RECEIPT_CHECK_SECONDS = 1.0  # while receipts are awaited: look this often (a look never waits)
STORE_TROUBLE = (ErrorCode.STORE_BUSY, ErrorCode.STORE_UNAVAILABLE)
"""A poll failed with these because of the store, whatever the connector: ``store.unavailable``
once for all connectors, never ``connector.down`` (docs/adr/0033 amendment)."""


def run(gateway: Gateway, *, once: bool, report: Report, ahead: ReadAhead | None = None) -> Outcome:
    """Poll until stopped (or one cycle with ``once``); return everything processed.
    ``ahead``: a read-ahead worker on the files waiting in the inbound folders (``once``)."""
    stop = threading.Event()
    _install_signal_handlers(stop)
    daemon = Daemon(gateway, report, stop, metrics=for_daemon(gateway.settings, once=once))
    daemon.ahead = ahead
    return daemon.run(once=once)


def make_receive(
    gateway: Gateway,
    name: str,
    lock: threading.Lock | threading.RLock,
    observe: Observe | None = None,
) -> Receive:
    """The ``receive`` a push connector's server calls with each payload (transports/push.py).

    It takes ``lock`` (one batch at a time), refuses a document whose sender is not the
    partner that pushed it (``SenderMismatch``: nothing is stored, transports/sender.py),
    commits and processes the envelope as the inbound connector ``name`` would, and returns its
    :class:`Receipt`. Tests of a push transport can build one with their own lock.
    """
    from edi_gateway.transports.sender import check_sender

    def receive(envelope: Envelope) -> Receipt:
        with lock, log_fields(connector=name):
            check_sender(envelope, gateway.policy.partner_of, gateway.policy.max_size)
            repeated = gateway.stored(envelope.source, envelope.source_ref) is not None
            outcome = gateway.poll(_Pushed(name, envelope), observe=observe)
        message_id, state = next(iter(outcome.states.items()))
        return Receipt(message_id, state, repeated)

    return receive


class Daemon:
    """The state of one ``run``: schedules, open transports, servers, metrics."""

    def __init__(
        self,
        gateway: Gateway,
        report: Report,
        stop: threading.Event,
        clock: Clock = utc_now,
        metrics: Tally | None = None,
    ) -> None:
        self.gateway, self.report, self.stop, self.clock = gateway, report, stop, clock
        self.settings = settings = gateway.settings
        self.scheduler = Scheduler(Backoff.of(settings.daemon.backoff), clock)
        self.metrics = metrics if metrics is not None else Metrics()
        """Prometheus metrics; ``run`` counts into a :class:`Tally` when none are served."""
        self.lock = threading.RLock()
        """Held for every batch: the loop's polls and flushes, and pushed payloads."""
        self.total = Outcome()
        self.transports: dict[str, InboundTransport] = {}
        self.servers: dict[str, InboundServer] = {}
        self.pending = 0
        """Outbox rows waiting, for ``/healthz`` (counted with Prometheus metrics only)."""
        self.waiting = Waiting()
        """Deliveries whose receipt is awaited (outbound/receipts.py), for health and cadence."""
        polled = [c for c in settings.connectors if c.direction == "in" and not is_push(c)]
        self.ownership = Ownership(gateway.store, settings.daemon.lease_seconds, len(polled))
        """This gateway's leases: its connectors when several share the store."""
        self.started = clock()
        self.next_flush = self.next_check = self.next_look = self.next_sla = self.started
        self.next_sweep = self.started + timedelta(seconds=settings.daemon.lease_seconds)
        self.next_purge = self.started
        self.limit = settings.intake.max_size_mb * 1024 * 1024
        self.rules: dict[str, Any] = {}
        self.ahead: ReadAhead | None = None
        """``run --once``: the read-ahead worker on the inbound folders' waiting files."""
        self.down: set[str] = set()
        """Connectors whose failure was told (``connector.down``) and that did not work since."""
        self.store_trouble: StoreTrouble | None = None
        """Polls the store failed, since when: told once as ``store.unavailable`` when a poll
        works again, not as each connector down (docs/adr/0033 amendment)."""

    def run(self, *, once: bool) -> Outcome:
        """Poll until ``stop`` is set (or one cycle with ``once``); close everything after."""
        self.ownership.beat()  # alive before anything is claimed in its name
        self.rules = self.gateway.rules_status()
        if self.rules["problem"]:
            log.warning("Peppol rules %s: %s", self.rules["checks"], self.rules["problem"])
        else:
            log.info("Peppol rules %s: outgoing documents are checked", self.rules["release"])
        for unknown in self.rules.get("unknown_severity_rules", ()):
            log.warning("severity of partner %s: no rule of that ID in the release", unknown)
        self._start_up(once)
        for conn in self.settings.connectors:
            if conn.direction == "in" and not (once and is_push(conn)):
                kind = "push" if is_push(conn) else "poll"
                self.scheduler.add(conn.name, Schedule.of(conn.every_seconds, conn.cron), kind=kind)
        http = None if once else self._start_http()
        try:
            self._loop(once)
        finally:
            self._close(http)
        return self.total

    def _start_up(self, once: bool) -> None:
        """Alert channels hear from now on; messages a crash left are finished. The instance
        lease says this gateway is running already: a store that goes away now (a PostgreSQL
        restart) is waited for, one warning line a try, never a reason to exit. ``once`` (a
        cron job): waited for ``ONCE_TRIES`` tries (~15 s), then its error ends the run."""
        backoff, failures = Backoff(initial=0.5, cap=10.0), 0
        while True:
            try:
                prepare(self.gateway.store, self.settings)
                with self.lock:
                    pending = self.gateway.process_pending()
                break
            except Exception as exc:
                if not transient(exc) or (once and failures + 1 >= ONCE_TRIES):
                    raise
                failures += 1
                pause = backoff.delay(failures, recoverable=True)
                _log_store_trouble(exc, f"starting: the store is unavailable, again in {pause:g} s")
                if self.stop.wait(pause):
                    return  # told to stop meanwhile: nothing was taken
        if pending.states:
            self.report("pending", pending)
            self.total.states.update(pending.states)

    def _loop(self, once: bool) -> None:
        while not self.stop.is_set():
            self._keep_leases()
            took = False
            for name in self.scheduler.due():
                if self.stop.is_set():
                    break
                took = self._attend(name, once) or took
            if once or took or self.clock() >= self.next_flush:
                self._flush()
            elif self.waiting.count and self.clock() >= self.next_check:
                self._check_receipts()
            if once:
                return
            self._retention()
            checks = [self.next_check] if self.waiting.count else []
            renew = self.clock() + timedelta(seconds=self.ownership.every)
            wake = self.scheduler.next_wake([self.next_flush, renew, *checks]) or self.next_flush
            wait = (wake - self.clock()).total_seconds()
            self.stop.wait(min(max(0.05, wait), LONGEST_SLEEP))

    def _attend(self, name: str, once: bool) -> bool:
        """Poll connector ``name`` (or start its server); True when it took messages."""
        conn = self.settings.connector(name)
        took = 0
        with log_fields(connector=name):
            try:
                if is_push(conn):
                    self.servers[name] = open_server(conn, self._receive(name), self.limit)
                    log.info("connector %s: server started", name)
                else:
                    took = self._poll(name, once)
            except TransportError as exc:
                self._failed(name, exc.message, exc.code, recoverable=exc.recoverable)
            except GatewayError as exc:  # a secret missing, a bad setting found at open
                self._failed(name, exc.message, exc.code, recoverable=False)
            except Exception as exc:  # one connector's bug must not stop the others
                if deadlocked(exc):  # rolled back at every try: the next round takes it
                    busy = unavailable(exc)
                    assert busy is not None
                    self._failed(name, busy.message, busy.code, recoverable=True)
                elif transient(exc):  # the store went away (restarted, cut off): one line
                    what = f"the store cannot be used: {first_line(exc, 300)}"
                    self._failed(name, what, ErrorCode.STORE_UNAVAILABLE, recoverable=True)
                else:
                    log.exception("connector %s: unexpected error", name)
                    self._failed(name, repr(exc), ErrorCode.INTERNAL_ERROR, recoverable=True)
            else:
                self.scheduler.succeeded(name, taken=took, reschedule=not is_push(conn))
                self.down.discard(name)
                # the store works again for a poll it had failed, or one that wrote: a poll
                # that only read (nothing waiting) says nothing of writes still failing
                trouble = self.store_trouble
                if trouble is not None and (name in trouble.connectors or took > 0):
                    self._store_back()
            finally:
                self._gauges(name)
        return took > 0

    def _poll(self, name: str, once: bool) -> int:
        if not self.ownership.may_poll(name):  # another gateway polls it (daemon/leases.py)
            _close_quietly(self.transports.pop(name, None))
            return 0
        transport = self.transports.get(name)
        if transport is None:
            conn = self.settings.connector(name)
            transport = open_inbound(conn, self.limit, claimants=self.ownership)
            self.transports[name] = transport

        def stop() -> bool:  # asked between batches: stopping, or the connector was lost
            return self.stop.is_set() or not self.ownership.keeps(name)

        with self.lock:
            outcome = self.gateway.poll(
                transport, stop, observe=self._observer(name), ahead=self.ahead
            )
        if outcome.states or once:
            self.report(name, outcome)
        return len(outcome.states)

    def _failed(self, name: str, message: str, code: ErrorCode, *, recoverable: bool) -> None:
        wait = self.scheduler.failed(name, message, code=str(code), recoverable=recoverable)
        _close_quietly(self.transports.pop(name, None))  # a fresh connection next time
        state = self.scheduler.states[name]
        if code in STORE_TROUBLE:  # the store's, not the connector's: told once it works
            if self.store_trouble is None:
                self.store_trouble = StoreTrouble(self.clock(), str(code), message)
            self.store_trouble.connectors.add(name)
        elif name not in self.down:  # it worked until now: the alert channels hear it once
            self.down.add(name)
            try:
                record_connector_down(
                    self.gateway.store,
                    self.settings,
                    name,
                    code=str(code),
                    message=message,
                    at=self.clock(),
                )
            except Exception:
                log.warning("connector %s: could not record its alert", name, exc_info=True)
        how = "recoverable" if recoverable else "NOT recoverable: an operator must act"
        log.error(
            "connector %s failed (%s, %s, %d in a row): %s; next try in %.0f s",
            name,
            code,
            how,
            state.failures,
            message,
            wait,
            extra={"code": str(code), "recoverable": recoverable, "backoff_seconds": wait},
        )

    def _store_back(self) -> None:
        """A poll worked after the store failed others: the alert channels hear it once."""
        trouble, self.store_trouble = self.store_trouble, None
        assert trouble is not None
        try:
            record_store_unavailable(self.gateway.store, self.settings, trouble, self.clock())
        except Exception:  # the store failing again: told once a poll works after that
            log.warning("could not record the store's unavailability", exc_info=True)
            self.store_trouble = trouble

    def _observer(self, name: str) -> Observe:
        def observe(states: dict[int, str], seconds: float) -> None:
            self.total.add(name, states)
            try:
                messages_taken(self.gateway.store, self.metrics, name, states, seconds)
            except Exception:  # metrics and log lines never fail a batch already committed
                log.exception("connector %s: could not log or count a batch", name)
            try:  # new orders and failed messages, for the alert channels (alerts/)
                record_outcome(self.gateway.store, self.settings, states, self.clock())
            except Exception:  # an alert never fails a batch already committed
                log.exception("connector %s: could not record the alerts of a batch", name)

        return observe

    def _receive(self, name: str) -> Receive:
        inner = make_receive(self.gateway, name, self.lock, self._observer(name))

        def receive(envelope: Envelope) -> Receipt:
            receipt = inner(envelope)
            self.scheduler.succeeded(name, taken=1, reschedule=False)
            self._gauges(name)
            return receipt

        return receive

    def _flush(self) -> None:
        """Settle the receipts that came, queue the due supplier bundles and deliver what is
        due; log and count it."""
        from edi_gateway.outbound.forward import flush_all

        store = self.gateway.store
        skipped: set[str] = set()  # suppliers another gateway was bundling: look again soon
        with self.lock, log_fields(stage="outbox"):
            try:
                done = flush_all(store, self.settings, wait=False, skipped=skipped)
                self.total.delivered.update(deliveries(store, self.metrics, done))
                record_deliveries(store, self.settings, done, self.clock())
                self.waiting = receipts_waiting(store, self.metrics)
                if self.metrics.live:  # for /metrics and /healthz: nobody reads them otherwise
                    self.pending = outbox_pending(store)
                    with store.connect() as conn:
                        states = delivery_states(conn, self.settings, self.clock())
                    self.metrics.outbox(self.pending, states)
            except Exception as exc:  # noqa: BLE001 - delivery trouble must not stop intake
                _log_store_trouble(exc, "outbox flush failed; retrying next cycle")
        self._alerts()
        interval = self.settings.daemon.outbox_every_seconds
        if skipped:  # what that gateway had not seen yet waits no full interval
            interval = min(interval, SKIPPED_AGAIN_SECONDS)
        self.next_flush = self.clock() + timedelta(seconds=interval)
        self.next_check = self.clock() + timedelta(seconds=RECEIPT_CHECK_SECONDS)

    def _alerts(self) -> None:
        """Keep the business clocks when due (SLA timers, overdue deliveries, certificates),
        then send each alert channel its digest of what is due (clocks/, alerts/)."""
        store, moment = self.gateway.store, self.clock()
        with log_fields(stage="alerts"):
            try:
                if moment >= self.next_sla:
                    self.next_sla = moment + SLA_EVERY
                    tick = sla_look(store, self.settings, moment, counts=self.metrics.live)
                    self.metrics.overdue(tick.response_overdue, tick.despatch_overdue)
                if moment >= self.next_look:
                    self.next_look = moment + LOOK_EVERY
                    for cert in look(store, self.settings, moment):
                        self.metrics.certificate(cert.where, cert.subject, cert.not_after)
                send_due(store, self.settings, moment)
            except Exception as exc:  # noqa: BLE001 - alerts must never stop intake
                _log_store_trouble(exc, "alerts could not be looked at or sent; next cycle")

    def _retention(self) -> None:
        """Purge what finished ``retention.after_days`` ago, every ``retention.every_hours``
        (docs/adr/0037); another gateway purging at the moment is left to it."""
        kept = self.settings.retention
        moment = self.clock()
        if kept is None or moment < self.next_purge:
            return
        self.next_purge = moment + timedelta(hours=kept.every_hours)
        from edi_gateway.store.purge import purge

        deadline = monotonic() + RETENTION_SECONDS

        def keep_going() -> bool:
            return not self.stop.is_set() and monotonic() < deadline

        with log_fields(stage="retention"):
            try:
                done = purge(
                    self.gateway.store,
                    moment - timedelta(days=kept.after_days),
                    actor=f"daemon {self.ownership.me}",
                    archive_dir=kept.archive_dir if kept.archive else None,
                    keep_going=keep_going,
                )
            except GatewayError as exc:  # another gateway purging; a bad archive folder
                level = logging.INFO if exc.code is ErrorCode.PURGE_RUNNING else logging.ERROR
                log.log(level, "retention: %s: %s", exc.code.value, exc.message)
                return
            except Exception as exc:  # noqa: BLE001 - retention must never stop intake
                _log_store_trouble(exc, "retention: the purge failed; next look next period")
                return
        if not done.complete:  # the budget ran out: more next minute, intake in between
            self.next_purge = self.clock() + timedelta(seconds=RETENTION_AGAIN_SECONDS)
        if done.counts:
            what = ", ".join(f"{n} {name}" for name, n in sorted(done.counts.items()))
            log.info(
                "retention: purge run %s removed %s (archive %s)", done.run_id, what, done.archive
            )

    def _keep_leases(self) -> None:
        """Renew this gateway's leases when due, and every lease period take over the messages
        a gateway that died left half-way (committed, never processed)."""
        try:
            self.ownership.beat()
        except Exception as exc:  # noqa: BLE001 - logged below; the leases run out, others take over
            _log_store_trouble(exc, "could not renew this gateway's leases")
            return
        if self.clock() < self.next_sweep:
            return
        lease = timedelta(seconds=self.settings.daemon.lease_seconds)
        self.next_sweep = self.clock() + lease
        with self.lock, log_fields(stage="pending"):
            try:
                left = self.gateway.process_pending(idle=lease)
            except Exception as exc:  # noqa: BLE001 - logged below; tried again next period
                _log_store_trouble(exc, "taking over unprocessed messages failed")
                return
        if left.states:
            self.report("pending", left)
            self.total.states.update(left.states)

    def _check_receipts(self) -> None:
        """Between flushes, settle the awaited receipts that came or are overdue (never waits:
        a partner's silence is a deadline in the store, not a pause here)."""
        store = self.gateway.store
        with self.lock, log_fields(stage="outbox"):
            try:
                done = settle_receipts(store, self.settings)
                self.total.delivered.update(deliveries(store, self.metrics, done))
                self.waiting = receipts_waiting(store, self.metrics)
            except Exception as exc:  # noqa: BLE001 - receipt trouble must not stop intake
                _log_store_trouble(exc, "checking receipts failed; retrying next cycle")
        self.next_check = self.clock() + timedelta(seconds=RECEIPT_CHECK_SECONDS)

    def _gauges(self, name: str) -> None:
        state = self.scheduler.states[name]
        self.metrics.connector_state(
            name,
            failures=state.failures,
            backoff=state.backoff_seconds,
            last_success=state.last_success,
        )

    def health(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of ``/healthz`` (called from the HTTP thread)."""
        moment = self.clock()
        reachable, problem, outbound = self._store_look(moment)
        failing = sorted(name for name, state in outbound.items() if state.failing)
        ok = reachable and self.scheduler.healthy() and not failing
        data: dict[str, Any] = {
            "status": "ok" if ok else "degraded",
            "stopping": self.stop.is_set(),
            "started_at": _iso(self.started),
            "store": {"reachable": reachable, "error": problem},
            "outbox": {"pending": self.pending},
            "rules": self.rules,
            "waiting": self.waiting.health(self.clock()),
            "instance": {"id": self.ownership.me, "polls": sorted(self.ownership.owned)},
            "connectors": self.scheduler.snapshot(),
            "deliveries": {
                "failing": failing,
                "connectors": {name: state.as_json(moment) for name, state in outbound.items()},
            },
        }
        return (200 if reachable else 503), data

    def _store_look(
        self, moment: datetime
    ) -> tuple[bool, str | None, dict[str, ConnectorDeliveries]]:
        """Whether the store answers (and why not), and where deliveries stand."""
        try:
            with self.gateway.store.engine.connect() as conn:
                conn.execution_options(sqlite_deferred=True)  # never wait for the loop's write
                conn.execute(text("SELECT 1"))
                return True, None, delivery_states(conn, self.settings, moment)
        except Exception as exc:  # noqa: BLE001 - any failure means: not reachable
            return False, first_line(exc, 300), {}

    def _start_http(self) -> Any:
        http = self.settings.daemon.http
        if http is None:
            return None
        from edi_gateway.daemon.http import StatusServer
        from edi_gateway.web import console_app

        console = console_app(self.gateway, http.console, health=self.health)
        # served from now on: Prometheus metrics (a daemon built with a Tally counts into them)
        metrics = self.metrics if isinstance(self.metrics, Metrics) else Metrics()
        self.metrics = metrics
        server = StatusServer(http.host, http.port, self.health, metrics.exposition, console)
        server.start()
        return server

    def _close(self, http: Any) -> None:
        """At shutdown: servers stop accepting, transports disconnect, the endpoint closes."""
        for name, server in self.servers.items():
            try:
                server.close()
            except Exception:  # closing one must not keep the others open
                log.exception("connector %s: server did not close cleanly", name)
        for transport in self.transports.values():
            _close_quietly(transport)
        self.ownership.release()  # after the last batch: the next owner starts at once
        if http is not None:
            http.close()
        log.info("stopped")


class _Pushed:
    """One pushed envelope seen as an inbound transport, so it takes ``Gateway.poll``'s path."""

    def __init__(self, name: str, envelope: Envelope) -> None:
        self.name = name
        self._envelope = envelope

    def recover(self) -> Iterator[Envelope]:
        return iter(())

    def poll(self) -> Iterator[Envelope]:
        yield self._envelope

    def ack(self, envelope: Envelope, *, ok: bool) -> None:
        """Nothing to move: the server answers the partner once ``receive`` returns."""

    def close(self) -> None:
        """Nothing to release: the server owns the connection."""


def _close_quietly(transport: InboundTransport | None) -> None:
    if transport is None:
        return
    try:
        transport.close()
    except Exception:  # a connection already broken: nothing more to release
        log.debug("closing a transport failed", exc_info=True)


def _log_store_trouble(exc: Exception, what: str) -> None:
    """A store that went away is one warning line; anything else is a bug, with its traceback."""
    if transient(exc):
        log.warning("%s: %s", what, first_line(exc, 300))
    else:
        log.exception(what)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the work in hand, then stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
