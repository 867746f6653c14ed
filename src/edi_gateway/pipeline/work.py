"""One message's way through a processing batch, and writing its outcome back in bulk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, delete
from sqlalchemy.exc import DataError, IntegrityError

from edi_gateway.domain.documents import Document, Party
from edi_gateway.domain.findings import Finding, bounded
from edi_gateway.errors import ErrorCode, GatewayError, first_line
from edi_gateway.pipeline.history import SYSTEM, now
from edi_gateway.store.bulk import insert_many, update_many
from edi_gateway.store.schema import findings, history, messages

PROCESSED, ORPHAN, DUPLICATE, FAILED = "processed", "orphan", "duplicate", "failed"


@dataclass(slots=True)
class Work:
    """A message being processed: what it is, what was found, where it ended."""

    id: int
    sha256: str
    source: str
    attempts: int
    payload: bytes | None = None
    filename: str = ""
    document: Document | None = None
    more: list[Document] = field(default_factory=list)
    """Further documents of the same message (a supplier's CSV reply may hold several)."""
    sender_key: str | None = None
    partner: str | None = None
    counterpart: str | None = None
    invoicee: Party | None = None
    """An order's: the buyer partner's ``invoicee:`` when the order names none of its own."""
    state: str | None = None
    error: GatewayError | None = None
    duplicate_of: int | None = None
    purged_original: int | None = None
    """The id the purged message this one is byte-identical to had (duplicate_of is None)."""
    order_id: int | None = None
    findings: list[Finding] = field(default_factory=list)
    """What the XSD or the partner's rule sets found (warnings too), kept with the message."""
    measured: bool = False
    """The read-ahead worker found that its document's values fit the store's columns
    (``pipeline/limits.py``): processing need not measure them again."""

    @property
    def pending(self) -> bool:
        """Still on its way: no terminal state yet."""
        return self.state is None

    def fail(self, error: GatewayError) -> None:
        """End as ``failed`` with this error (and the findings it carries, if any)."""
        self.state, self.error = FAILED, error
        carried = getattr(error, "findings", None)
        if carried:
            self.findings = list(carried)

    def reset(self) -> None:
        """Back to pending, as before anything was written (its savepoint was rolled back)."""
        self.state, self.error, self.order_id = None, None, None

    def end(self, state: str, order_id: int | None = None) -> None:
        """End in ``state`` (attached to ``order_id`` when given)."""
        self.state = state
        if order_id is not None:
            self.order_id = order_id


def unexpected(exc: Exception) -> GatewayError:
    """The error a message fails with when storing it or reacting to it raised ``exc``."""
    if isinstance(exc, GatewayError):
        return exc
    undone = "nothing of this message was kept"
    if isinstance(exc, IntegrityError):
        return GatewayError(ErrorCode.STORE_REFUSED, f"{first_line(exc)}; {undone}")
    if isinstance(exc, DataError):
        return GatewayError(ErrorCode.VALUE_TOO_LONG, f"{first_line(exc)}; {undone}")
    return GatewayError(
        ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {first_line(exc)}; {undone}"
    )


def write_outcomes(conn: Connection, works: list[Work]) -> None:
    """Store every finished message's state, error and identity, plus its history event."""
    done = [w for w in works if w.state is not None]
    if not done:
        return
    stamp = now()
    # SQLite (foreign_keys on) rewrites every index entry of a row whose UPDATE sets a column
    # that references its own table (messages.duplicate_of), the sha256 and (source,
    # source_ref) entries too, whose keys lie at random places: in a large store that is a
    # page of each index per message. A message never ended before (attempts 0) still has
    # the NULL intake wrote, so unless it is a duplicate the column is left out.
    rows = [_row(w, stamp) for w in done]
    for row, work in zip(rows, done, strict=True):
        if work.duplicate_of is None and not work.attempts:
            del row["duplicate_of"]
    update_many(conn, messages, [row for row in rows if "duplicate_of" not in row])
    update_many(conn, messages, [row for row in rows if "duplicate_of" in row])
    insert_many(conn, history, [_event(w, stamp) for w in done])
    write_findings(conn, [w for w in done if w.findings or w.attempts])


def write_findings(conn: Connection, works: list[Work]) -> None:
    """Replace what earlier checks of these messages found (a redrive) by this check's."""
    earlier = [w.id for w in works if w.attempts]
    replace_findings(conn, "message_id", {w.id: w.findings for w in works}, earlier)


def replace_findings(
    conn: Connection,
    owner: Literal["message_id", "outbox_id"],
    found: Mapping[int, Sequence[Finding]],
    earlier: Sequence[int],
) -> None:
    """Store each owner's (message's or outbox row's) findings, at most ``MAX_FINDINGS`` and a
    count of the rest; the findings of the ``earlier`` owners' last check go first."""
    column = findings.c[owner]
    for start in range(0, len(earlier), 500):
        conn.execute(delete(findings).where(column.in_(earlier[start : start + 500])))
    rows = [
        _finding_row(f, seq) | {owner: owner_id}
        for owner_id, each in found.items()
        for seq, f in enumerate(bounded(list(each)))
    ]
    other = "outbox_id" if owner == "message_id" else "message_id"
    insert_many(conn, findings, rows, {other: None})


def _finding_row(finding: Finding, seq: int) -> dict[str, Any]:
    """A ``findings`` row (without its message or outbox id)."""
    return {
        "seq": seq,
        "rule_set": finding.rule_set[:64],
        "rule_id": finding.rule_id[:64],
        "flag": finding.flag[:16],
        "location": finding.location,
        "line": finding.line,
        "text": finding.text,
    }


def _duplicate_detail(work: Work) -> str:
    if work.duplicate_of is None and work.purged_original is not None:
        return f"byte-identical to message {work.purged_original} (purged since)"
    return f"byte-identical to message {work.duplicate_of}"


def _row(work: Work, stamp: Any) -> dict[str, Any]:
    doc = work.document
    error = work.error
    code: str | None
    detail: str | None
    if work.state == DUPLICATE:
        code, detail = ErrorCode.DUPLICATE.value, _duplicate_detail(work)
    else:
        code = error.code.value if error else None
        detail = error.message[:4000] if error else None
    return {
        "id": work.id,
        "state": work.state,
        "error_code": code,
        "error_detail": detail,
        "error_line": error.line if error else None,
        "doc_kind": doc.kind.value if doc else None,
        "doc_id": doc.document_id if doc else None,
        "sender_key": work.sender_key,
        "partner": work.partner,
        "duplicate_of": work.duplicate_of,
        "order_id": work.order_id,
        "attempts": work.attempts + 1,
        "updated_at": stamp,
        "cut_off": 0,  # it ended: its processing was not cut off (pipeline/process.py)
    }


def _event(work: Work, stamp: Any) -> dict[str, Any]:
    doc, error = work.document, work.error
    if error is not None:
        where = f" at line {error.line}" if error.line else ""
        detail: str | None = f"{error.code.value}{where}: {error.message[:500]}"
    elif work.state == DUPLICATE:
        detail = _duplicate_detail(work)
    else:
        detail = f"{doc.kind.value} {doc.document_id}" if doc else None
    return {
        "at": stamp,
        "order_id": work.order_id,
        "message_id": work.id,
        "event": f"message.{work.state}",
        "detail": detail,
        "actor": SYSTEM,
    }
