"""Folder transport: a local or mounted directory as inbox and outbox.

Inbound: a file is claimed by an atomic ``os.rename`` into ``<path>/.claimed/`` under a unique
name that carries the claimant (``transports/claims.py``) before it is read, so two gateways
polling one folder never both get it; after intake committed, ``ack`` moves the claimed file to
the archive or error folder under the same unique name. ``recover`` offers again this gateway's
claims and those of gateways no longer alive, never a claim another running gateway works on.
Writers must create files under a name the poller ignores (``*.part``, ``*.tmp`` or a
leading dot) and rename them when complete.

Outbound: write ``.<name>.<random>.tmp`` (under an exclusive ``flock``), fsync, then hard-link
to the final name, which fails instead of overwriting; an existing different file gets a
``-1``, ``-2`` ... suffix, an identical one makes the delivery a no-op. Temporary files a crash
left (no process holds their lock) are removed by the next flush through the connector.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from uuid import uuid4

from edi_gateway.crashpoints import reach
from edi_gateway.envelope import Envelope, file_envelope
from edi_gateway.errors import ConfigError, ErrorCode
from edi_gateway.transports.base import TransportError, os_failure
from edi_gateway.transports.claims import Claimants, claim_prefix, original_name, to_recover
from edi_gateway.transports.folder_spec import FolderConnector

CLAIMED_DIR = ".claimed"
MAX_NAME_BYTES = 200  # leaves room under NAME_MAX (255) for the claim prefix and tmp affixes
NAME_MAX = 250  # bytes of a file name we create (255 on the usual file systems)
_IGNORED_SUFFIXES = (".part", ".tmp")


def safe_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``name`` made safe to create in a folder: one path component, printable, length-limited.

    Bytes that are not UTF-8 (``os.fsdecode`` surrogates) become U+FFFD; separators, NUL and
    other control characters become ``_``; leading dots, dashes and blanks are dropped (no
    hidden files, nothing that looks like an option); an empty result becomes ``unnamed``.
    """
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "replace")
    text = raw.decode("utf-8", "replace")
    if not text.isprintable() or "/" in text or "\\" in text:  # the usual name needs nothing
        text = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in text)
    text = text.lstrip(".- ").rstrip(". ") or "unnamed"
    return _truncate(text, max_bytes)


def _truncate(text: str, max_bytes: int) -> str:
    if len(text.encode()) <= max_bytes:
        return text
    stem, suffix = _split_suffix(text)
    budget = max(max_bytes - len(suffix.encode()), 1)
    return stem.encode()[:budget].decode("utf-8", "ignore") + suffix


def _split_suffix(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        return name, ""
    return stem, f".{ext}"


class FolderInbound:
    """Claims files from an inbound folder connector; see the module docstring."""

    def __init__(
        self,
        conn: FolderConnector,
        max_bytes: int | None = None,
        claimants: Claimants | None = None,
    ) -> None:
        if conn.direction != "in":
            raise ConfigError(f"connector {conn.name!r} is not inbound (direction: in)")
        self.name = conn.name
        self.source = f"folder:{conn.name}"
        self._dir = conn.path
        self._claimed = conn.path / CLAIMED_DIR
        # as text too: each claim and acknowledgement names two paths (no Path work per file)
        self._dir_text, self._claimed_text = os.fspath(self._dir), os.fspath(self._claimed)
        self._archive = conn.archive or conn.path.parent / "archive" / conn.name
        self._error = conn.error or conn.path.parent / "error" / conn.name
        self._pattern = conn.pattern.lower()
        self._max_bytes = max_bytes
        self._claimants = claimants
        self._made: set[Path] = set()  # archive / error folders made (or found) by ack

    def close(self) -> None:
        """Nothing to release: a folder holds no connection."""

    def recover(self) -> Iterator[Envelope]:
        """Files claimed by this gateway or one no longer alive and never acknowledged, oldest
        claim first."""
        if not self._claimed.is_dir():
            return
        for name in to_recover(sorted(os.listdir(self._claimed)), self._claimants):
            if _is_file(self._claimed / name):
                yield self._envelope(name, original_name(name))

    def poll(self) -> Iterator[Envelope]:
        """Claim and read the waiting files, oldest first; files others claimed are skipped."""
        if not self._dir.is_dir():
            raise TransportError(
                f"inbound folder {self._dir} of connector {self.name!r} does not exist; "
                "create it or correct the connector's path",
                recoverable=True,
                code=ErrorCode.SOURCE_UNREADABLE,
            )
        self._claimed.mkdir(exist_ok=True)
        for name in self._waiting():
            claimed = self._claim(name)
            if claimed is not None:
                yield self._envelope(*claimed)

    def ack(self, envelope: Envelope, *, ok: bool) -> None:
        """Move the claimed file to the archive (ok) or error folder; no-op if already moved."""
        ref = envelope.source_ref
        if envelope.source != self.source or ref != os.path.basename(ref) or ref.startswith("."):
            raise TransportError(
                f"{self.source} cannot acknowledge {envelope.source}/{ref!r}",
                recoverable=False,
                code=ErrorCode.INTERNAL_ERROR,
            )
        target = self._archive if ok else self._error
        claimed = f"{self._claimed_text}/{ref}"
        try:
            if target not in self._made:  # once per folder, not per file
                target.mkdir(parents=True, exist_ok=True)
                self._made.add(target)
            try:
                _move(claimed, f"{target}/{ref}")
            except FileNotFoundError:
                if not os.path.lexists(claimed):
                    return  # moved already (acknowledged before a crash)
                target.mkdir(parents=True, exist_ok=True)  # the folder was removed meanwhile
                _move(claimed, f"{target}/{ref}")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise os_failure(f"cannot move {ref!r} to {target}", exc, writing=True) from exc

    def _wanted(self, name: str) -> bool:
        lower = name.lower()
        return (
            not name.startswith(".")
            and not lower.endswith(_IGNORED_SUFFIXES)
            and fnmatchcase(lower, self._pattern)
        )

    def _waiting(self) -> list[str]:
        found: list[tuple[int, str]] = []
        try:
            with os.scandir(self._dir) as entries:
                for entry in entries:
                    if self._wanted(entry.name):
                        info = _entry_stat(entry)
                        if info is not None:
                            found.append((info.st_mtime_ns, entry.name))
        except OSError as exc:
            raise os_failure(f"cannot list {self._dir}", exc, writing=False) from exc
        return [name for _, name in sorted(found)]

    def waiting_paths(self) -> list[Path]:
        """The files waiting in the folder, in the order ``poll`` claims them (nothing is
        claimed): what ``run --once`` reads ahead (pipeline/readahead.py)."""
        try:
            return [self._dir / name for name in self._waiting()]
        except TransportError:
            return []  # poll reports it

    def _claim(self, name: str) -> tuple[str, str] | None:
        """Claim ``name``: its claimed name and the (safe) original name inside it."""
        prefix = claim_prefix(self._claimants)
        original = safe_name(name, min(MAX_NAME_BYTES, NAME_MAX - len(prefix.encode())))
        claimed = prefix + original
        try:
            os.rename(f"{self._dir_text}/{name}", f"{self._claimed_text}/{claimed}")
        except FileNotFoundError:
            return None  # another poller claimed it first
        return claimed, original

    def _envelope(self, claimed: str, original: str | None) -> Envelope:
        path = f"{self._claimed_text}/{claimed}"
        try:
            return file_envelope(
                path,
                source=self.source,
                source_ref=claimed,
                filename=original or claimed,
                max_bytes=self._max_bytes,
                # where it waited: read-ahead knows it by that path (its bytes are compared)
                meta={"path": path, "origin": f"{self._dir_text}/{original or ''}"},
            )
        except OSError as exc:
            raise os_failure(f"cannot read claimed file {path}", exc, writing=False) from exc


class FolderOutbound:
    """Writes files into an outbound folder atomically and without overwriting."""

    def __init__(self, conn: FolderConnector) -> None:
        if conn.direction != "out":
            raise ConfigError(f"connector {conn.name!r} is not outbound (direction: out)")
        self.name = conn.name
        self._dir = conn.path
        self._swept = False

    def close(self) -> None:
        """Nothing to release: a folder holds no connection."""

    def deliver(
        self, filename: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> str:
        """Write ``payload`` as ``filename`` (sanitised); return the path it was written to."""
        try:
            return self._deliver(safe_name(filename), payload)
        except OSError as exc:
            raise os_failure(
                f"cannot write {filename!r} to {self._dir}", exc, writing=True
            ) from exc

    def _deliver(self, name: str, payload: bytes) -> str:
        self._dir.mkdir(parents=True, exist_ok=True)
        if not self._swept:  # once per transport (a flush), not per file
            sweep_stale_temps(self._dir)
            self._swept = True
        stem, suffix = _split_suffix(name)
        tmp: Path | None = None
        held: int | None = None  # the temporary file's descriptor, locked while it is ours
        counter = 0
        try:
            while True:
                target = self._dir / (name if counter == 0 else f"{stem}-{counter}{suffix}")
                if os.path.lexists(target):
                    if _same_content(target, payload):
                        return str(target)
                    counter += 1
                    continue
                if tmp is None:
                    tmp, held = self._write_tmp(name, payload)
                    reach("after-temp-write")
                try:
                    _link_no_clobber(tmp, target)
                except FileExistsError:
                    continue  # someone else won the name: look at it again
                fsync_dir(self._dir)
                return str(target)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            if held is not None:
                os.close(held)

    def _write_tmp(self, name: str, payload: bytes) -> tuple[Path, int]:
        """Write ``.<name>.<random>.tmp`` under an exclusive ``flock`` that stays held (the
        descriptor is returned) until the delivery ends: a crash drops the lock, and the next
        delivery of that name removes what it left (:func:`_sweep_stale_temps`)."""
        tmp = self._dir / f".{name}.{uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return tmp, fd


EMPTY_TEMP_SECONDS = 60
TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")
"""What a delivery's temporary file is called: ``.<name>.<8 hex digits>.tmp``."""


def sweep_stale_temps(folder: Path) -> list[str]:
    """Remove the temporary files of deliveries that no live writer holds (their process
    died between writing and renaming: kill -9, a power cut); return their names."""
    try:
        entries = [e for e in os.listdir(folder) if TEMP_NAME.fullmatch(e)]
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        path = folder / entry
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone already, or a symlink: not ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            info = os.fstat(fd)
        except BlockingIOError:
            continue  # a live delivery is writing it
        else:
            # Empty and new: a writer between creating and locking it (it waits for our lock).
            if info.st_size == 0 and time.time() - info.st_mtime < EMPTY_TEMP_SECONDS:
                continue
            path.unlink(missing_ok=True)
            removed.append(entry)
        finally:
            os.close(fd)
    return removed


def _regular_file_stat(path: Path) -> os.stat_result | None:
    """lstat of a regular file (not a symlink, not a folder); None otherwise or if it vanished."""
    return _regular(path.lstat)


def _entry_stat(entry: os.DirEntry[str]) -> os.stat_result | None:
    """:func:`_regular_file_stat` of a listed entry (the same lstat, no path object)."""
    return _regular(lambda: entry.stat(follow_symlinks=False))


def _regular(lstat: Callable[[], os.stat_result]) -> os.stat_result | None:
    try:
        info = lstat()
    except FileNotFoundError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _is_file(path: Path) -> bool:
    return _regular_file_stat(path) is not None


def _same_content(path: Path, payload: bytes) -> bool:
    try:
        info = path.lstat()
        return (
            stat.S_ISREG(info.st_mode)
            and info.st_size == len(payload)
            and path.read_bytes() == payload
        )
    except FileNotFoundError:
        return False


def _link_no_clobber(tmp: Path, target: Path) -> None:
    """Give ``tmp``'s content the name ``target`` atomically; FileExistsError if taken."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError as exc:  # file systems without hard links: rename after a check
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from exc
        os.rename(tmp, target)


def _move(src: str, dst: str) -> None:
    """``os.replace``, falling back to copy + replace + unlink across file systems."""
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        folder, name = os.path.split(dst)
        tmp = os.path.join(folder, f".{name}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
        os.unlink(src)


def fsync_dir(path: Path) -> None:
    """Make a new name in the folder ``path`` durable (also the purge archive's, store/)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
