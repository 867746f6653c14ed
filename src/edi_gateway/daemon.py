"""`edi-gateway run`: poll every inbound connector on its interval until told to stop.

SIGTERM / SIGINT let the batch in hand finish (intake and processing are committed, files
acknowledged) and then exit cleanly. A failing connector is logged and retried next cycle; the
others go on. Cron schedules, backoff and health endpoints come with the network connectors.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from types import FrameType

from edi_gateway.app import Gateway, Outcome, inbound_transports

log = logging.getLogger(__name__)


def run(gateway: Gateway, *, once: bool, report: Callable[[str, Outcome], None]) -> Outcome:
    """Poll until stopped (or one cycle with ``once``); return everything processed."""
    stop = threading.Event()
    _install_signal_handlers(stop)
    transports = inbound_transports(gateway.settings)
    intervals = {t.name: gateway.settings.connector(t.name).every_seconds for t in transports}
    due = dict.fromkeys(intervals, 0.0)
    total = Outcome()
    pending = gateway.process_pending()
    if pending.states:
        report("pending", pending)
        total.states.update(pending.states)
    while not stop.is_set():
        for transport in transports:
            if stop.is_set() or time.monotonic() < due[transport.name]:
                continue
            due[transport.name] = time.monotonic() + intervals[transport.name]
            try:
                outcome = gateway.poll(transport, stop.is_set)
            except Exception:  # one connector's failure must not stop the others
                log.exception("connector %s failed; retrying next cycle", transport.name)
                continue
            total.add(transport.name, outcome.states)
            if outcome.states or once:
                report(transport.name, outcome)
        total.delivered.update(_flush_outbox(gateway))
        if once:
            break
        stop.wait(max(0.05, min(due.values(), default=1.0) - time.monotonic()))
    return total


def _flush_outbox(gateway: Gateway) -> Counter[str]:
    """Queue the due supplier bundles, deliver what is due; return deliveries per partner."""
    from edi_gateway.outbound.forward import flush_all
    from edi_gateway.outbound.outbox import SENT, partners_of

    try:
        done = flush_all(gateway.store, gateway.settings)
    except Exception:  # delivery trouble must not stop intake
        log.exception("outbox flush failed; retrying next cycle")
        return Counter()
    sent = [row_id for row_id, state in done.items() if state == SENT]
    return Counter(partners_of(gateway.store, sent))


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the work in hand, then stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
