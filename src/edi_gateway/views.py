"""What the CLI prints: JSON-ready dicts and their human text. Reads, never decides."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from edi_gateway.errors import REMEDY, ErrorCode, GatewayError
from edi_gateway.store.schema import messages

if TYPE_CHECKING:
    from collections.abc import Callable

    from edi_gateway.app import Gateway, Outcome
    from edi_gateway.config import Settings

Json = dict[str, Any]
STATE_WORDS = {
    "processed": "processed",
    "orphan": "waiting for their order (orphan)",
    "duplicate": "duplicates of earlier messages",
    "failed": "failed",
    "received": "not yet processed",
}


def progress_bar(paths: Sequence[Path]) -> Callable[[int], None] | None:
    """A tqdm bar on a terminal; None (quiet) otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = len(paths)  # the files `ingest` takes, already listed (readahead.inbound_files)
    width = shutil.get_terminal_size().columns or 80  # a fresh pseudo-terminal may say 0
    bar = tqdm(total=total, unit="file", file=sys.stderr, leave=False, ncols=width)

    def advance(count: int) -> None:
        bar.update(count)

    return advance


def reporter(gateway: Gateway, *, quiet: bool) -> Callable[[str, Outcome], None]:
    """Print one line per connector cycle that did something (unless --json)."""

    def report(source: str, outcome: Outcome) -> None:
        if quiet:
            return
        counts = outcome.counts()
        parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "nothing new"
        print(f"{source}: {parts}", file=sys.stderr)

    return report


def message_rows(gateway: Gateway, ids: Sequence[int]) -> list[Json]:
    """Listing rows for the given message ids."""
    from edi_gateway.store import queries
    from edi_gateway.store.tables import Message

    with gateway.store.session() as session:
        rows = session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id))
        return [queries.message_summary(m) for m in rows]


def outcome_data(gateway: Gateway, outcome: Outcome, *, deliveries: bool = False) -> Json:
    """The summary of an ingest or run: what arrived, what was accepted, what failed and why;
    with ``deliveries`` (a run) also the connectors with unfinished deliveries (``outbox``)."""
    c = messages.c
    final: dict[int, str] = {}
    failures: list[Json] = []
    ids = sorted(outcome.states)
    with gateway.store.connect() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = conn.execute(select(c.id, c.state).where(c.id.in_(chunk)))
            final.update({mid: state for mid, state in rows})
        failed = sorted(mid for mid, state in final.items() if state == "failed")
        for start in range(0, len(failed), 500):
            columns = (c.id, c.filename, c.error_code, c.error_line, c.error_detail)
            rows = conn.execute(
                select(*columns).where(c.id.in_(failed[start : start + 500])).order_by(c.id)
            )
            failures += [
                dict(
                    zip(
                        ("id", "filename", "error_code", "error_line", "error_detail"),
                        row,
                        strict=True,
                    )
                )
                for row in rows
            ]
    return {
        "arrived": len(outcome.states),
        "by_source": dict(outcome.sources),
        "by_state": dict(Counter(final.values())),
        "failures": failures,
        "delivered": dict(outcome.delivered),
        "outbox": _outbox_state(gateway) if deliveries else {},
    }


def _outbox_state(gateway: Gateway) -> Json:
    """Per outbound connector with something unfinished: pending, retrying, failed, awaiting
    (and the newest error), so a run's summary says what did not go."""
    from edi_gateway.outbound.outbox import delivery_states
    from edi_gateway.pipeline.history import now

    moment = now()
    with gateway.store.connect() as conn:
        states = delivery_states(conn, gateway.settings, moment)
    return {
        name: state.as_json(moment)
        for name, state in states.items()
        if state.pending or state.failed or state.awaiting
    }


def outcome_text(data: Json) -> str:
    """Human summary of outcome_data."""
    by_source = ", ".join(f"{src}: {n}" for src, n in data["by_source"].items())
    lines = [f"Arrived:  {data['arrived']} messages" + (f" ({by_source})" if by_source else "")]
    for state in ("processed", "orphan", "duplicate", "failed", "received"):
        count = data["by_state"].get(state)
        if count:
            lines.append(f"  {count:>5} {STATE_WORDS[state]}")
    delivered = data.get("delivered") or {}
    if delivered:
        parts = ", ".join(f"{partner}: {n}" for partner, n in sorted(delivered.items()))
        lines.append(f"Sent:     {sum(delivered.values())} outbound files ({parts})")
    lines += _outbox_lines(data.get("outbox") or {})
    for failure in data["failures"]:
        where = f" line {failure['error_line']}" if failure["error_line"] else ""
        lines.append(
            f"Failed #{failure['id']} {failure['filename']}: {failure['error_code']}{where}: "
            f"{failure['error_detail']}"
        )
        remedy = _remedy(failure["error_code"])
        if remedy:
            lines.append(f"    -> {remedy}")
    if data["failures"]:
        lines.append(
            "Inspect with `edi-gateway messages show ID`; retry with `messages redrive ID`."
        )
    return "\n".join(lines)


def _outbox_lines(outbox: Json) -> list[str]:
    """The summary's lines on deliveries that did not go (yet)."""
    lines: list[str] = []
    stuck = False
    for name, state in sorted(outbox.items()):
        parts = [f"{state['pending']} pending"]
        parts += [f"{state[k]} {k}" for k in ("retrying", "failed", "overdue") if state[k]]
        if state["awaiting_receipt"]:
            parts.append(f"{state['awaiting_receipt']} awaiting a receipt")
        lines.append(f"Outbox:   {name}: {', '.join(parts)}")
        if state["last_error"]:
            stuck = True
            lines.append(f"    last error: {state['last_error'][:300]}")
            remedy = _remedy(state["last_error"].split(":", 1)[0])
            if remedy:
                lines.append(f"    -> {remedy}")
    if stuck:
        lines.append(
            "See `edi-gateway outbox list --state pending` (and `--state failed`); after the "
            "fix, `edi-gateway outbox retry --now` delivers at once."
        )
    return lines


def _remedy(code: str | None) -> str | None:
    try:
        return REMEDY[ErrorCode(code)] if code else None
    except ValueError:
        return None


def redrive_text(data: Json) -> str:
    """Human text for a redrive."""
    if "would_redrive" in data:
        ids = data["would_redrive"]
        return f"would redrive {len(ids)} messages: {', '.join(map(str, ids)) or '-'}"
    rows = data["messages"]
    out = [f"redrove {len(rows)} messages"]
    out += [f"  #{r['id']} {r['filename']}: {r['state']} {r['error_code'] or ''}" for r in rows]
    return "\n".join(out)


MESSAGE_COLUMNS = [
    "id",
    "received_at",
    "state",
    "error_code",
    "document_type",
    "number",
    "partner",
    "filename",
]


def messages_table(rows: list[Json]) -> str:
    """``messages list`` as text."""
    return table(rows, MESSAGE_COLUMNS)


def orders_table(rows: list[Json]) -> str:
    """``orders list`` as text."""
    shown = [{**row, "attention": "ATTENTION" if row.get("attention") else ""} for row in rows]
    columns = ["id", "ref", "status", "attention", "type", "issue_date", "seller", "total_amount"]
    return table(shown, [*columns, "currency"])


def outbox_table(rows: list[Json]) -> str:
    """``outbox list`` as text."""
    columns = ["id", "state", "partner", "type", "number", "filename", "attempts", "last_error"]
    return table(rows, columns)


def outbox_text(data: Json) -> str:
    """``outbox show`` as text."""
    lines = [
        f"Outbox #{data['id']}  {data['state']}  {data['type']} {data['number']} "
        f"for {data['partner']} via {data['connector']} as {data['filename']}",
        f"  attempts {data['attempts']}, next {data['next_attempt_at']}",
    ]
    if data["last_error"]:
        lines.append(f"  last error: {data['last_error']}")
    if data["delivered_to"]:
        lines.append(f"  delivered to {data['delivered_to']}")
    return "\n".join(lines + findings_text(data["findings"]))


def partner_rows(settings: Settings, only: str | None = None) -> list[Json]:
    """The partners of gateway.yaml as listing rows (``partners list``)."""
    return [
        {
            "id": p.id,
            "name": p.name,
            "role": p.role,
            "endpoint": p.endpoint.key(),
            "identifiers": [i.key() for i in p.identifiers],
            "outbound": p.outbound,
            "inbound": [c.name for c in settings.connectors if c.partner == p.id],
            "validation": p.validation,
            "auto_response": p.auto_response,
        }
        for p in settings.partners
        if only is None or p.id == only
    ]


def partners_table(rows: list[Json]) -> str:
    """``partners list`` as text."""
    shown = [r | {"inbound": ", ".join(r["inbound"]) or None} for r in rows]
    columns = ["id", "name", "role", "endpoint", "outbound", "inbound", "validation"]
    return table(shown, columns)


def config_check_text(data: Json) -> str:
    """``config check`` as text: one line per problem, ``FILE:LINE: text``."""
    if data["ok"]:
        return f"{data['config']}: OK"
    lines = [
        f"{data['config']}:{p['line']}: {p['message']}"
        if p["line"]
        else f"{data['config']}: {p['message']}"
        for p in data["problems"]
    ]
    count = len(lines)
    return "\n".join([*lines, f"{count} problem{'s' if count != 1 else ''}"])


def table(rows: list[Json], columns: list[str]) -> str:
    """A plain text table of ``columns`` of ``rows``."""
    if not rows:
        return "(none)"
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    head = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([head, *body])


def _history_text(history: list[Json]) -> list[str]:
    return [f"  {h['at']}  {h['actor']:<14} {h['event']:<20} {h['detail'] or ''}" for h in history]


def message_text(d: Json) -> str:
    """``messages show`` as text."""
    lines = [
        f"Message #{d['id']}  {d['state']}  {d['filename']}",
        f"  received {d['received_at']} via {d['source']} ({d['size']} bytes)",
        f"  sha256 {d['sha256']}",
    ]
    if d["document_type"]:
        lines.append(
            f"  {d['document_type']} {d['number']} from {d['sender_key']}"
            f" (partner {d['partner'] or 'unknown'})"
        )
    if d["error_code"]:
        where = f" at line {d['error_line']}" if d["error_line"] else ""
        lines.append(f"  error {d['error_code']}{where}: {d['error_detail']}")
        remedy = _remedy(d["error_code"])
        if remedy:
            lines.append(f"  -> {remedy}")
    if d["order_id"]:
        lines.append(f"  order {d['order_id']}")
    lines += findings_text(d["findings"])
    lines.append("History:")
    return "\n".join(lines + _history_text(d["history"]))


SHOWN_FINDINGS = 100


def findings_text(findings: list[Json]) -> list[str]:
    """``Findings:`` and one line per finding (the first 100, then how many more)."""
    if not findings:
        return []
    fatal = sum(1 for f in findings if f["flag"] == "fatal")
    lines = [f"Findings: {len(findings)} ({fatal} fatal)"]
    for f in findings[:SHOWN_FINDINGS]:
        where = " ".join(
            w for w in (f"line {f['line']}" if f["line"] else "", f["location"] or "") if w
        )
        lines.append(f"  {f['flag']:<7} {f['rule_id']:<20} {where}: {f['text']}")
    if len(findings) > SHOWN_FINDINGS:
        lines.append(f"  ... and {len(findings) - SHOWN_FINDINGS} more (--json lists them all)")
    return lines


def order_text(d: Json) -> str:
    """``orders show`` as text."""
    flag = "  ATTENTION: discrepancies to check" if d.get("attention") else ""
    lines = [
        f"Order {d['ref']} (#{d['id']})  {d['status']}{flag}",
        f"  buyer  {d['buyer']} {d['buyer_name'] or ''}",
        f"  seller {d['seller']} {d['seller_name'] or ''}",
        f"  issued {d['issue_date']}  total {d['total_amount']} {d['currency'] or ''}",
        *order_data_text(d),
        "Lines:",
        table(
            d["lines"],
            [
                "line_id",
                "item",
                "unit",
                "ordered",
                "confirmed",
                "despatched",
                "received",
                "invoiced",
                "credited",
                "backordered",
                "status_code",
                "deleted",
            ],
        ),
        "Documents:",
        table(
            d["documents"],
            ["id", "type", "number", "code", "state", "issue_date", "message_id"],
        ),
    ]
    if d.get("shipments"):
        lines += ["Shipments:"] + [
            f"  {s['despatch_advice']}: {s['carrier'] or '-'}  tracking {s['tracking_id'] or '-'}"
            + (f"  {s['tracking_url']}" if s["tracking_url"] else "")
            for s in d["shipments"]
        ]
    if d.get("discrepancies"):
        lines += ["Discrepancies:"] + [f"  {x['detail']}" for x in d["discrepancies"]]
        if d.get("attention"):
            lines.append(
                f"  settle them, then `edi-gateway orders clear-attention {d['id']} --reason TEXT`"
            )
    waiting = d.get("pending_cancellation")
    if waiting:
        lines += [
            f"Pending cancellation {waiting['number']} (since {waiting['requested_at']})"
            f", waiting for {waiting['waiting_for']}: answer with `edi-gateway orders cancel "
            f"{d['id']} --accepted|--refused [--reason TEXT]`"
        ]
    return "\n".join([*lines, "History:", *_history_text(d["history"])])


def order_data_text(d: Json) -> list[str]:
    """The order data lines of ``orders show``: type, reference, delivery, contacts, notes,
    attachments (only what the order says)."""
    lines = [f"  type   {d['order_type_name']}"]
    if d["buyer_reference"]:
        lines.append(f"  buyer reference {d['buyer_reference']}")
    delivery = d["delivery"]
    if delivery:
        shown = [
            ("deliver to", delivery["place"]),
            ("address", delivery["address"]),
            ("period", delivery["period"]),
            ("party", delivery["party_name"]),
            ("priority", "express (1)" if delivery["express"] else delivery["priority"]),
        ]
        lines += ["Delivery:", *(f"  {k:<10} {v}" for k, v in shown if v)]
    lines += ["Contacts:"] if d["contacts"] else []
    for c in d["contacts"]:
        said = ", ".join(v for v in (c["name"], c["telephone"], c["email"]) if v)
        lines.append(f"  {c['role']:<10} {said}")
    lines += ["Notes:", *(f"  {n}" for n in d["notes"])] if d["notes"] else []
    if d["attachments"]:
        rows = [  # the sender's file name on one line (it may hold line breaks)
            a
            | {"file": " ".join((a["filename"] or a["uri"] or "").split()) or None}
            | {"kept": "yes" if a["kept"] else "no"}
            for a in d["attachments"]
        ]
        columns = ["id", "ref", "document_type", "file", "mime_code", "size", "kept", "problem"]
        lines += [
            "Attachments (download: edi-gateway documents attachment ID --output FILE):",
            table(rows, columns),
        ]
    return lines


def validate_files(files: Sequence[Path], max_size: int) -> list[Json]:
    """Validate each file against the UBL 2.1 XSD of its root type; no store involved."""
    from edi_gateway.ubl.validate import validate_document

    results: list[Json] = []
    for path in files:
        result: Json = {
            "file": str(path),
            "valid": True,
            "document_type": None,
            "error_code": None,
            "error_line": None,
            "error": None,
        }
        try:
            validated = validate_document(path.read_bytes(), max_size=max_size)
            result["document_type"] = validated.root_name
        except GatewayError as exc:
            result.update(
                valid=False, error_code=exc.code.value, error_line=exc.line, error=exc.message
            )
        except OSError as exc:
            result.update(valid=False, error_code="NOT_FOUND", error=str(exc))
        results.append(result)
    return results


def validate_text(results: list[Json]) -> str:
    """Human text for validate."""
    out = []
    for r in results:
        if r["valid"]:
            out.append(f"OK    {r['file']} ({r['document_type']})")
        else:
            where = f" line {r['error_line']}" if r["error_line"] else ""
            out.append(f"FAIL  {r['file']}: {r['error_code']}{where}: {r['error']}")
    return "\n".join(out)
