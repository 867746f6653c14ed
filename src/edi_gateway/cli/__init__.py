"""The face: parses arguments, calls one function, prints text or --json. No logic here.

One module per command group (``messages``, ``orders``, ``outbound``, ``outbox``, ...); this one
only builds the parser and dispatches to the handler the command's module set.

Exit codes: 0 success; 1 a lookup found nothing or is not allowed (an unknown message, a
redrive of a processed one), a file failed `validate`, or a document of an `ingest` failed; 2 bad
usage or configuration, or the store is busy (another `run` holds it) or cannot be reached; 141
when whoever read the output went away (``| head``). `run` exits 0 when it ran: failed
documents are kept, listed in its summary and in `messages list --state failed`. With
``--json``, an error is ``{"error": {"code": ..., "message": ...}}`` on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import io
import logging
import os
import re
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

from edi_gateway.cli import common
from edi_gateway.errors import ConfigError, ErrorCode, GatewayError

GROUPS = (
    "project",
    "running",
    "config",
    "partners",
    "messages",
    "orders",
    "outbound",
    "outbox",
    "report",
    "rules",
    "users",
    "console",
    "purge",
)
"""The command groups, each a module of this package, imported when its commands are parsed:
a command imports its own group only (the others, and what they import, cost start-up)."""
COMMANDS: dict[str, str] = {
    "init": "project",
    "validate": "project",
    "ingest": "running",
    "run": "running",
    "config": "config",
    "partners": "partners",
    "messages": "messages",
    "orders": "orders",
    "respond": "outbound",
    "despatch": "outbound",
    "invoice": "outbound",
    "documents": "outbound",
    "outbox": "outbox",
    "report": "report",
    "rules": "rules",
    "users": "users",
    "console": "console",
    "purge": "purge",
}
"""The group that adds each command (tests/unit/test_cli_parser.py keeps it whole)."""
STORE_CODES = (ErrorCode.STORE_BUSY, ErrorCode.STORE_UNAVAILABLE, ErrorCode.STORE_TOO_NEW)
GC_THRESHOLD = 20_000


def build_parser(groups: Sequence[str] = GROUPS) -> argparse.ArgumentParser:
    """The argument parser for every command (of ``groups``, names of :data:`GROUPS`)."""
    parser = argparse.ArgumentParser(prog="edi-gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    common.global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in groups:
        module: ModuleType = importlib.import_module(f"{__name__}.{group}")
        module.add_commands(sub)
    common.spread_global_options(parser)
    return parser


def _parse_quickly(words: list[str]) -> argparse.Namespace | None:
    """The arguments as the parser of every command would parse them, from a parser of only
    the group that names the first command word (building all ~50 parsers is ~8 ms of every
    command); None when that parser stops (help, ``--version``, a usage error: then the whole
    parser says it) or no word is a command.

    Sound because a command's name belongs to one group: if this parser accepts the words,
    their command is one of its own, which the whole parser would choose with the same
    options (a word that only looks like a command, such as a ``--config`` value, makes it
    stop: the command that follows is not in its group)."""
    group = next((COMMANDS[word] for word in words if word in COMMANDS), None)
    if group is None:
        return None
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            return build_parser((group,)).parse_args(words)
    except SystemExit:
        return None


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked (importlib.metadata costs
    every other command's start-up)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edi-gateway")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def entry() -> NoReturn:
    """The ``edi-gateway`` console script and ``python -m edi_gateway.cli``: :func:`main`, then
    exit with its code, leaving the objects the command made to the operating system.

    At exit the interpreter clears every module and collects the cycles that leaves: for a
    read-only command, whose imports (SQLAlchemy, pydantic, the config models) made ~60,000
    objects, that was ~60 ms, a sixth of its run. ``gc.freeze()`` moves them out of the
    collector's reach first. Exit handlers still run (logging flushes, temporary folders go),
    standard streams are flushed, the store was closed by the command; only the collection of
    garbage the process would hand back anyway is skipped. Not in :func:`main`: a process that
    calls it (the tests) keeps collecting."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (``argv``, else the process's arguments); its exit code."""
    # Intake makes millions of short-lived acyclic objects (lines, rows); CPython's default
    # (a collection every 700 net allocations) spends ~6% of an ingest walking them. Rarer
    # collections, same correctness: cycles are still collected (ADR 0010).
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    words = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in words
    try:
        return _command(words, as_json)
    except KeyboardInterrupt:  # Ctrl-C, even while parsing: one coded line, not a traceback
        _failed(GatewayError(ErrorCode.INTERRUPTED, "stopped by Ctrl-C (SIGINT)"), as_json)
        return common.EXIT_INTERRUPTED


def _command(words: list[str], as_json: bool) -> int:
    """Parse ``words`` and run the command they name (``run`` stops itself on SIGINT)."""
    quick = _parse_quickly(words)
    args = quick if quick is not None else _parse(build_parser(), words, as_json)
    if isinstance(args, int):
        return args
    from edi_gateway.logs import configure_logging

    configure_logging(args.log_format or "text", logging.INFO if args.verbose else logging.WARNING)
    try:
        _refuse_control_characters(args)
        code: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _reader_gone()
    except GatewayError as exc:
        return _failed(exc, as_json)
    except Exception as exc:
        from edi_gateway.store.db import unavailable

        coded = unavailable(exc)
        if coded is None:
            raise
        return _failed(coded, as_json)
    return code


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot carry: a reason, note or carrier holding one would crash the
writer of the document it goes into."""


def _refuse_control_characters(args: argparse.Namespace) -> None:
    """A text argument with a character no document can carry is a ``USAGE`` error naming
    the option, before anything is written."""
    for name, value in vars(args).items():
        for text in _texts(value):
            found = _NOT_XML.search(text)
            if found is not None:
                option = "--" + name.replace("_", "-")
                raise GatewayError(
                    ErrorCode.USAGE,
                    f"{option}: {text!r} holds the control character U+{ord(found.group()):04X}, "
                    "which no document can carry",
                )


def _texts(value: object) -> list[str]:
    """The strings in an argument's value (``--note 1:TEXT`` parses to tuples in a list,
    ``--charge`` to a dataclass)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts(item)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [t for f in dataclasses.fields(value) for t in _texts(getattr(value, f.name))]
    return []


def _parse(
    parser: argparse.ArgumentParser, words: list[str], as_json: bool
) -> argparse.Namespace | int:
    """The parsed arguments; under --json a usage error is a JSON error on stdout (exit 2)."""
    if not as_json:
        return parser.parse_args(words)
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parser.parse_args(words)
    except SystemExit as exc:
        if exc.code in (0, None):
            return 0
        message = said.getvalue().strip().splitlines()[-1:] or ["bad usage"]
        common.error(ErrorCode.USAGE, message[0].split("error: ", 1)[-1], True)
        return common.EXIT_USAGE


def _failed(exc: GatewayError, as_json: bool) -> int:
    if as_json:
        common.error(exc.code, exc.message, True)
    elif isinstance(exc, ConfigError):
        print(f"error: {exc.message}", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    if isinstance(exc, ConfigError) or exc.code in STORE_CODES or exc.code == ErrorCode.USAGE:
        return common.EXIT_USAGE
    return common.EXIT_FAILED


def _reader_gone() -> int:
    """The reader of stdout went away (``| head``): stop quietly, as a shell tool does."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more to flush at exit
    return common.EXIT_PIPE
