"""Cron expressions for connector schedules, in UTC (``cronsim``, docs/adr/0011-*).

Five fields: minute, hour, day of month, month, day of week, with the usual ``*``, ``,``,
``-``, ``/``, month and day names (``JAN``, ``MON``), ``L`` (last day of the month) and
Debian cron's rule that day of month and day of week are OR-ed when neither is ``*``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

FIELDS = "minute hour day-of-month month day-of-week"


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a usable five-field cron expression, or ``None`` if it is."""
    parts = expression.split()
    if len(parts) != 5:
        return (
            f"found {expression!r} ({len(parts)} fields), expected five fields ({FIELDS}), "
            "such as '*/5 * * * *' (every 5 minutes, UTC)"
        )
    try:
        next(CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC)))
    except (CronSimError, StopIteration) as exc:
        detail = str(exc) or "no matching time"
        return (
            f"found {expression!r}: {detail}; expected a cron expression such as '0 6 * * MON-FRI'"
        )
    return None


def next_time(expression: str, after: datetime) -> datetime:
    """The first time after ``after`` (to the second) that ``expression`` matches, in UTC."""
    moment = after.astimezone(UTC) if after.tzinfo else after.replace(tzinfo=UTC)
    return next(CronSim(expression, moment))
