"""The config validated in a forked child while a read-only command imports the store
(config/where.py; docs/adr/0041, amendment)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import NoReturn

from edi_gateway.errors import ConfigError

__all__ = ["Validating"]


class Validating:
    """The config ``path`` validated (:func:`~edi_gateway.config.load.load_config`, which
    caches what passes) in a forked child while the caller gets on; :meth:`verdict` waits for
    it. The child judges the bytes the caller read (``raw``), not the file again: a config
    saved meanwhile must not have the store of bytes that never validated opened. It only
    reads what the config names and writes the cache, never the store; it prints nothing."""

    def __init__(self, path: Path, raw: bytes, pid: int, fd: int) -> None:
        self._path, self._raw, self._pid, self._fd = path, raw, pid, fd

    @classmethod
    def start(cls, path: Path, raw: bytes) -> Validating | None:
        """Fork the child (None where there is no ``fork``, or it fails: the user's process
        limit, memory, descriptors; then the caller validates in line)."""
        if not hasattr(os, "fork"):
            return None
        try:
            read_fd, write_fd = os.pipe()
        except OSError:
            return None
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return None
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _validate(path, raw, write_fd)
        os.close(write_fd)
        return cls(path, raw, pid, read_fd)

    def verdict(self) -> None:
        """Wait for the child; raise the ConfigError it met. A child that ended without a word
        (killed) leaves it to the caller's own process: it validates then, in line. Interrupted
        while waiting (Ctrl-C), the child is stopped and reaped, not left running."""
        try:
            with os.fdopen(self._fd, "rb") as pipe:
                said = pipe.read()
        except BaseException:
            self._stop()
            raise
        os.waitpid(self._pid, 0)
        if said == _GOOD:
            return
        if said.startswith(_BAD):
            raise ConfigError(said[len(_BAD) :].decode("utf-8"))
        from edi_gateway.config.load import load_config

        load_config(self._path, self._raw)

    def close(self) -> None:
        """Stop and reap the child when its verdict is no longer wanted."""
        self._stop()
        os.close(self._fd)

    def _stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGTERM)
        os.waitpid(self._pid, 0)


_GOOD, _BAD = b"ok", b"error:"


def _validate(path: Path, raw: bytes, fd: int) -> NoReturn:
    """The child of :class:`Validating`: its verdict on the pipe, then out without cleanup."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        # stopped (close): unwound, so a cache entry being written leaves no temporary file
        signal.signal(signal.SIGTERM, _stopped)
        from edi_gateway.config.load import load_config

        try:
            load_config(path, raw)
            said = _GOOD
        except ConfigError as exc:
            said = _BAD + exc.message.encode("utf-8")
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(said)
        code = 0
    finally:  # anything else: no word, and the parent validates in line
        os._exit(code)


def _stopped(signum: int, frame: object) -> NoReturn:
    raise SystemExit(1)
