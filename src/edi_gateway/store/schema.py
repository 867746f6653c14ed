"""The store's tables as SQLAlchemy Core ``Table`` objects: the hot path needs nothing more.

Alembic migrations in ``migrations/`` create exactly these (a test compares them). The ORM
classes in ``tables.py`` map onto the same tables for the read side and correlation; keeping
the ORM out of this module keeps ``sqlalchemy.orm`` out of the start-up of ``ingest``/``run``.

messages        every payload received, then its processing outcome
message_payloads  the raw bytes of each message, committed with it, before anything else
documents       one business document per processed message (and, later, per generated one)
document_lines  the quantities each document states per order line (the ledger)
orders          one row per buyer party + order ID, with the derived status
order_keys      every party key an order can be found by (buyer and seller identifiers)
order_lines     per line: ordered, confirmed, despatched, received, invoiced, credited
discrepancies   document lines that exceed what was ordered, confirmed, despatched or invoiced
shipments       carrier, tracking ID and URL of each despatch advice
history         every event: when, what, by whom
outbox          every outbound document, as a row before it is bytes anywhere, until delivered
outbox_payloads   the bytes of each outbox row, written once with it
forwards        one row per order forwarded to a supplier: held, waiting, queued (in a bundle,
                as outbox rows), delivered or failed
alert_events    what operators are told about (new orders, failures, connectors down, ...)
alert_cursors   per alert channel and cause: how far it was told, and when (the throttle)
order_delivery  where and when an order is to be delivered (0009), one row per order that says
order_contacts  the buyer's, seller's and delivery party's contacts of an order (0009)
order_attachments  an order's attached documents: bytes (bounded) or URI, untrusted filename
leases          who holds what until when: a running gateway (``instance:<id>``) and each polled
                inbound connector (``connector:<name>``), with a fencing token (store/leases.py)
sscc_counters   per GS1 extension digit + company prefix, the next SSCC serial reference to
                hand out (store/sscc.py): one row every gateway on the store counts on
users           who may sign in to the web console: name, role, scrypt password hash
console_sessions  signed-in console sessions: the SHA-256 of the cookie's token, the CSRF token,
                when it was last used and when it ends (accounts.py)
login_failures  failed console sign-ins per user name and address, for the rate limit
purge_runs      every purge: when, who, up to when, counts, archive file and its sha256 (0022)
purged_messages / purged_documents  the dedup keys purged messages and documents leave behind
bulk_issued     what a bulk respond / despatch / invoice issued, by idempotency key (ADR 0038)
"""

from __future__ import annotations

import re

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    false,
    func,
    literal_column,
    text,
)
from sqlalchemy.engine import Connection

from edi_gateway.store import widths
from edi_gateway.store.types import ExactDecimal, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


UNBILLED = {"sqlite": "unbilled = 1", "postgresql": "unbilled"}
"""The condition of the partial index ``ix_order_lines_unbilled`` per backend, as each renders
``order_lines.unbilled`` in a WHERE (SQLite keeps a boolean as 1 or 0), so the query that
wants it (``queries.needs_condition``) states the same. The flag is the ledger's exact
``despatched > invoiced`` (``pipeline/ledger.py``, migration 0029): quantities are exact text,
and a comparison of ``CAST(... AS NUMERIC)`` was a float's on SQLite (40 despatched and
40.00000000000000000000000000001 invoiced were equal there, not on PostgreSQL)."""


SHA256_KEY_CHARS = 8


def sha256_key(sha256: ColumnElement[str]) -> ColumnElement[str]:
    """The duplicate check's index key: the first 8 hex digits of a payload's sha256.

    Its entries are 17 bytes where the whole digest's were 73, so the random page each new
    message's entry lands on is one of a quarter as many (docs/adr/0036, 0028). It is not
    unique: the check compares the whole sha256 on the rows it finds. The bounds are literal
    SQL, not parameters: SQLite uses an expression index only for the same expression."""
    return func.substr(sha256, literal_column("1"), literal_column(str(SHA256_KEY_CHARS)))


_ERROR_CODE = re.compile(r"([A-Z][A-Z0-9_]*):")


def error_code_of(text: str | None) -> str | None:
    """The code an error text starts with (``CODE: what``, ``coded_text``), or None."""
    found = _ERROR_CODE.match(text) if text else None
    return found[1] if found else None


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True)


orders = Table(
    "orders",
    metadata,
    _id(),
    Column("buyer_key", String(widths.PARTY_KEY), nullable=False),
    Column("order_number", String(widths.DOCUMENT_ID), nullable=False, index=True),
    Column("buyer_name", String(widths.NAME)),
    Column("seller_key", String(widths.PARTY_KEY), index=True),  # orders list --partner (0025)
    Column("seller_name", String(widths.NAME)),
    Column("buyer_partner", String(100), index=True),
    Column("seller_partner", String(100), index=True),
    Column("issue_date", Date),
    Column("currency", String(widths.CURRENCY)),
    Column("total_amount", ExactDecimal()),
    Column("status", String(30), nullable=False, index=True),
    Column("response_code", String(4), index=True),  # --needs response / despatch (0025)
    Column("cancelled", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, index=True),  # --since, today (0025)
    Column("updated_at", UTCDateTime(), nullable=False),
    # Order data (0009, docs/adr/0029): type code as sent, buyer reference, notes (JSON list)
    Column("order_type", Text, index=True),
    Column("buyer_reference", Text),
    Column("notes", Text),
    # SLA timers (0018, docs/adr/0034): when the response and the despatch are due, and when
    # each was found overdue (history has the event; the column makes it fire once)
    Column("response_due_at", UTCDateTime(), index=True),
    Column("despatch_due_at", UTCDateTime(), index=True),
    Column("response_overdue_at", UTCDateTime()),
    Column("despatch_overdue_at", UTCDateTime()),
    # a ledger discrepancy no operator has cleared yet (0010, docs/adr/0024)
    Column("attention", Boolean, nullable=False, server_default=false(), index=True),
    UniqueConstraint("buyer_key", "order_number"),
)

messages = Table(
    "messages",
    metadata,
    _id(),
    Column("received_at", UTCDateTime(), nullable=False, index=True),  # --since, KPIs (0025)
    Column("source", String(200), nullable=False),
    Column("source_ref", String(500), nullable=False),
    Column("filename", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),  # indexed by its key below (0028)
    Column("size", Integer, nullable=False),
    Column("state", String(20), nullable=False, index=True),
    Column("error_code", String(40), index=True),  # messages list --code (0025)
    Column("error_detail", Text),
    Column("error_line", Integer),
    Column("doc_kind", String(40)),
    Column("doc_id", String(200)),
    Column("sender_key", String(widths.PARTY_KEY)),
    Column("partner", String(100), index=True),  # messages list --partner (0025)
    Column("duplicate_of", ForeignKey("messages.id")),
    Column("order_id", ForeignKey("orders.id"), index=True),
    Column("attempts", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("cut_off", Integer, nullable=False, server_default="0"),  # (0026)
    UniqueConstraint("source", "source_ref"),
)
Index("ix_messages_sha256_key", sha256_key(messages.c.sha256))

message_payloads = Table(
    "message_payloads",
    metadata,
    Column("message_id", ForeignKey("messages.id"), primary_key=True, autoincrement=False),
    Column("payload", LargeBinary, nullable=False),
)
"""The raw bytes of each message, apart from its row: a message's state changes several times,
and SQLite rewrites a whole record, blob included, on every UPDATE (ADR 0010)."""

order_keys = Table(
    "order_keys",
    metadata,
    _id(),
    Column("order_id", ForeignKey("orders.id"), nullable=False),  # the unique key serves lookups
    Column("role", String(10), nullable=False),
    Column("party_key", String(widths.PARTY_KEY), nullable=False, index=True),
    UniqueConstraint("order_id", "role", "party_key"),
)

order_lines = Table(
    "order_lines",
    metadata,
    _id(),
    Column("order_id", ForeignKey("orders.id"), nullable=False),  # the unique key serves lookups
    Column("position", Integer, nullable=False),
    Column("line_id", String(widths.LINE_ID), nullable=False),
    Column("item_name", String(widths.ITEM_NAME)),
    Column("seller_item_id", String(widths.ITEM_ID)),
    Column("buyer_item_id", String(widths.ITEM_ID)),
    Column("standard_item_id", String(widths.ITEM_ID)),
    Column("unit", String(widths.UNIT)),
    Column("price", ExactDecimal()),
    Column("delivery_date", Date, index=True),  # the KPIs' on-time despatch (0025)
    Column("status_code", String(4)),
    Column("qty_ordered", ExactDecimal(), nullable=False),
    Column("qty_confirmed", ExactDecimal()),
    Column("qty_despatched", ExactDecimal(), nullable=False),
    Column("qty_received", ExactDecimal(), nullable=False),
    Column("qty_invoiced", ExactDecimal(), nullable=False),
    Column("qty_credited", ExactDecimal(), nullable=False),
    Column("delivery_place", Text),  # the line's own delivery location (0009)
    # despatched > invoiced, exactly: set by the ledger's recompute with the quantities (0029)
    Column("unbilled", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("order_id", "line_id"),
    # the lines despatched beyond what was invoiced (orders list --needs invoice): a partial
    # index, so the few such lines are found without reading every line (0025, 0029); its
    # PostgreSQL condition is added just before it is created there (_postgresql_where)
    Index("ix_order_lines_unbilled", "order_id", sqlite_where=text(UNBILLED["sqlite"])),
)


@event.listens_for(order_lines, "before_create")
def _postgresql_where(_table: Table, connection: Connection, **_: object) -> None:
    """Give ``ix_order_lines_unbilled`` its ``postgresql_where`` when the tables are created
    on PostgreSQL. Declared in the ``Index`` itself, the keyword made SQLAlchemy validate it
    by importing the whole PostgreSQL dialect (with asyncpg, ~25 ms) in every process that
    imports this module, SQLite stores included. Alembic's migration 0025 states both."""
    if connection.dialect.name == "postgresql":
        index = next(i for i in order_lines.indexes if i.name == "ix_order_lines_unbilled")
        index.dialect_options["postgresql"]["where"] = text(UNBILLED["postgresql"])


documents = Table(
    "documents",
    metadata,
    _id(),
    Column("message_id", ForeignKey("messages.id"), index=True),  # a CSV reply: several
    Column("direction", String(3), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("doc_number", String(widths.DOCUMENT_ID), nullable=False),
    Column("sender_key", String(widths.PARTY_KEY)),
    Column("order_id", ForeignKey("orders.id"), index=True),
    Column("order_ref", String(widths.DOCUMENT_ID), index=True),
    # a bill's preceding invoice (BT-25), which its orphan also waits for (0030, ADR 0005)
    Column("preceding_ref", String(widths.DOCUMENT_ID), index=True),
    Column("issue_date", Date),
    Column("code", String(10)),
    Column("state", String(20), nullable=False, index=True),
    Column("amount", ExactDecimal()),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "sender_key", "kind", "doc_number"),
)

document_lines = Table(
    "document_lines",
    metadata,
    _id(),
    Column("document_id", ForeignKey("documents.id"), nullable=False, index=True),
    Column("order_line_id", ForeignKey("order_lines.id"), index=True),
    Column("line_ref", String(widths.LINE_ID), nullable=False),
    Column("quantity", ExactDecimal()),
    Column("unit", String(widths.UNIT)),
    Column("status_code", String(4)),
    Column("price", ExactDecimal()),
    Column("amount", ExactDecimal()),
    Column("backorder", ExactDecimal()),  # a despatch line's outstanding quantity (0010)
)

history = Table(
    "history",
    metadata,
    _id(),
    Column("at", UTCDateTime(), nullable=False),
    Column("order_id", ForeignKey("orders.id"), index=True),
    Column("message_id", ForeignKey("messages.id"), index=True),
    Column("event", String(60), nullable=False),
    Column("detail", Text),
    Column("actor", String(100), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    _id(),
    Column("created_at", UTCDateTime(), nullable=False, index=True),  # outbox list --since (0025)
    Column("document_id", ForeignKey("documents.id"), index=True),
    Column("order_id", ForeignKey("orders.id"), index=True),
    Column("partner", String(100), nullable=False, index=True),
    Column("connector", String(100), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("doc_number", String(200), nullable=False, index=True),  # a bundle's files (0025)
    Column("filename", String(255), nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("state", String(20), nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", Text),
    # the code ``last_error`` starts with, kept beside it (tables.py): outbox list --code (0025)
    Column("error_code", String(40), index=True),
    Column("delivered_to", String(1000)),
    Column("sent_at", UTCDateTime()),
    Column("receipt", Text),  # JSON: what the partner's later receipt must say (0006)
    UniqueConstraint("connector", "filename"),
)

outbox_payloads = Table(
    "outbox_payloads",
    metadata,
    Column("outbox_id", ForeignKey("outbox.id"), primary_key=True, autoincrement=False),
    Column("payload", LargeBinary, nullable=False),
)
"""The bytes of each outbox row, apart from it (0024): a row's state changes with every
attempt, and SQLite rewrites a whole record, blob included, on every UPDATE (ADR 0010); a
35 MB bundle was written out again each time it was marked sent or retried."""

findings = Table(
    "findings",
    metadata,
    _id(),
    Column("message_id", ForeignKey("messages.id"), index=True),
    Column("outbox_id", ForeignKey("outbox.id"), index=True),
    Column("seq", Integer, nullable=False),  # order within the message or outbox row
    Column("rule_set", String(64), nullable=False),  # XSD, PEPPOLBIS-T01, CEN-EN16931-UBL...
    Column("rule_id", String(64), nullable=False),
    Column("flag", String(16), nullable=False),  # fatal, warning, information
    Column("location", Text),  # an XPath with cbc:/cac: prefixes
    Column("line", Integer),
    Column("text", Text, nullable=False),
)
"""What the XSD or an official rule set found in a received message or an outgoing document
(0008); the latest check's findings only."""

alert_events = Table(
    "alert_events",
    metadata,
    _id(),
    Column("at", UTCDateTime(), nullable=False),
    Column("cause", String(40), nullable=False),
    Column("partner", String(100)),
    Column("subject", String(300)),  # what it is about (a connector, a certificate file)
    Column("text", Text, nullable=False),
    Index(None, "cause", "id"),
)
"""Something operators are told about (alerts/), kept until every channel has passed it
(0017)."""

alert_cursors = Table(
    "alert_cursors",
    metadata,
    Column("channel", String(100), primary_key=True),
    Column("cause", String(40), primary_key=True),
    Column("last_event_id", Integer, nullable=False),  # the newest event this channel was told
    Column("last_sent_at", UTCDateTime()),
    Column("last_attempt_at", UTCDateTime()),
    Column("last_error", Text),
)
"""Per alert channel (an smtp connector or a webhook) and cause: how far it was told, and when
(the throttle) (0017)."""
discrepancies = Table(
    "discrepancies",
    metadata,
    _id(),
    Column("order_id", ForeignKey("orders.id"), nullable=False, index=True),
    Column("document_id", ForeignKey("documents.id"), nullable=False),
    Column("order_line_id", ForeignKey("order_lines.id"), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("bound", ExactDecimal(), nullable=False),
    Column("detail", Text, nullable=False),
    Column("found_at", UTCDateTime(), nullable=False),
    UniqueConstraint("document_id", "order_line_id", "kind"),
)
"""A document line that took an order line beyond what the ledger allows (0010, ADR 0024)."""

shipments = Table(
    "shipments",
    metadata,
    _id(),
    Column("document_id", ForeignKey("documents.id"), nullable=False),
    Column("order_id", ForeignKey("orders.id"), nullable=False, index=True),
    Column("carrier", String(300)),
    Column("tracking_id", String(200)),
    Column("tracking_url", String(1000)),
    UniqueConstraint("document_id"),
)
"""The track & trace of each despatch advice attached to an order (0010)."""

forwards = Table(
    "forwards",
    metadata,
    _id(),
    Column("order_id", ForeignKey("orders.id"), nullable=False),  # the unique key serves lookups
    Column("partner", String(100), nullable=False),
    Column("state", String(20), nullable=False),
    Column("waiting_since", UTCDateTime()),
    Column("seq", Integer),
    Column("bundle", String(200)),
    Column("error", Text),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("order_id", "partner"),
    Index(None, "partner", "state"),
    Index(None, "state", "bundle"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(100), nullable=False),
    Column("token", Integer, nullable=False),  # +1 each time the lease changes hands
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("until", UTCDateTime(), nullable=False),
    Column("info", String(300)),  # what the holder says of itself: pid, host, since
)

order_delivery = Table(
    "order_delivery",
    metadata,
    Column("order_id", ForeignKey("orders.id"), primary_key=True, autoincrement=False),
    Column("location_id", Text),
    Column("location_scheme", Text),
    Column("location_name", Text),
    Column("street", Text),
    Column("additional_street", Text),
    Column("city", Text),
    Column("postal_zone", Text),
    Column("subentity", Text),
    Column("address_line", Text),
    Column("country", Text),
    Column("start_date", Date),
    Column("start_time", Text),
    Column("end_date", Date),
    Column("end_time", Text),
    Column("party_name", Text),
    Column("party_id", Text),
    Column("priority", Text),  # UNCL4219 ShippingPriorityLevelCode; 1 = express
)
"""An order's header ``cac:Delivery`` (0009, docs/adr/0029)."""

order_contacts = Table(
    "order_contacts",
    metadata,
    _id(),
    Column("order_id", ForeignKey("orders.id"), nullable=False, index=True),
    Column("role", String(20), nullable=False),  # buyer, seller, delivery
    Column("name", Text),
    Column("telephone", Text),
    Column("email", Text),
)
"""The contacts an order names (0009)."""

order_attachments = Table(
    "order_attachments",
    metadata,
    _id(),
    Column("order_id", ForeignKey("orders.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("ref", Text, nullable=False),  # AdditionalDocumentReference/cbc:ID
    Column("document_type", Text),
    Column("description", Text),
    Column("filename", Text),  # as the sender named it: untrusted, never a path
    Column("mime_code", Text),
    Column("uri", Text),
    Column("size", Integer),
    Column("sha256", String(64)),
    Column("problem", Text),  # ATTACHMENT_INVALID / ATTACHMENT_TOO_LARGE: why no bytes
    Column("content", LargeBinary),
)
"""An order's ``cac:AdditionalDocumentReference`` (0009): embedded bytes when kept."""
sscc_counters = Table(
    "sscc_counters",
    metadata,
    Column("prefix", String(13), primary_key=True),  # extension digit + GS1 company prefix
    Column("next_serial", BigInteger, nullable=False),
)
"""The next serial reference per extension digit + company prefix (0011): allocation adds to
it in the issuing transaction, so no two despatches get the same SSCC (store/sscc.py)."""

users = Table(
    "users",
    metadata,
    _id(),
    Column("name", String(100), nullable=False, unique=True),
    Column("role", String(20), nullable=False),  # viewer, operator, admin
    Column("password_hash", String(300), nullable=False),  # scrypt$n$r$p$salt$hash (base64)
    Column("created_at", UTCDateTime(), nullable=False),
    Column("password_set_at", UTCDateTime(), nullable=False),
)
"""Who may sign in to the web console (0019, docs/adr/0031)."""

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # SHA-256 hex of the cookie's token
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("address", String(100)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),  # absolute end, whatever the use
)
"""Signed-in console sessions; the cookie's token itself is never stored (0019)."""

login_failures = Table(
    "login_failures",
    metadata,
    _id(),
    Column("username", String(100), nullable=False),
    Column("address", String(100), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_login_failures_who", "username", "address", "at"),
)
"""Failed console sign-ins, counted per user name and address for the rate limit (0019)."""

purge_runs = Table(
    "purge_runs",
    metadata,
    _id(),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("actor", String(100), nullable=False),  # an operator's name, or daemon <instance>
    Column("purged_before", UTCDateTime(), nullable=False),  # finished before this went
    Column("state", String(20), nullable=False),  # running, done, failed
    Column("counts", Text, nullable=False),  # JSON: rows removed per table
    Column("oldest", UTCDateTime()),  # the earliest and latest last activity purged
    Column("newest", UTCDateTime()),
    Column("archive", Text),  # the archive file; None: purged without one (--no-archive)
    Column("archive_sha256", String(64)),
    Column("restored_at", UTCDateTime()),
    Column("error", Text),
)
"""Every purge (0022, docs/adr/0037): when, by whom, up to when, how much, into which file."""

purged_messages = Table(
    "purged_messages",
    metadata,
    _id(),
    Column("message_id", Integer, nullable=False),  # the id it had (ids may be reused)
    Column("sha256", String(64), nullable=False, index=True),
    Column("state", String(20), nullable=False),
    Column("run_id", ForeignKey("purge_runs.id"), nullable=False, index=True),
)
"""What a purged message leaves behind so its bytes, received again, are a duplicate (0022)."""

purged_documents = Table(
    "purged_documents",
    metadata,
    _id(),
    Column("message_id", Integer),  # the id its message had
    Column("direction", String(3), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("sender_key", String(widths.PARTY_KEY)),
    Column("doc_number", String(200), nullable=False, index=True),
    Column("run_id", ForeignKey("purge_runs.id"), nullable=False, index=True),
)
"""What a purged document leaves behind so its number, received again from the same sender
with other bytes, is an ID conflict, never a new order (0022)."""
bulk_issued = Table(
    "bulk_issued",
    metadata,
    _id(),
    Column("key", String(64), nullable=False, unique=True),  # SHA-256 hex (outbound/bulk.py)
    Column("command", String(20), nullable=False),  # respond, despatch, invoice
    Column("order_id", ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True),
    Column(
        "document_id", ForeignKey("documents.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("created_at", UTCDateTime(), nullable=False),
)
"""One row per document a bulk command issued, committed with it: the same command again
issues nothing twice (0023, docs/adr/0038)."""
