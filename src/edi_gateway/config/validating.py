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
    it. The child only reads the config and what it names and writes the cache, never the
    store; it prints nothing."""

    def __init__(self, path: Path, pid: int, fd: int) -> None:
        self._path, self._pid, self._fd = path, pid, fd

    @classmethod
    def start(cls, path: Path) -> Validating | None:
        """Fork the child (None where there is no ``fork``: validate in line)."""
        if not hasattr(os, "fork"):
            return None
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _validate(path, write_fd)
        os.close(write_fd)
        return cls(path, pid, read_fd)

    def verdict(self) -> None:
        """Wait for the child; raise the ConfigError it met. A child that ended without a word
        (killed) leaves it to the caller's own process: it validates then, in line."""
        with os.fdopen(self._fd, "rb") as pipe:
            said = pipe.read()
        os.waitpid(self._pid, 0)
        if said == _GOOD:
            return
        if said.startswith(_BAD):
            raise ConfigError(said[len(_BAD) :].decode("utf-8"))
        from edi_gateway.config.load import load_config

        load_config(self._path)

    def close(self) -> None:
        """Stop and reap the child when its verdict is no longer wanted."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGTERM)
        os.waitpid(self._pid, 0)
        os.close(self._fd)


_GOOD, _BAD = b"ok", b"error:"


def _validate(path: Path, fd: int) -> NoReturn:
    """The child of :class:`Validating`: its verdict on the pipe, then out without cleanup."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        from edi_gateway.config.load import load_config

        try:
            load_config(path)
            said = _GOOD
        except ConfigError as exc:
            said = _BAD + exc.message.encode("utf-8")
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(said)
        code = 0
    finally:  # anything else: no word, and the parent validates in line
        os._exit(code)
