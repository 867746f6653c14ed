"""The validated configuration, cached between commands (issue 12: read-only commands start
fast). See docs/adr/0041-validated-config-cache.md.

Validating gateway.yaml builds the models' validators and checks what the file names on disk:
layouts (compiled with Jinja, column maps with openpyxl's cell names), reply maps,
certificates. For the starter config that is ~0.15 s of every command, for a small one ~0.03 s.
A command whose config validated before unpickles the :class:`Settings` it gave instead.

Exact, or not used. The cache of a config holds, beside the settings, everything validating
it read: the sha256 of the config text and of every file opened (seen through an audit hook,
on the validating thread only), the names in every folder listed, each relative path and what
it resolved to (symlinks), each ``~`` path and what it expanded to (``$HOME``), the Python and
pydantic versions, the installed libraries' folders and the product's own source files (size
and mtime). All of it is compared on each use; any difference, or a cache that cannot be read,
means validating again. A config that fails validation is never cached (its error is raised
as before), nor one whose validation wrote a file. The cache files are private:
``$XDG_CACHE_HOME/edi-gateway`` (else ``~/.cache/edi-gateway``), folder 0700, files 0600,
written atomically; one not owned by this user, or writable by others, is ignored (unpickling
runs code). Not caching never fails a command: an unwritable cache folder only costs the time.

The settings are kept as a pickle inside the entry, beside :class:`StoreAt`: a read-only command
takes only where the store is (:func:`cached_store`) and so never imports pydantic or the
models, which cost it ~50-80 ms; it loads the whole settings only if it turns out to need them.
This module and :mod:`.locate` import no model for that reason.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 2
KEEP = 64
"""Cache files kept (one per config path): the oldest beyond are removed when one is written."""
_CODE_SUFFIXES = (".py", ".pyc", ".so", ".pth")


@dataclass
class _Reads:
    """What validating one config read, as its audit events said."""

    files: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    resolved: dict[str, str] = field(default_factory=dict)
    expanded: dict[str, str] = field(default_factory=dict)
    wrote: bool = False


class _Recording(threading.local):
    """The validation this thread is recording, if any (threads validate independently)."""

    reads: _Reads | None = None


_RECORDING = _Recording()
_HOOK = threading.Lock()
_hooked: list[bool] = []  # the audit hook, once installed (it cannot be removed)
_WRITES = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


@dataclass(frozen=True, slots=True)
class StoreAt:
    """Where a config's store is, all that opening it takes: ``store.url`` (a SQLite path
    already resolved) and ``daemon.lease_seconds``. Kept only for a store without a password
    reference: a secret is read when it is used, never written into the cache."""

    url: str
    lease_seconds: float


def resolved(path: Path) -> Path:
    """``path.resolve()``, noted while a config is validated (a symlink may change later)."""
    found = path.resolve()
    reads = _RECORDING.reads
    if reads is not None:
        reads.resolved[str(path)] = str(found)
    return found


def expanded(path: Path) -> Path:
    """``path.expanduser()``, noted while a config is validated (``$HOME`` or the user
    database may say otherwise later)."""
    found = path.expanduser()
    reads = _RECORDING.reads
    if reads is not None and found != path:
        reads.expanded[str(path)] = str(found)
    return found


def _audit(event: str, args: tuple[Any, ...]) -> None:
    reads = _RECORDING.reads
    if reads is None:
        return
    if event == "open":  # builtins/io.open and os.open: (path, mode or None, flags)
        target, flags = args[0], args[2]
        if isinstance(target, str | bytes | os.PathLike):
            reads.files.add(os.fsdecode(target))
            if isinstance(flags, int) and flags & _WRITES:
                reads.wrote = True
    elif event in ("os.listdir", "os.scandir") and isinstance(args[0], str | bytes | os.PathLike):
        reads.folders.add(os.fsdecode(args[0]))


@contextlib.contextmanager
def recording() -> Iterator[_Reads]:
    """Note what the block reads (this thread): files opened, folders listed, paths resolved."""
    with _HOOK:
        if not _hooked:
            sys.addaudithook(_audit)  # for the process's life: idle unless recording
            _hooked.append(True)
    reads = _Reads()
    outer, _RECORDING.reads = _RECORDING.reads, reads
    try:
        yield reads
    finally:
        _RECORDING.reads = outer


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _listing(folder: str) -> list[str] | None:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return None


@functools.cache
def _code() -> str:
    """The code that validates: Python, pydantic, the installed libraries (the folders they
    are installed in) and the product's source files; the same whichever way Python started
    (console script, ``-m``, ``-c``). Worked out once a process (it stats the product's
    ~250 files): a command that looks for where the store is and then loads the settings
    asks twice, and the code a process runs is the code it started with."""
    from importlib.util import find_spec

    from edi_gateway import __version__

    parts = [sys.version, __version__]
    # pydantic-core's own file, not its __version__: importing it is what a cached read-only
    # command avoids (an upgrade rewrites the file, and its folder's listing changes)
    core = find_spec("pydantic_core")
    if core is not None and core.origin is not None:
        with contextlib.suppress(OSError):
            info = os.stat(core.origin)
            parts.append(f"{core.origin}:{info.st_size}:{info.st_mtime_ns}")
    for entry in sorted({p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}):
        with contextlib.suppress(OSError):  # installing or removing a library changes it
            parts.append(f"{entry}:{os.stat(entry).st_mtime_ns}")
    for folder, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            info = os.stat(os.path.join(folder, name))
            parts.append(f"{folder}/{name}:{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


_PACKAGE = str(Path(__file__).resolve().parents[1])


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _code_file(path: str) -> bool:
    """Whether ``path`` is code (the product's, the libraries'), which the code key covers."""
    return path.endswith(_CODE_SUFFIXES) or _under(path, (sys.prefix, sys.base_prefix, _PACKAGE))


def _key(config: Path, text: bytes) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "config": str(config),
        "text": hashlib.sha256(text).hexdigest(),
        "code": _code(),
    }


def _where(config: Path) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    name = hashlib.sha256(str(config).encode()).hexdigest()[:32]
    return Path(base) / "edi-gateway" / f"config-{name}.pickle"


def _still(entry: dict[str, Any]) -> bool:
    """Whether every file, folder and resolution validating read is as it was."""
    return (
        all(_digest(path) == digest for path, digest in entry["files"].items())
        and all(_listing(folder) == names for folder, names in entry["folders"].items())
        and all(str(Path(p).resolve()) == found for p, found in entry["resolved"].items())
        and all(str(Path(p).expanduser()) == found for p, found in entry["expanded"].items())
    )


def _entry(config: Path, text: bytes) -> dict[str, Any] | None:
    """The cache entry of ``config`` when it is certainly what validating ``text`` now would
    give, else None."""
    where = _where(config)
    try:
        # the file opened is the one checked: no symlink followed, fstat of the open handle
        with os.fdopen(os.open(where, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
            info = os.fstat(handle.fileno())
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.getuid()
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            ):
                return None
            entry = pickle.load(handle)  # noqa: S301 - our own private file, checked above
    except Exception:  # noqa: BLE001 - missing, truncated, corrupt, from another version
        return None
    try:
        if entry["key"] != _key(config, text) or not _still(entry):
            return None
    except Exception:  # noqa: BLE001 - not a cache this version wrote
        return None
    return entry if isinstance(entry, dict) else None


def cached(config: Path, text: bytes) -> object:
    """The cached settings of ``config`` (whose bytes are ``text``), or None when there are
    none that are certainly what validating it now would give. (Typed ``object``: this module
    imports no model; the caller checks the type.)"""
    entry = _entry(config, text)
    try:
        return None if entry is None else pickle.loads(entry["settings"])  # noqa: S301
    except Exception:  # noqa: BLE001 - as a corrupt cache
        return None


def cached_store(config: Path, text: bytes) -> StoreAt | None:
    """Where the store of ``config`` (whose bytes are ``text``) is, from a cache entry that is
    certainly what validating it now would give; None when there is none, or when its store
    has a password reference (then the whole settings are loaded as usual)."""
    entry = _entry(config, text)
    found = None if entry is None else entry.get("store")
    return found if isinstance(found, StoreAt) else None


def remember(
    config: Path,
    text: bytes,
    reads: _Reads,
    settings: object,
    *,
    store: StoreAt | None = None,
) -> None:
    """Cache ``settings``, validated from ``text`` with ``reads`` (``store``: where their
    store is, when it has no password); quietly not when it cannot be exact (validation wrote
    a file) or written."""
    if reads.wrote:
        return
    # the import system and importlib.metadata list these ('' as '.'): the code key covers
    # them; validation itself only lists absolute folders (relative to the config's)
    code = {p or "." for p in sys.path}
    entry: dict[str, Any] = {
        "key": _key(config, text),
        "files": {p: _digest(p) for p in sorted(reads.files) if not _code_file(p)},
        "folders": {
            f: _listing(f) for f in sorted(reads.folders) if f not in code and not _code_file(f)
        },
        "resolved": reads.resolved,
        "expanded": reads.expanded,
        "store": store,
    }
    where = _where(config)
    with contextlib.suppress(Exception):  # an unwritable folder, settings pickle cannot hold
        entry["settings"] = pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL)
        where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=where.parent, prefix=".config-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(entry, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temp, where)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        _prune(where.parent)


def _prune(folder: Path) -> None:
    found = sorted(folder.glob("config-*.pickle"), key=lambda p: p.stat().st_mtime_ns)
    for old in found[:-KEEP]:
        with contextlib.suppress(OSError):
            old.unlink()
