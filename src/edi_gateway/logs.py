"""Logging set-up: text for a terminal, or one JSON object per line for a log shipper.

A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus the
fields the call passed with ``extra=`` (``message_id``, ``connector``, ``partner``,
``order_id``, ``state``, ``code``, ``file_name``, ``outbox_id`` ...) and those of the enclosing
:func:`log_fields` block (the daemon names the connector it is polling that way), and
``exception`` with the traceback when there is one.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# Libraries that log a failure themselves (pika: six ERROR lines and a traceback for each broker
# connection that fails) and then raise it to a transport, which reports it in one coded line
# (transports/amqp_link.py): their loggers are silent unless debugging.
RAISED_AND_REPORTED = ("pika.adapters",)
SILENT = logging.CRITICAL + 1

_FIELDS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "edi_gateway_log_fields", default=None
)
# Every attribute a plain LogRecord has: anything else on a record came with ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line emitted inside the block (this thread/context only)."""
    merged = {**(_FIELDS.get() or {}), **fields}
    token = _FIELDS.set(merged)
    try:
        yield
    finally:
        _FIELDS.reset(token)


class ContextFilter(logging.Filter):
    """Copies the :func:`log_fields` of the current context onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the context's fields the record does not already carry; never drops a record."""
        for key, value in (_FIELDS.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class LibraryFilter(logging.Filter):
    """Keeps the libraries' chatter out unless debugging: below ``debug``, records of loggers
    outside ``edi_gateway`` (pika writes ~18 INFO lines per publish, paramiko 2 per connect)
    pass only from WARNING up, so ``info`` is one line per message and per delivery."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        """True for our own records, and for the libraries' warnings (or all when debugging)."""
        if self.level <= logging.DEBUG or record.levelno >= logging.WARNING:
            return True
        return record.name == "edi_gateway" or record.name.startswith("edi_gateway.")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (non-JSON values are written as text)."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line["time"] = line["time"].replace("+00:00", "Z")
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(fmt: LogFormat = "text", level: int = logging.WARNING) -> None:
    """Log records at ``level`` or above to stderr in ``fmt`` (replaces any earlier set-up);
    other libraries' records below WARNING only at ``DEBUG`` (:class:`LibraryFilter`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    handler.addFilter(LibraryFilter(level))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    for name in RAISED_AND_REPORTED:
        logging.getLogger(name).setLevel(logging.NOTSET if level <= logging.DEBUG else SILENT)
