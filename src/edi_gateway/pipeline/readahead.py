"""Read ahead: parse, validate and interpret ``ingest``'s files in a second process.

``edi-gateway ingest`` spends about half a second before intake can commit its first file
(importing SQLAlchemy, loading the configuration, opening the store), and lxml holds the GIL
while it parses and validates, so a thread cannot use that time. A forked worker can. Right
after the command line is read, before those imports, :meth:`ReadAhead.start` forks a worker
that walks the same file list and, for each small file, reads, parses, XSD-validates and
interprets it (the pure part of processing) and sends the result back, pickled.

Intake still comes first (ADR 0010). The worker writes nothing anywhere; its results are only
used in processing, after intake committed the raw bytes, and only for a message whose
committed bytes have the sha256 of the bytes the worker read. Whatever the worker did not do (a
file over :data:`MAX_FILE`, one it had not reached, a worker that died or went silent) the
parent does itself, exactly as without read-ahead.

Sharing the work: one shared byte per file says who has it (free, parent, worker, left to the
parent). The worker walks forward through the list; processing takes the files of each batch
from the end backwards and waits for the worker's result, unless a free file is more than
:data:`CLAIM_LAG` files ahead of the worker: that one the parent claims and examines itself (its
first costs it the schema compile), so the two meet in the middle only when the worker is far
behind. Two sides may rarely claim the same file in the same instant; both then compute the
same pure function of the same bytes, and the parent keeps its own result.

``run --once`` learns which folders to read only from its configuration, whose loading costs
about as much as the worker's imports and its first schema compile. So it forks the worker
first (:meth:`ReadAhead.prime`): the worker imports and compiles meanwhile, then waits for the
list, which :meth:`ReadAhead.start` hands it once the folders are listed (or it is stopped
when there is nothing worth reading ahead). Nothing else differs.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import pickle
import signal
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

if TYPE_CHECKING:
    from edi_gateway.domain.documents import Document
    from edi_gateway.ubl.xsd_errors import XsdInvalid

FREE, PARENT, WORKER, LEFT = 0, 1, 2, 3
MAX_FILE = 64 * 1024 * 1024
"""Bigger files (possible only with a raised ``intake.max_size_mb``) are left to the parent. A
big order is worth the worker most: it parses, validates and interprets it while the parent
imports and opens the store, and it drops the tree before the document crosses the pipe."""
MIN_FILES = 20
"""Below this many files a second process costs more than it saves, unless they are big:"""
MIN_BYTES = 1024 * 1024
"""fewer files holding at least this many bytes are read ahead too."""
EARLY_BYTES = 256 * 1024 * 1024
"""At most this many bytes are read before the worker starts examining (see _read_early)."""
CLAIM_LAG = 256
"""The parent examines a free file itself only when the worker is this many files behind it:
its first file costs it the schema compile (~60 ms, the worker's time for ~150 files)."""
SILENCE_LIMIT = 60.0
"""Seconds without a word from the worker after which the parent stops waiting for it."""
_HEAD = struct.Struct(">II")  # each result on the pipe: file index, length, pickled Examined
PRIMED_FILES = 1 << 16
"""A worker forked before its list is known takes at most this many files (the first ones; the
parent examines the rest): its shared flags are made before the fork."""


def inbound_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The files ``ingest`` takes: files as given, folders walked for ``*.xml`` in name order."""
    for path in paths:
        if path.is_dir():
            yield from (Path(name) for name in sorted(_xml_files(str(path))))
        else:
            yield path


def _xml_files(folder: str) -> Iterator[str]:
    """Regular ``*.xml`` files under ``folder``, from the directory entries' own types (no
    ``stat`` per file; a FIFO or device named ``.xml`` is never opened)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                yield from _xml_files(entry.path)
            elif entry.name.endswith(".xml") and entry.is_file():
                yield entry.path


@dataclass(frozen=True, slots=True)
class Examined:
    """What the worker made of one file's bytes: the document, or the error it raised.

    Errors travel as ``(code, message, line)`` (exceptions with keyword arguments do not
    pickle); :meth:`result` rebuilds them as :class:`DocumentError`. An XSD refusal travels
    whole as ``xsd`` (``XsdInvalid`` pickles: its issues and total). ``sender_keys`` are the
    sender's identifiers read loosely from a refused document's tree (empty otherwise).
    ``measured``: the document's values fit the store's columns (``pipeline/limits.py``), so
    processing need not measure it again; False when they do not, or were not measured, and
    processing measures it and fails it as it would without read-ahead.
    """

    sha256: str
    size: int
    document: Document | None
    error: tuple[str, str, int | None] | None = None
    xsd: XsdInvalid | None = None
    sender_keys: tuple[str, ...] = ()
    measured: bool = False

    def __reduce__(self) -> tuple[type[Examined], tuple[Any, ...]]:
        """Pickle as one constructor call: the frozen dataclass's own state walks ``fields()``
        on both sides of the pipe, once per file."""
        from edi_gateway.domain.documents import by_constructor

        return by_constructor(self)

    def result(self) -> Document:
        """The document, or raise the error the worker met."""
        if self.document is not None:
            return self.document
        if self.xsd is not None:
            raise self.xsd
        from edi_gateway.errors import DocumentError, ErrorCode

        code, message, line = self.error or ("INTERNAL_ERROR", "read-ahead gave nothing", None)
        raise DocumentError(ErrorCode(code), message, line=line)


class ReadAhead:
    """A forked worker examining ``files`` ahead of processing; see the module docstring."""

    def __init__(self, files: Sequence[Path], pid: int, flags: mmap.mmap, read_fd: int):
        self.files = files
        self._index = {str(path): index for index, path in enumerate(files)}
        self._pid = pid
        self._flags = flags
        self._stream = os.fdopen(read_fd, "rb")
        self._raw: dict[int, bytes] = {}
        self._reached = -1  # the highest file index the worker has sent a result for
        self._ended = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._drain, name="read-ahead", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, files: Sequence[Path], primed: Primed | None = None) -> ReadAhead | None:
        """Fork the worker (or hand ``files`` to the ``primed`` one), or None when there are
        too few files to be worth it (a primed worker is then the caller's to close)."""
        if not hasattr(os, "fork") or not files:
            return None
        if len(files) < MIN_FILES and sum(_size(path) for path in files) < MIN_BYTES:
            return None
        if primed is not None:
            return primed.hand(files)
        _inherit()
        flags = mmap.mmap(-1, len(files))  # anonymous and shared with the forked child
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            os.close(read_fd)
            _exit_worker(write_fd, lambda stream: _work(files, flags, stream))
        os.close(write_fd)
        return cls(files, pid, flags, read_fd)

    @staticmethod
    def prime() -> Primed | None:
        """Fork a worker before its files are known; see :class:`Primed`."""
        return Primed.fork() if hasattr(os, "fork") else None

    def take(self, path: str) -> Examined | None:
        """The worker's result for this file, waiting if it is on it or near; None: examine it
        yourself.

        A free file far ahead of the worker (:data:`CLAIM_LAG`) is claimed for the caller, so
        the worker skips it when it gets there; a free file near it is waited for. A file taken
        before is the caller's at once when asked again (a batch processed again after a
        deadlock, or message by message): its flag, left saying the worker's, had the caller
        wait until the worker was through its whole list, the batch's rows locked meanwhile.
        """
        index = self._index.get(path)
        if index is None:
            return None
        with self._cond:
            far = index - self._reached > CLAIM_LAG
            if self._flags[index] == FREE and not self._ended and far:
                self._flags[index] = PARENT
                return None
            while self._flags[index] in (FREE, WORKER) and index not in self._raw:
                if self._ended:
                    break
                if not self._cond.wait(timeout=SILENCE_LIMIT):
                    self._ended = True  # a silent worker: the parent does the rest
            if self._flags[index] == FREE:  # the worker ended before reaching it
                self._flags[index] = PARENT
            data = self._raw.pop(index, None)
            if data is not None:
                self._flags[index] = PARENT  # taken: the caller's from now on
        if data is None:
            return None
        examined: Examined | None = pickle.loads(data)  # noqa: S301 - our own child's bytes

        return examined

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._pid

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the worker has sent everything it will send; True if it has."""
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def close(self) -> None:
        """Stop the worker (if still running) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGTERM)
        os.waitpid(self._pid, 0)
        self._reader.join()  # the worker is gone, so its end of the pipe is closed: EOF
        self._stream.close()
        self._flags.close()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drain(self) -> None:
        """Collect the worker's results as they come (the pipe must never fill up)."""
        read = self._stream.read
        while True:
            head = read(_HEAD.size)
            if len(head) < _HEAD.size:
                break
            index, size = _HEAD.unpack(head)
            data = read(size)
            if len(data) < size:
                break
            with self._cond:
                self._raw[index] = data
                self._reached = max(self._reached, index)
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()


class Primed:
    """A read-ahead worker forked before its files are known (``run --once``, before the
    configuration naming the inbound folders is loaded). It imports what examining needs and
    compiles the Order schema, then waits for its list: :meth:`hand` gives it one (and
    returns the :class:`ReadAhead` that owns the worker from then on), :meth:`close` stops it
    when there is none. Either is done once; the other is then a no-op."""

    def __init__(self, pid: int, flags: mmap.mmap, list_fd: int, read_fd: int) -> None:
        self._pid, self._flags, self._list_fd, self._read_fd = pid, flags, list_fd, read_fd
        self._done = False

    @classmethod
    def fork(cls) -> Primed:
        _inherit()
        flags = mmap.mmap(-1, PRIMED_FILES)  # made before the fork: shared with the worker
        list_read, list_write = os.pipe()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            os.close(list_write)
            os.close(read_fd)
            _exit_worker(write_fd, lambda stream: _primed_work(list_read, flags, stream))
        os.close(list_read)
        os.close(write_fd)
        return cls(pid, flags, list_write, read_fd)

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._pid

    def hand(self, files: Sequence[Path]) -> ReadAhead:
        """Give the worker its files (the first :data:`PRIMED_FILES`) and go on at once: the
        list is written by a thread (a long one fills the pipe until the worker reads it)."""
        assert not self._done, "a primed worker is handed its files once"
        self._done = True
        files = list(files[:PRIMED_FILES])
        data = pickle.dumps([os.fspath(path) for path in files], pickle.HIGHEST_PROTOCOL)
        threading.Thread(target=_send, args=(self._list_fd, data), daemon=True).start()
        return ReadAhead(files, self._pid, self._flags, self._read_fd)

    def close(self) -> None:
        """Stop the worker and reap it (when it was never handed its files)."""
        if self._done:
            return
        self._done = True
        os.close(self._list_fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGTERM)
        os.waitpid(self._pid, 0)
        os.close(self._read_fd)
        self._flags.close()


def _send(fd: int, data: bytes) -> None:
    """Write ``data`` to the primed worker's list pipe, then close it (its end of file)."""
    with contextlib.suppress(OSError), os.fdopen(fd, "wb") as out:
        out.write(data)  # OSError: the worker is gone (then the parent examines every file)


def _exit_worker(write_fd: int, work: Callable[[BinaryIO], None]) -> NoReturn:
    """Run ``work`` on the result pipe in the forked worker, then leave without cleanup."""
    code = 0
    try:
        with os.fdopen(write_fd, "wb") as stream:
            work(stream)
    except BaseException:  # noqa: BLE001 - the parent does whatever is left
        code = 1
    finally:
        os._exit(code)


def _primed_work(list_fd: int, flags: mmap.mmap, stream: BinaryIO) -> None:
    """A primed worker: get ready while the parent loads its configuration, then examine the
    files it is handed (none: the parent closed the list, or stops the worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from edi_gateway.errors import GatewayError
    from edi_gateway.ubl import read, read_parties, validate  # noqa: F401 - imported for _work
    from edi_gateway.ubl.schemas import schema_for

    with contextlib.suppress(GatewayError):  # a schema that fails fails again when used
        schema_for("Order")  # what an inbound folder most often holds
    with os.fdopen(list_fd, "rb") as source:
        data = source.read()
    if data:
        names: list[str] = pickle.loads(data)  # noqa: S301 - our own parent's bytes
        _work([Path(name) for name in names], flags, stream)


def _inherit() -> None:
    """Import, before the fork, the modules examining needs that the parent imports anyway on
    its way to processing (the documents, the length check, the hardened parser, the schema
    set, lxml): the worker inherits them instead of importing them a second time, ~150 M
    instructions of its own (ADR 0010). Not the readers (``ubl.read``): the parent needs them
    only for a file it examines itself, so the worker alone imports them."""
    import edi_gateway.pipeline.limits
    import edi_gateway.ubl.validate  # noqa: F401 - with it the schema set and lxml


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # intake reports it


def _read_early(files: Sequence[Path], flags: mmap.mmap) -> dict[int, bytes]:
    """The bytes of the free files, read at once (up to :data:`EARLY_BYTES` in all, files over
    :data:`MAX_FILE` not at all): a poller (``run --once``) moves each file it claims, so what
    is read later may be gone. A file that cannot be read now is tried again in its turn."""
    early: dict[int, bytes] = {}
    budget = EARLY_BYTES
    for index, path in enumerate(files):
        if flags[index] != FREE:
            continue
        try:
            with path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > MAX_FILE or size > budget:
                    continue
                early[index] = data = handle.read()
        except OSError:
            continue
        budget -= len(data)
    return early


def _work(files: Sequence[Path], flags: mmap.mmap, stream: BinaryIO) -> None:
    """The worker's loop: every free file, in order, examined and sent back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    early = _read_early(files, flags)  # before the worker's own imports
    from edi_gateway.domain.documents import DocumentKind
    from edi_gateway.errors import GatewayError
    from edi_gateway.pipeline.limits import fits
    from edi_gateway.ubl.read import interpret
    from edi_gateway.ubl.read_parties import loose_sender_keys
    from edi_gateway.ubl.validate import XsdInvalid, validate_document

    kinds = frozenset(kind.value for kind in DocumentKind)
    for index, path in enumerate(files):
        if flags[index] != FREE:
            continue
        flags[index] = WORKER
        examined: Examined | None = None
        try:
            raw = early.pop(index, None)
            if raw is None and path.stat().st_size <= MAX_FILE:
                raw = path.read_bytes()
            if raw is not None:
                sha, size = hashlib.sha256(raw).hexdigest(), len(raw)
                root = None
                try:
                    root = validate_document(raw, max_size=MAX_FILE, kinds=kinds).root
                    document = interpret(root)
                    root = None  # the tree goes before the document is pickled
                    examined = Examined(sha, size, document, measured=fits(document))
                except XsdInvalid as exc:
                    examined = Examined(sha, size, None, xsd=exc, sender_keys=exc.sender_keys)
                except GatewayError as exc:
                    keys = loose_sender_keys(root) if root is not None else ()
                    error = (exc.code.value, exc.message, exc.line)
                    examined = Examined(sha, size, None, error, sender_keys=keys)
        except Exception:  # noqa: BLE001 - anything unexpected is left to the parent
            examined = None
        if examined is None:
            flags[index] = LEFT
        raw = None  # the parent has its own copy of the bytes
        data = pickle.dumps(examined, protocol=pickle.HIGHEST_PROTOCOL)
        stream.write(_HEAD.pack(index, len(data)) + data)
        stream.flush()
