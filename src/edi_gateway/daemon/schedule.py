"""When each connector is due, and how a failing one backs off: plain logic, no I/O.

Times are UTC ``datetime``s from a clock the daemon passes in (tests pass their own). Each
inbound connector has a :class:`ConnectorState`; the daemon asks :meth:`Scheduler.due` which
ones to poll now, reports the result with :meth:`Scheduler.succeeded` / :meth:`Scheduler.failed`
and sleeps until :meth:`Scheduler.next_wake`. The HTTP thread reads :meth:`Scheduler.snapshot`;
a lock keeps the two threads apart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from edi_gateway.config.daemon import BackoffSettings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC (the daemon's clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Every ``seconds``, or at the times of a cron ``expression`` (UTC)."""

    seconds: float | None = None
    expression: str | None = None

    @classmethod
    def of(cls, every_seconds: float, cron: str | None) -> Schedule:
        """The schedule a connector's ``every_seconds`` / ``cron`` keys describe."""
        return cls(expression=cron) if cron else cls(seconds=every_seconds)

    def next_after(self, moment: datetime) -> datetime:
        """The next poll after one at ``moment``."""
        if self.expression is not None:
            from edi_gateway.cron import next_time  # cronsim only for a cron schedule

            return next_time(self.expression, moment)
        assert self.seconds is not None
        return moment + timedelta(seconds=self.seconds)

    @property
    def least_gap(self) -> float:
        """Seconds a retry waits at least: the interval (a cron schedule has none)."""
        return self.seconds or 0.0

    def describe(self) -> str:
        """``every 5 s`` or ``cron */5 * * * * (UTC)``."""
        if self.expression is not None:
            return f"cron {self.expression} (UTC)"
        return f"every {self.seconds:g} s"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``initial`` doubling up to ``cap``; ``not_recoverable`` flat."""

    initial: float = 5.0
    cap: float = 300.0
    not_recoverable: float = 900.0

    @classmethod
    def of(cls, settings: BackoffSettings) -> Backoff:
        """The backoff the ``daemon.backoff`` settings describe."""
        return cls(settings.initial_seconds, settings.max_seconds, settings.not_recoverable_seconds)

    def delay(self, failures: int, *, recoverable: bool) -> float:
        """Seconds to wait after ``failures`` failures in a row (``failures`` >= 1)."""
        if not recoverable:
            return self.not_recoverable
        exponent = min(max(failures - 1, 0), 32)  # 2**32 * anything is past any cap
        return min(self.initial * 2.0**exponent, self.cap)


@dataclass(slots=True)
class LastError:
    """The most recent failure of a connector."""

    at: datetime
    message: str
    code: str
    recoverable: bool


@dataclass(slots=True)
class ConnectorState:
    """One connector: its schedule, when it is next due, and how it has been doing."""

    name: str
    schedule: Schedule
    kind: str = "poll"
    """``poll`` (the daemon polls it) or ``push`` (a server the daemon started)."""
    next_due: datetime | None = None
    """None: not scheduled (a push connector whose server is up)."""
    failures: int = 0
    backoff_seconds: float = 0.0
    last_success: datetime | None = None
    last_error: LastError | None = None
    taken: int = 0
    """Messages taken since start-up."""

    def as_json(self) -> dict[str, Any]:
        """What ``/healthz`` shows for this connector."""
        error = self.last_error
        return {
            "kind": self.kind,
            "schedule": self.schedule.describe() if self.kind == "poll" else "push",
            "up": self.failures == 0,
            "last_success": _iso(self.last_success),
            "last_error": None
            if error is None
            else {
                "at": _iso(error.at),
                "message": error.message,
                "code": error.code,
                "recoverable": error.recoverable,
            },
            "consecutive_failures": self.failures,
            "backoff_seconds": self.backoff_seconds,
            "next_poll": _iso(self.next_due),
            "messages_taken": self.taken,
        }


@dataclass
class Scheduler:
    """Every inbound connector's state; thread-safe for one writer and readers."""

    backoff: Backoff
    clock: Clock = utc_now
    states: dict[str, ConnectorState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, schedule: Schedule, *, kind: str = "poll") -> ConnectorState:
        """Track a connector; it is due at once (start-up finishes what a crash left)."""
        state = ConnectorState(name, schedule, kind=kind, next_due=self.clock())
        with self._lock:
            self.states[name] = state
        return state

    def due(self) -> list[str]:
        """The connectors to poll now, in configuration order."""
        moment = self.clock()
        with self._lock:
            return [
                s.name
                for s in self.states.values()
                if s.next_due is not None and s.next_due <= moment
            ]

    def succeeded(self, name: str, *, taken: int = 0, reschedule: bool = True) -> None:
        """A poll (or a server start) worked: reset the backoff, schedule the next poll."""
        moment = self.clock()
        with self._lock:
            state = self.states[name]
            state.failures, state.backoff_seconds = 0, 0.0
            state.last_success = moment
            state.taken += taken
            state.next_due = state.schedule.next_after(moment) if reschedule else None

    def failed(self, name: str, message: str, *, code: str, recoverable: bool) -> float:
        """A poll failed: back off; return the seconds until the next try."""
        moment = self.clock()
        with self._lock:
            state = self.states[name]
            state.failures += 1
            delay = self.backoff.delay(state.failures, recoverable=recoverable)
            wait = max(delay, state.schedule.least_gap)
            state.backoff_seconds = delay
            state.last_error = LastError(moment, message, code, recoverable)
            state.next_due = moment + timedelta(seconds=wait)
            return wait

    def next_wake(self, others: Iterable[datetime] = ()) -> datetime | None:
        """The earliest time anything (a connector, or one of ``others``) is due."""
        with self._lock:
            times = [s.next_due for s in self.states.values() if s.next_due is not None]
        times.extend(others)
        return min(times, default=None)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every connector as ``/healthz`` shows it."""
        with self._lock:
            return {name: state.as_json() for name, state in self.states.items()}

    def healthy(self) -> bool:
        """No connector is failing."""
        with self._lock:
            return all(state.failures == 0 for state in self.states.values())


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")
