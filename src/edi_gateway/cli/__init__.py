"""The face: parses arguments, calls one function, prints text or --json. No logic here.

Exit codes: 0 success; 1 a lookup found nothing, a file failed `validate`, or a document of
an `ingest` failed; 2 bad usage or configuration, or the store is busy (another `run` holds
it) or cannot be reached. `run` exits 0 when it ran: failed documents
are kept, listed in its summary and in `messages list --state failed`.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edi_gateway.cli import outbound as cli_outbound
from edi_gateway.cli import rules as cli_rules
from edi_gateway.errors import ConfigError, ErrorCode, GatewayError

if TYPE_CHECKING:
    from edi_gateway.app import Gateway, Outcome
    from edi_gateway.pipeline.readahead import ReadAhead

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STORE_CODES = (ErrorCode.STORE_BUSY, ErrorCode.STORE_UNAVAILABLE)
GC_THRESHOLD = 20_000


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    parser = argparse.ArgumentParser(prog="edi-gateway", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", help="gateway.yaml (default: $EDI_GATEWAY_CONFIG, ./gateway.yaml)"
    )
    _logging_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="write a starter gateway.yaml and folders")
    init.add_argument("directory", type=Path)
    init.add_argument("--samples", type=Path, help="copy these sample documents into the inbox")

    validate = sub.add_parser("validate", help="check files against the UBL 2.1 XSDs (no store)")
    validate.add_argument("files", nargs="+", type=Path)
    validate.add_argument("--max-size-mb", type=int, default=64)
    _json(validate)

    ingest = sub.add_parser("ingest", help="one-shot intake and processing of files or folders")
    ingest.add_argument("paths", nargs="+", type=Path)
    _json(ingest)

    run = sub.add_parser("run", help="poll every configured connector")
    run.add_argument("--once", action="store_true", help="one cycle, then exit")
    _json(run)

    messages = sub.add_parser("messages", help="list, inspect and redrive messages")
    msub = messages.add_subparsers(dest="action", required=True, metavar="ACTION")
    mlist = msub.add_parser("list")
    mlist.add_argument(
        "--state", choices=["received", "processed", "orphan", "duplicate", "failed"]
    )
    mlist.add_argument("--since", type=_utc_time, help="ISO time, e.g. 2026-11-01 (UTC if no zone)")
    _json(mlist)
    mshow = msub.add_parser("show")
    mshow.add_argument("id", type=int)
    _json(mshow)
    redrive = msub.add_parser("redrive")
    redrive.add_argument("ids", nargs="*", type=int)
    redrive.add_argument("--state", choices=["failed", "orphan", "received"])
    redrive.add_argument("--dry-run", action="store_true")
    _json(redrive)

    orders = sub.add_parser("orders", help="list and inspect orders")
    osub = orders.add_subparsers(dest="action", required=True, metavar="ACTION")
    olist = osub.add_parser("list")
    olist.add_argument("--status")
    olist.add_argument("--partner")
    olist.add_argument("--search")
    _json(olist)
    oshow = osub.add_parser("show")
    oshow.add_argument("ref", help="store ID, BUYER:ORDER_ID or an unambiguous order ID")
    _json(oshow)
    onote = osub.add_parser("note", help="add an operator's note to an order's history")
    onote.add_argument("ref", help="store ID, BUYER:ORDER_ID or an unambiguous order ID")
    onote.add_argument("text")
    _json(onote)
    orelease = osub.add_parser("release", help="let a held order go to its supplier")
    orelease.add_argument("ref", help="store ID, BUYER:ORDER_ID or an unambiguous order ID")
    _json(orelease)
    _command_groups(sub, osub)
    return parser


def _command_groups(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    orders: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """The command groups that live in modules of their own."""
    cli_outbound.add_commands(sub, _json, orders=orders)
    cli_rules.add_commands(sub, _json)


def _logging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="log lines as text (default) or one JSON object per line (default for run: "
        "daemon.log_format)",
    )


def _utc_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edi-gateway`` console script."""
    # Intake makes millions of short-lived acyclic objects (lines, rows); CPython's default
    # (a collection every 700 net allocations) spends ~6% of an ingest walking them. Rarer
    # collections, same correctness: cycles are still collected (ADR 0010).
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    args = build_parser().parse_args(argv)
    from edi_gateway.logs import configure_logging

    configure_logging(args.log_format or "text", logging.INFO if args.verbose else logging.WARNING)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.code in STORE_CODES else EXIT_FAILED
    except Exception as exc:
        unavailable = _store_unavailable(exc)
        if unavailable is None:
            raise
        print(f"error: {unavailable}", file=sys.stderr)
        return EXIT_USAGE


def _store_unavailable(exc: Exception) -> GatewayError | None:
    """A store that cannot be reached, or stayed locked past the wait, as one coded line."""
    from edi_gateway.errors import first_line
    from edi_gateway.store.db import transient

    if not transient(exc):
        return None
    first = first_line(exc)
    if "locked" in first or "busy" in first:
        return GatewayError(
            ErrorCode.STORE_BUSY,
            f"the store is busy ({first}): another edi-gateway kept it locked; try again",
        )
    return GatewayError(ErrorCode.STORE_UNAVAILABLE, f"the store cannot be used: {first}")


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "init":
        return _init(args)
    if args.command == "validate":
        return _validate(args)
    if args.command == "rules":
        return cli_rules.handle(args, _print)
    ahead = None
    if args.command == "ingest":  # before the heavy imports below: see pipeline/readahead.py
        from edi_gateway.pipeline.readahead import ReadAhead, inbound_files

        args.paths = list(inbound_files(args.paths))  # listed once, the same for both sides
        ahead = ReadAhead.start(args.paths)
    lock = None
    try:
        from edi_gateway.app import Gateway
        from edi_gateway.config import config_path, load_config

        settings = load_config(config_path(args.config))
        if args.command == "run":  # one daemon per store: before the store is even opened
            from edi_gateway.store.instance import hold_store

            lock = hold_store(settings.store.url)
        gateway = Gateway.open(settings)
        try:
            return _with_gateway(gateway, args, ahead)
        finally:
            gateway.close()
    finally:
        if lock is not None:
            lock.release()
        if ahead is not None:
            ahead.close()


def _with_gateway(
    gateway: Gateway, args: argparse.Namespace, ahead: ReadAhead | None = None
) -> int:
    from edi_gateway import views

    if args.command == "ingest":
        progress = views.progress_bar(args.paths)
        outcome = gateway.ingest(args.paths, progress=progress, ahead=ahead)
        return _emit_outcome(gateway, outcome, args.json)
    if args.command == "run":
        from edi_gateway.daemon import run

        json_logs = _daemon_logging(gateway, args)
        quiet = args.json or args.once or json_logs
        outcome = run(gateway, once=args.once, report=views.reporter(gateway, quiet=quiet))
        _emit_outcome(gateway, outcome, args.json)
        return EXIT_OK  # failed documents are kept and listed; the run itself succeeded
    if args.command == "orders" and args.action in ("note", "release", "cancel"):
        return _order_action(gateway, args)
    if args.command in cli_outbound.COMMANDS:
        return cli_outbound.handle(gateway, args, _print)
    if args.command == "messages" and args.action == "redrive":
        if not args.ids and not args.state:
            raise ConfigError("messages redrive needs message IDs or --state failed|orphan")
        ids = gateway.redrive(args.ids, state=args.state, dry_run=args.dry_run)
        data: Any = {"redriven" if not args.dry_run else "would_redrive": ids}
        if not args.dry_run:
            data["messages"] = views.message_rows(gateway, ids)
        return _print(data, args.json, views.redrive_text(data))
    with gateway.store.session() as session:
        data, text = views.query(session, args)
    return _print(data, args.json, text)


def _daemon_logging(gateway: Gateway, args: argparse.Namespace) -> bool:
    """Logging for ``run``: its format from --log-format, else daemon.log_format; its level
    daemon.log_level (``run --once`` logs warnings only unless -v). True for JSON lines."""
    from edi_gateway.logs import LEVELS, configure_logging

    daemon = gateway.settings.daemon
    fmt = args.log_format or daemon.log_format
    level = LEVELS[daemon.log_level] if not args.once else logging.WARNING
    configure_logging(fmt, min(level, logging.INFO) if args.verbose else level)
    return fmt == "json"


def _order_action(gateway: Gateway, args: argparse.Namespace) -> int:
    if args.action == "cancel":
        from edi_gateway.cli.cancel import cancel

        return cancel(gateway, args, _print)
    if args.action == "note":
        order_id = gateway.note(args.ref, args.text)
        return _print({"order_id": order_id, "note": args.text}, args.json, "noted")
    from edi_gateway.app import operator_name
    from edi_gateway.outbound.forward import release

    done = release(gateway.store, gateway.settings, args.ref, actor=operator_name())
    states = ", ".join(f"{k}: {v}" for k, v in done.states.items())
    data = {"order_id": done.order_id, "order": done.order_number, "forwards": done.states}
    return _print(data, args.json, f"released {done.order_number} ({states})")


def _emit_outcome(gateway: Gateway, outcome: Outcome, as_json: bool) -> int:
    from edi_gateway import views

    data = views.outcome_data(gateway, outcome)
    _print(data, as_json, views.outcome_text(data))
    return EXIT_FAILED if outcome.failed else EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from edi_gateway.starter import init_project

    written = init_project(args.directory, args.samples)
    print(f"initialised {args.directory} ({len(written)} files and folders)")
    print(f"next: edi-gateway --config {args.directory / 'gateway.yaml'} run --once")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from edi_gateway import views

    results = views.validate_files(args.files, args.max_size_mb * 1024 * 1024)
    bad = [r for r in results if not r["valid"]]
    _print(
        {"files": results, "valid": len(results) - len(bad), "invalid": len(bad)},
        args.json,
        views.validate_text(results),
    )
    return EXIT_FAILED if bad else EXIT_OK


def _print(data: Any, as_json: bool, text: str) -> int:
    if as_json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(text)
    return EXIT_OK
