"""The purge archive: a file an operator can restore purged rows from (docs/adr/0037).

JSON Lines, UTF-8. The first line is the header (``format``, ``version``, the purge run's id,
its ``before`` date, the store's dialect); every further line is one purge batch: the rows of
each table that batch removed, as ``{"batch": N, "tables": {name: [row, ...]}}``. A batch line
is written, flushed and fsynced before that batch's rows are deleted, and only a line ending in
a newline is complete: a crash while writing leaves an incomplete last line, whose batch was
never deleted (restore ignores it).

Rows are archived as the database driver returned them, without any column type's
processing (store/purge.py ``_raw``), and go back the same way: on SQLite the very text, numbers
and bytes the file held; on PostgreSQL the driver's values. Each keeps its exact type: ``null``,
booleans, integers and strings as JSON; bytes as ``{"$b": base64}``, datetimes as
``{"$t": ISO 8601}``, dates as ``{"$d": ISO date}``, decimals as ``{"$n": "text"}``.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from edi_gateway.errors import ErrorCode, GatewayError

FORMAT = "edi-gateway-purge-archive"
VERSION = 1
Rows = dict[str, list[dict[str, Any]]]


def encode(value: Any) -> Any:
    """A row value as JSON that :func:`decode` turns back into exactly the same value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):  # before date: a datetime is a date
        return {"$t": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$n": str(value)}
    raise TypeError(f"cannot archive a value of type {type(value).__name__}")


def decode(value: Any) -> Any:
    """The value :func:`encode` was given."""
    if not isinstance(value, dict):
        return value
    [(tag, text)] = value.items()
    match tag:
        case "$b":
            return base64.b64decode(text, validate=True)
        case "$t":
            return datetime.fromisoformat(text)
        case "$d":
            return date.fromisoformat(text)
        case "$n":
            return Decimal(text)
    raise ValueError(f"unknown value tag {tag!r}")


class Writer:
    """An archive being written: the header at open, then one durable line per batch."""

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = path
        self.batches = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # x: never overwrite an archive; 0600: it holds business data
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise GatewayError(
                ErrorCode.TARGET_UNWRITABLE,
                f"cannot write the purge archive {path}: {exc.strerror or exc}; nothing was purged",
            ) from exc
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        self._line({"format": FORMAT, "version": VERSION, **header})
        from edi_gateway.transports.folder import fsync_dir

        fsync_dir(path.parent)  # the file's name is durable too

    def batch(self, number: int, rows: Rows) -> None:
        """Append one batch's rows; returns once they are on disk (fsync)."""
        self.batches += 1
        tables = {
            name: [{k: encode(v) for k, v in row.items()} for row in found]
            for name, found in rows.items()
            if found
        }
        self._line({"batch": number, "tables": tables})

    def _line(self, data: Mapping[str, Any]) -> None:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self._file.write(text.encode())
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:  # the batch is not deleted: its transaction rolls back
            code = ErrorCode.DISK_FULL if exc.errno == errno.ENOSPC else ErrorCode.IO_FAILED
            raise GatewayError(
                code, f"cannot write the purge archive {self.path}: {exc.strerror or exc}"
            ) from exc

    def close(self) -> str:
        """Close the file; its sha256."""
        self._file.close()
        return file_sha256(self.path)


def file_sha256(path: Path) -> str:
    """The sha256 of the file at ``path`` (hex)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Archive:
    """An archive as read: its header, its complete batches, whether a last one was cut off."""

    header: dict[str, Any]
    batches: list[Rows]
    cut_off: bool


def read(path: Path) -> Archive:
    """Read and check the archive at ``path`` (PURGE_ARCHIVE_INVALID when it is not one)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _invalid(path, f"cannot be read: {exc.strerror or exc}") from exc
    lines = data.split(b"\n")
    cut_off = lines[-1] != b""  # the last line has no newline: a batch being written
    complete = lines[:-1]
    if not complete:
        raise _invalid(path, "has no header line: not a purge archive")
    try:
        header = json.loads(complete[0])
    except ValueError as exc:
        raise _invalid(path, "the first line is not JSON: not a purge archive") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _invalid(path, "the first line is not a purge archive header")
    if header.get("version") != VERSION:
        raise _invalid(path, f"an archive of version {header.get('version')!r}, expected {VERSION}")
    return Archive(header, list(_batches(path, complete[1:])), cut_off)


def _batches(path: Path, lines: list[bytes]) -> Iterator[Rows]:
    for number, line in enumerate(lines, start=2):
        try:
            batch = json.loads(line)
            tables = batch["tables"]
            yield {
                str(name): [{str(k): decode(v) for k, v in row.items()} for row in rows]
                for name, rows in tables.items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _invalid(path, f"line {number} is not a batch of rows ({exc})") from exc


def _invalid(path: Path, why: str) -> GatewayError:
    return GatewayError(ErrorCode.PURGE_ARCHIVE_INVALID, f"{path}: {why}")
