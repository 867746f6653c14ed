"""SFTP transport: a folder on a partner's SFTP server as inbox and outbox (paramiko).

Inbound: files matching ``pattern`` (and none of ``ignore``: ``*.part``, ``*.tmp``, dot-files)
are claimed by a server-side rename into the ``claimed`` folder under a name that carries this
gateway's ``claim_tag`` and instance (``<tag>--<utc stamp>-<id>@<instance>--<original name>``,
``transports/claims.py``), so two gateways never both take a file, then downloaded. The remote
claimed path is the Envelope's ``source_ref``. Only ``ack`` (after intake committed) moves the
claimed file to ``archive`` / ``error`` or deletes it; ``recover`` offers again the claims of
this ``claim_tag`` made by this gateway or by one no longer alive, after a crash. With
``stable_seconds`` a file is taken only once two looks that far apart saw the same size and
modification time (a file that is still growing stays).

Outbound: upload ``.<name>.<id>.tmp``, then rename it to the final name. OpenSSH's rename
refuses to replace an existing file, so nothing is ever overwritten: an existing identical
file makes the delivery a no-op, a different one gets a ``-1``, ``-2`` ... suffix. Temporary
files a crash left (untouched for ``max(600 s, 5 x timeout)``) are removed by the next flush.

Connections, host key pinning and error mapping: :mod:`.sftp_session`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import posixpath
import stat
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase
from typing import TypeVar
from uuid import uuid4

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

from edi_gateway.crashpoints import reach
from edi_gateway.envelope import Envelope, oversize_envelope
from edi_gateway.errors import ConfigError, ErrorCode
from edi_gateway.transports.base import TransportError, os_error_code
from edi_gateway.transports.claims import Claimants, claim_prefix, original_name, to_recover
from edi_gateway.transports.folder import TEMP_NAME, _split_suffix, safe_name
from edi_gateway.transports.sftp_session import SftpSession
from edi_gateway.transports.sftp_spec import SftpConnector

_NAME_MAX = 250  # bytes of a remote file name we create (NAME_MAX is 255 on the usual servers)
_BLOCK = 1 << 20
STALE_TEMP_SECONDS = 600
_R = TypeVar("_R")
_Op = Callable[[paramiko.SFTPClient], _R]


class SftpInbound:
    """Claims files from a remote folder; see the module docstring."""

    def __init__(
        self,
        conn: SftpConnector,
        max_bytes: int | None = None,
        claimants: Claimants | None = None,
    ) -> None:
        if conn.direction != "in":
            raise ConfigError(f"connector {conn.name!r} is not inbound (direction: in)")
        self.name = conn.name
        self.source = f"sftp:{conn.name}"
        self._session = SftpSession(conn)
        weakref.finalize(self, self._session.close)
        self._dir = conn.path
        self._claimed = conn.claimed or posixpath.join(conn.path, ".claimed")
        self._prefix = f"{conn.claim_tag or conn.name}--"
        self._archive = conn.archive
        self._error = conn.error or conn.archive  # None with delete: true: delete
        # ... except an oversize file: intake has none of its bytes, so it is kept here
        self._too_large = posixpath.join(self._claimed, "too-large")
        self._pattern = conn.pattern.lower()
        self._ignore = [p.lower() for p in conn.ignore]
        self._stable_seconds = conn.stable_seconds
        self._max_bytes = max_bytes
        self._claimants = claimants
        self._seen: dict[str, tuple[tuple[int, int], float]] = {}
        self._looked = False  # has a poll of this transport looked at the folder yet?
        self._sleep = time.sleep
        self._folders: set[str] = set()

    def close(self) -> None:
        """Close the connection (the next call opens a new one)."""
        self._session.close()

    def recover(self) -> Iterator[Envelope]:
        """This gateway's claimed files that were never acknowledged, oldest claim first."""
        try:
            entries = self._run(lambda sftp: _listdir(sftp, self._claimed), "list", writing=False)
        except TransportError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return  # never claimed anything yet
            raise
        files = {e.filename[len(self._prefix) :]: e for e in entries if self._original(e.filename)}
        for claim in to_recover(sorted(files), self._claimants):
            entry = files[claim]
            if _is_file(entry):
                envelope = self._envelope(posixpath.join(self._claimed, entry.filename))
                if envelope is not None:
                    yield envelope

    def poll(self) -> Iterator[Envelope]:
        """Claim and download the waiting files, oldest first; files others took are skipped."""
        for name in self._waiting():
            claimed = self._claim(name)
            if claimed is not None:
                envelope = self._envelope(claimed)
                if envelope is not None:
                    yield envelope

    def ack(self, envelope: Envelope, *, ok: bool) -> None:
        """Move the claimed file to the archive (ok) or error folder, or delete it; a file that
        is no longer claimed was acknowledged before, and nothing happens."""
        ref = envelope.source_ref
        base = posixpath.basename(ref)
        if (
            envelope.source != self.source
            or posixpath.dirname(ref) != self._claimed
            or self._original(base) is None
        ):
            raise TransportError(
                f"{self.source} cannot acknowledge {envelope.source}/{ref!r}",
                recoverable=False,
                code=ErrorCode.INTERNAL_ERROR,
            )
        target = self._archive if ok else self._error
        if target is None and envelope.oversize is not None:
            target = self._too_large  # never delete bytes the store does not hold

        def settle(sftp: paramiko.SFTPClient) -> None:
            try:
                if target is None:
                    sftp.remove(ref)
                else:
                    self._makedirs(sftp, target)
                    sftp.rename(ref, posixpath.join(target, base))
            except FileNotFoundError:
                return

        self._run(settle, f"move {ref} to {target}" if target else f"delete {ref}")

    def _original(self, claimed: str) -> str | None:
        """The original file name inside a claimed name of this gateway, else None."""
        if not claimed.startswith(self._prefix):
            return None
        return original_name(claimed[len(self._prefix) :])

    def _wanted(self, entry: paramiko.SFTPAttributes) -> bool:
        lower = entry.filename.lower()
        return (
            fnmatchcase(lower, self._pattern)
            and not any(fnmatchcase(lower, p) for p in self._ignore)
            and _is_file(entry)
        )

    def _list(self) -> list[paramiko.SFTPAttributes]:
        entries = self._run(lambda sftp: _listdir(sftp, self._dir), "list", writing=False)
        return [e for e in entries if self._wanted(e)]

    def _waiting(self) -> list[str]:
        """Names to claim, oldest first; with ``stable_seconds``, only files that kept still."""
        entries = self._list()
        if self._stable_seconds > 0:
            ready, wait = self._still(entries)
            if wait > 0 and not self._looked:
                # The first poll of this transport (`run --once`, a daemon starting) has no
                # earlier look to compare with: it looks again after the wait. Later polls never
                # wait (the daemon holds its lock during a poll): a file whose size and time
                # stayed the same since an earlier poll at least stable_seconds ago is taken.
                self._sleep(wait)
                ready, _ = self._still(self._list())
            entries = ready
        self._looked = True
        return [e.filename for e in sorted(entries, key=lambda e: (e.st_mtime or 0, e.filename))]

    def _still(
        self, entries: list[paramiko.SFTPAttributes]
    ) -> tuple[list[paramiko.SFTPAttributes], float]:
        """Entries unchanged for ``stable_seconds``, and how long until the rest may be."""
        now = time.monotonic()
        seen: dict[str, tuple[tuple[int, int], float]] = {}
        ready: list[paramiko.SFTPAttributes] = []
        wait = 0.0
        for entry in entries:
            looks = (entry.st_size or 0, entry.st_mtime or 0)
            before = self._seen.get(entry.filename)
            since = before[1] if before is not None and before[0] == looks else now
            seen[entry.filename] = (looks, since)
            if now - since >= self._stable_seconds:
                ready.append(entry)
            else:
                wait = max(wait, self._stable_seconds - (now - since))
        self._seen = seen
        return ready, wait

    def _claim(self, name: str) -> str | None:
        prefix = self._prefix + claim_prefix(self._claimants)
        claimed = posixpath.join(
            self._claimed, prefix + safe_name(name, _NAME_MAX - len(prefix.encode()))
        )

        def claim(sftp: paramiko.SFTPClient) -> str | None:
            self._makedirs(sftp, self._claimed)
            try:
                sftp.rename(_wire(posixpath.join(self._dir, name)), claimed)
            except FileNotFoundError:
                return None  # another poller claimed it first (or we did, before a drop)
            return claimed

        return self._run(claim, f"claim {name!r}")

    def _envelope(self, claimed: str) -> Envelope | None:
        """The claimed file's bytes (or, when oversize, only its size and sha256)."""
        limit = self._max_bytes
        try:
            size, data, digest = self._run(
                lambda sftp: _fetch(sftp, claimed, limit), "read", writing=False
            )
        except TransportError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return None  # acknowledged meanwhile by another run of this gateway
            raise
        filename = self._original(posixpath.basename(claimed)) or posixpath.basename(claimed)
        meta = {"path": claimed, "server": self._session.where}
        if data is not None:
            return Envelope(data, self.source, claimed, filename, meta=meta)
        kept = (
            claimed if self._error else posixpath.join(self._too_large, posixpath.basename(claimed))
        )
        return oversize_envelope(
            self.source,
            claimed,
            filename,
            size=size,
            sha256=digest,
            limit=limit or 0,  # set: only a limit makes a file oversize
            kept_at=self._session.where + kept,
            meta=meta,
        )

    def _makedirs(self, sftp: paramiko.SFTPClient, folder: str) -> None:
        if folder not in self._folders:
            _makedirs(sftp, folder)
            self._folders.add(folder)

    def _run(self, op: _Op[_R], what: str, *, writing: bool = True) -> _R:
        return _run(self._session, op, what, writing=writing)


class SftpOutbound:
    """Uploads files into a remote folder atomically and without overwriting."""

    def __init__(self, conn: SftpConnector) -> None:
        if conn.direction != "out":
            raise ConfigError(f"connector {conn.name!r} is not outbound (direction: out)")
        self.name = conn.name
        self._session = SftpSession(conn)
        weakref.finalize(self, self._session.close)
        self._dir = conn.path
        # A temporary file nobody touched for this long has no live writer: an upload that
        # stalls longer than the operation timeout fails and removes its file.
        self._stale_after = max(STALE_TEMP_SECONDS, 5 * conn.timeout)
        self._swept = False

    def close(self) -> None:
        """Close the connection (the next delivery opens a new one)."""
        self._session.close()

    def deliver(
        self, filename: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> str:
        """Upload ``payload`` as ``filename`` (sanitised); return the remote path written."""
        name = safe_name(filename)
        return _run(
            self._session, lambda sftp: self._deliver(sftp, name, payload), f"deliver {name!r}"
        )

    def _deliver(self, sftp: paramiko.SFTPClient, name: str, payload: bytes) -> str:
        _makedirs(sftp, self._dir)
        if not self._swept:  # once per transport (a flush), not per file
            self.sweep_stale_temps(sftp, time.time())
            self._swept = True
        stem, suffix = _split_suffix(name)
        tmp: str | None = None
        counter = 0
        try:
            while True:
                final = name if counter == 0 else f"{stem}-{counter}{suffix}"
                target = posixpath.join(self._dir, final)
                if _exists(sftp, target):
                    if _same_content(sftp, target, payload):
                        return target
                    counter += 1
                    continue
                if tmp is None:
                    tmp = posixpath.join(self._dir, f".{name}.{uuid4().hex[:8]}.tmp")
                    sftp.putfo(io.BytesIO(payload), tmp, file_size=len(payload), confirm=True)
                    reach("after-temp-write")
                try:
                    sftp.rename(tmp, target)  # refuses an existing target (OpenSSH: link())
                except OSError:
                    if not _exists(sftp, target):
                        raise
                    continue  # someone else won the name: look at it again
                tmp = None
                return target
        finally:
            if tmp is not None:
                _remove_quietly(sftp, tmp)

    def sweep_stale_temps(self, sftp: paramiko.SFTPClient, moment: float) -> list[str]:
        """Remove the temporary files of uploads whose writer died between upload and rename
        (untouched for ``max(STALE_TEMP_SECONDS, 5 * timeout)``); return their names."""
        removed = []
        for entry in sftp.listdir_attr(self._dir):
            if not TEMP_NAME.fullmatch(entry.filename) or not stat.S_ISREG(entry.st_mode or 0):
                continue
            if moment - (entry.st_mtime or moment) >= self._stale_after:
                _remove_quietly(sftp, posixpath.join(self._dir, entry.filename))
                removed.append(entry.filename)
        return removed


def _run(session: SftpSession, op: _Op[_R], what: str, *, writing: bool = True) -> _R:
    """``op`` through the session; an operation error (the link is alive: the server refused
    the operation itself) becomes a coded TransportError (``os_error_code``)."""
    try:
        return session.run(op)
    except OSError as exc:
        permanent = isinstance(exc, PermissionError)
        raise TransportError(
            f"{session.where}: cannot {what}: {exc or type(exc).__name__}"
            + ("; check the user's rights on that folder" if permanent else ""),
            recoverable=not permanent,
            code=os_error_code(exc, writing=writing),
        ) from exc


def _fetch(
    sftp: paramiko.SFTPClient, path: str, limit: int | None
) -> tuple[int, bytes | None, str]:
    """(size, bytes, "") of a file; over ``limit``: (size, None, sha256) without keeping it."""
    size = sftp.stat(path).st_size or 0
    with sftp.open(path, "rb") as remote:
        data = b""
        if limit is None or size <= limit:
            remote.prefetch(size)
            data = remote.read(None if limit is None else limit + 1)  # never more than the cap
            if limit is None or len(data) <= limit:
                return len(data), data, ""
        # Over the limit (or grown past it since stat): only its size and sha256 are kept.
        digest = hashlib.sha256(data)
        total = len(data)
        for block in iter(lambda: remote.read(_BLOCK), b""):
            digest.update(block)
            total += len(block)
        return total, None, digest.hexdigest()


def _listdir(sftp: paramiko.SFTPClient, path: str) -> list[paramiko.SFTPAttributes]:
    """``listdir_attr`` that survives names which are not UTF-8.

    paramiko decodes every name strictly, so one file called ``caf\\xe9.xml`` would stop the
    whole listing, every cycle. Here such bytes become surrogates (``os.fsdecode`` style);
    :func:`_wire` turns the name back into the server's bytes.
    """
    kind, msg = sftp._request(CMD_OPENDIR, _wire(path))  # type: ignore[attr-defined]
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("expected a handle")
    handle = msg.get_binary()
    found: list[paramiko.SFTPAttributes] = []
    try:
        while True:
            try:
                kind, msg = sftp._request(CMD_READDIR, handle)  # type: ignore[attr-defined]
            except EOFError:
                return found
            if kind != CMD_NAME:
                raise paramiko.SFTPError("expected names")
            for _ in range(msg.get_int()):
                name = msg.get_string().decode("utf-8", "surrogateescape")
                msg.get_string()  # the ls -l style long name
                attr = paramiko.SFTPAttributes._from_msg(msg, name)  # type: ignore[attr-defined]
                if name not in (".", ".."):
                    found.append(attr)
    finally:
        sftp._request(CMD_CLOSE, handle)  # type: ignore[attr-defined]


def _wire(path: str) -> bytes:
    """A remote path as the bytes the server knows it by (see :func:`_listdir`)."""
    return path.encode("utf-8", "surrogateescape")


def _is_file(entry: paramiko.SFTPAttributes) -> bool:
    return entry.st_mode is not None and stat.S_ISREG(entry.st_mode)


def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        sftp.lstat(path)
    except FileNotFoundError:
        return False
    return True


def _same_content(sftp: paramiko.SFTPClient, path: str, payload: bytes) -> bool:
    info = sftp.lstat(path)
    if info.st_mode is None or not stat.S_ISREG(info.st_mode) or info.st_size != len(payload):
        return False
    with sftp.open(path, "rb") as remote:
        remote.prefetch(len(payload))
        return remote.read() == payload


def _makedirs(sftp: paramiko.SFTPClient, folder: str) -> None:
    """Create ``folder`` and its missing parents on the server."""
    if folder in ("", "/", ".") or _exists(sftp, folder):
        return
    _makedirs(sftp, posixpath.dirname(folder))
    try:
        sftp.mkdir(folder)
    except OSError:
        if not _exists(sftp, folder):  # not lost to a concurrent mkdir
            raise


def _remove_quietly(sftp: paramiko.SFTPClient, path: str) -> None:
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        sftp.remove(path)  # a leftover dot-file .tmp is ignored by every poller
