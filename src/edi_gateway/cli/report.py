"""``edi-gateway report kpi``: KPIs per partner over a time window (reports/kpi.py)."""

from __future__ import annotations

import argparse
import csv
import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edi_gateway.cli.common import Sub, emit, time_filters, with_gateway

if TYPE_CHECKING:
    from edi_gateway.app import Gateway

CSV_COLUMNS = [
    "partner",
    "documents_in",
    "duplicates_in",
    "documents_out",
    "orders",
    "answered",
    "response_median_hours",
    "response_p90_hours",
    "despatch_due",
    "despatch_on_time",
    "on_time_rate",
    "messages",
    "first_time_right",
    "first_time_right_rate",
    "deliveries",
    "first_attempt",
    "first_attempt_rate",
    "failures",
]


def add_commands(sub: Sub) -> None:
    """The ``report`` command group."""
    report = sub.add_parser("report", help="reports over the store (KPIs per partner)")
    rsub = report.add_subparsers(dest="action", required=True, metavar="ACTION")
    kpi = rsub.add_parser(
        "kpi",
        help="per partner: documents in and out, response time, on-time despatch, "
        "first-time-right, failures by code",
        description=(
            "KPIs per partner over [--since, --until) (default: the last 30 days), from the "
            "store only. See the README (Reports) for how each figure is computed."
        ),
    )
    time_filters(kpi, "received")
    kpi.add_argument("--partner", help="only this partner (its id)")
    shape = kpi.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="machine-readable output")
    shape.add_argument("--csv", action="store_true", help="one CSV row per partner")
    kpi.set_defaults(handler=with_gateway(_kpi))


def _kpi(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.reports.kpi import kpi_report
    from edi_gateway.reports.kpi import window as kpi_window

    since, until = kpi_window(args.since, args.until)
    with gateway.store.looking() as conn:
        rows = kpi_report(conn, since, until, args.partner)
    window = {"since": _utc(since), "until": _utc(until)}
    if args.csv:
        print(_csv(rows), end="")
        return 0
    return emit({**window, "partners": rows}, args.json, _text(window, rows))


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    response, despatch = row["response_hours"], row["on_time_despatch"]
    right = row["first_time_right"]

    def counts(found: dict[str, int]) -> str:
        return " ".join(f"{k}={v}" for k, v in found.items())

    return {
        "partner": row["partner"],
        "documents_in": counts(row["documents_in"]),
        "duplicates_in": row["duplicates_in"],
        "documents_out": counts(row["documents_out"]),
        "orders": response["orders"],
        "answered": response["answered"],
        "response_median_hours": response["median"],
        "response_p90_hours": response["p90"],
        "despatch_due": despatch["due"],
        "despatch_on_time": despatch["on_time"],
        "on_time_rate": despatch["rate"],
        "messages": right["messages"],
        "first_time_right": right["right"],
        "first_time_right_rate": right["rate"],
        "deliveries": right["deliveries"],
        "first_attempt": right["first_attempt"],
        "first_attempt_rate": right["delivery_rate"],
        "failures": counts(row["failures"]),
    }


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in _flat(row).items()})
    return out.getvalue()


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} h"


def _text(window: dict[str, str], rows: list[dict[str, Any]]) -> str:
    lines = [f"KPIs {window['since']} .. {window['until']}"]
    if not rows:
        return "\n".join([*lines, "(no traffic)"])
    for row in rows:
        response, despatch = row["response_hours"], row["on_time_despatch"]
        right = row["first_time_right"]
        ins = ", ".join(f"{k} {v}" for k, v in row["documents_in"].items()) or "none"
        outs = ", ".join(f"{k} {v}" for k, v in row["documents_out"].items()) or "none"
        lines += [
            f"{row['partner']}",
            f"  in:  {ins}"
            + (f" (+{row['duplicates_in']} duplicates)" if row["duplicates_in"] else ""),
            f"  out: {outs}",
            f"  response time: median {_hours(response['median'])}, p90 "
            f"{_hours(response['p90'])} ({response['answered']} of {response['orders']} orders "
            "answered)",
            f"  on-time despatch: {_percent(despatch['rate'])} ({despatch['on_time']} of "
            f"{despatch['due']} due)",
            f"  first time right: {_percent(right['rate'])} of {right['messages']} messages; "
            f"deliveries at the first attempt {_percent(right['delivery_rate'])} of "
            f"{right['deliveries']}",
        ]
        if row["failures"]:
            lines.append("  failures: " + ", ".join(f"{k} {v}" for k, v in row["failures"].items()))
    return "\n".join(lines)
