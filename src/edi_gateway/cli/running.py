"""``edi-gateway ingest`` and ``run``: documents in, processed, reacted to. No logic here."""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edi_gateway.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Sub,
    emit,
    gateway,
    json_option,
    no_collections,
)
from edi_gateway.errors import ErrorCode, GatewayError

if TYPE_CHECKING:
    from edi_gateway.app import Gateway, Outcome
    from edi_gateway.config import Settings
    from edi_gateway.pipeline.readahead import Primed, ReadAhead


def add_commands(sub: Sub) -> None:
    """``ingest`` and ``run``."""
    ingest = sub.add_parser("ingest", help="one-shot intake and processing of files or folders")
    ingest.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="files, or folders (every *.xml)"
    )
    json_option(ingest)
    ingest.set_defaults(handler=_ingest)

    run = sub.add_parser("run", help="poll every configured connector")
    run.add_argument("--once", action="store_true", help="one cycle, then exit")
    json_option(run)
    run.set_defaults(handler=_run)


def _ingest(args: argparse.Namespace) -> int:
    # Before the heavy imports of opening a gateway: see pipeline/readahead.py.
    from edi_gateway.pipeline.readahead import ReadAhead, inbound_files

    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        raise GatewayError(ErrorCode.USAGE, f"no such file or folder: {', '.join(missing)}")
    args.paths = list(inbound_files(args.paths))  # listed once, the same for both sides
    ahead = ReadAhead.start(args.paths)
    try:
        with contextlib.ExitStack() as stack:
            with no_collections():  # what loads and opens here lives as long as the process
                from edi_gateway import views

                opened = stack.enter_context(gateway(args))
            progress = views.progress_bar(args.paths)
            outcome = opened.ingest(args.paths, progress=progress, ahead=ahead)
            return _emit_outcome(opened, outcome, args.json)
    finally:
        if ahead is not None:
            ahead.close()


def _run(args: argparse.Namespace) -> int:
    from edi_gateway.cli.common import settings

    # --once: the read-ahead worker is forked before anything is loaded, as ingest's is: it
    # gets ready while the configuration loads, then reads the waiting files while the heavy
    # modules (SQLAlchemy, the pipeline, the daemon) are imported. It only reads, so it may
    # start before the store is taken (and is stopped if it cannot be).
    ahead = primed = None
    if args.once:
        from edi_gateway.pipeline.readahead import ReadAhead

        primed = ReadAhead.prime()
    try:
        with no_collections():  # the configuration lives as long as the process
            configured = settings(args)
        ahead = _read_ahead(configured, primed) if args.once else None
    finally:
        if ahead is None and primed is not None:
            primed.close()  # nothing worth reading ahead, or the configuration failed
    try:
        from edi_gateway.store.instance import hold_store

        lock = hold_store(configured.store.url)  # one daemon per store: before it is opened
        try:
            _run_daemon(args, configured, ahead)
        finally:
            lock.release()
    finally:
        if ahead is not None:
            ahead.close()
    return EXIT_OK  # failed documents are kept and listed; the run itself succeeded


def _run_daemon(args: argparse.Namespace, configured: Settings, ahead: ReadAhead | None) -> None:
    with no_collections():  # what loads and opens here lives as long as the process
        from edi_gateway import views
        from edi_gateway.app import Gateway
        from edi_gateway.daemon import run

        opened = Gateway.open(configured)
    try:
        json_logs = _daemon_logging(opened, args)
        quiet = args.json or args.once or json_logs
        report = views.reporter(opened, quiet=quiet)
        outcome = run(opened, once=args.once, report=report, ahead=ahead)
        _emit_outcome(opened, outcome, args.json, deliveries=True)
    finally:
        opened.close()


def _read_ahead(configured: Settings, primed: Primed | None) -> ReadAhead | None:
    """``run --once``: a worker examining the files waiting in the inbound folders (in the
    order they are polled) while the store opens and the cycle runs; see
    pipeline/readahead.py. Nothing is claimed here: the poll claims as always. ``primed``:
    the worker, forked already, to hand the files to."""
    from edi_gateway.pipeline.readahead import ReadAhead
    from edi_gateway.transports.folder import FolderInbound
    from edi_gateway.transports.folder_spec import FolderConnector

    files = [
        path
        for conn in configured.connectors
        if isinstance(conn, FolderConnector) and conn.direction == "in"
        for path in FolderInbound(conn).waiting_paths()
    ]
    return ReadAhead.start(files, primed)


def _daemon_logging(gateway: Gateway, args: argparse.Namespace) -> bool:
    """Logging for ``run``: its format from --log-format, else daemon.log_format; its level
    daemon.log_level (``run --once`` logs warnings only unless -v). True for JSON lines."""
    from edi_gateway.logs import LEVELS, configure_logging

    daemon = gateway.settings.daemon
    fmt = args.log_format or daemon.log_format
    level = LEVELS[daemon.log_level] if not args.once else logging.WARNING
    configure_logging(fmt, min(level, logging.INFO) if args.verbose else level)
    return fmt == "json"


def _emit_outcome(
    gateway: Gateway, outcome: Outcome, as_json: bool, *, deliveries: bool = False
) -> int:
    """The summary; ``deliveries`` (``run``, which delivers): with the outbox's state."""
    from edi_gateway import views

    data = views.outcome_data(gateway, outcome, deliveries=deliveries)
    emit(data, as_json, views.outcome_text(data))
    return EXIT_FAILED if outcome.failed else EXIT_OK
