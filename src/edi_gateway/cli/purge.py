"""``edi-gateway purge --before DATE | purge restore FILE | purge history``: retention
(docs/adr/0037). No logic here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edi_gateway.cli.common import Sub, emit, json_option, utc_time, with_gateway

if TYPE_CHECKING:
    from edi_gateway.app import Gateway


def add_commands(sub: Sub) -> None:
    """The ``purge`` command group."""
    purge = sub.add_parser(
        "purge",
        help="remove (and archive) finished orders and dismissed messages; restore; history",
        description="Without an action: purge what finished before --before (Closed, Cancelled "
        "and Fully invoiced orders with everything of theirs, dismissed messages), archived "
        "into a file `purge restore` brings back.",
    )
    purge.add_argument(
        "--before",
        type=utc_time,
        metavar="DATE",
        help="what finished (last activity) before this ISO date or time (UTC unless it says)",
    )
    purge.add_argument("--dry-run", action="store_true", help="count what would go, change nothing")
    where = purge.add_mutually_exclusive_group()
    where.add_argument(
        "--archive-dir", type=Path, help="the archive's folder (default: retention.archive_dir)"
    )
    where.add_argument(
        "--no-archive", action="store_true", help="purge without an archive: it cannot be restored"
    )
    purge.add_argument(
        "--batch-size", type=int, default=200, help="orders per transaction (default 200)"
    )
    json_option(purge)
    psub = purge.add_subparsers(dest="action", metavar="ACTION")
    again = psub.add_parser("restore", help="put back every row a purge archive holds")
    again.add_argument("file", type=Path, help="the archive (purge-<run>-<time>.jsonl)")
    json_option(again)
    history = psub.add_parser("history", help="every purge: when, who, up to when, what, where")
    history.add_argument("--limit", type=int, default=50, help="the latest N runs (default 50)")
    json_option(history)
    purge.set_defaults(handler=with_gateway(_dispatch))


def _dispatch(gateway: Gateway, args: argparse.Namespace) -> int:
    if args.action == "restore":
        return _restore(gateway, args)
    if args.action == "history":
        return _history(gateway, args)
    return _purge(gateway, args)


def _purge(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.app import operator_name
    from edi_gateway.errors import ErrorCode, GatewayError
    from edi_gateway.store.purge import purge

    if args.before is None:
        raise GatewayError(ErrorCode.USAGE, "purge needs --before DATE (or an action)")
    kept = gateway.settings.retention
    folder: Path | None = args.archive_dir or (kept.archive_dir if kept else None)
    if folder is None and not (args.no_archive or args.dry_run):
        raise GatewayError(
            ErrorCode.USAGE,
            "where should the purged rows be archived? Give --archive-dir DIR (or set "
            "retention.archive_dir), or --no-archive to purge without a way back",
        )
    done = purge(
        gateway.store,
        args.before,
        actor=f"cli {operator_name()}",
        archive_dir=None if args.no_archive else folder,
        dry_run=args.dry_run,
        batch=args.batch_size,
    )
    data = done.as_dict()
    return emit(data, args.json, _summary_text(data))


def _summary_text(data: dict[str, Any]) -> str:
    counts: dict[str, int] = data["counts"]
    verb = "would purge" if data["dry_run"] else f"purge run #{data['run']} removed"
    if not counts:
        return f"{verb} nothing: nothing finished before {data['before']}"
    width = max(len(name) for name in counts)
    lines = [f"{verb} (finished before {data['before']}):"]
    lines += [f"  {name:<{width}}  {n:>8}" for name, n in counts.items()]
    lines.append(f"last activity from {data['oldest']} to {data['newest']}")
    if data["archive"]:
        lines.append(f"archive {data['archive']} (sha256 {data['archive_sha256']})")
    elif not data["dry_run"]:
        lines.append("no archive: what went cannot be restored")
    return "\n".join(lines)


def _restore(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.store.purge import restore

    done = restore(gateway.store, args.file)
    counts: dict[str, int] = done["restored"]
    text = [f"restored from {done['archive']} (purge run #{done['run']}):"]
    text += [f"  {name}  {n}" for name, n in counts.items()] or ["  nothing: every row is there"]
    if done["skipped_batches"]:
        text.append(f"{done['skipped_batches']} batch(es) already in the store: left as they are")
    if done["incomplete_last_batch"]:
        text.append("the archive ends in a batch cut off by a crash: it was never purged")
    return emit(done, args.json, "\n".join(text))


def _history(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.store.purge import runs

    found = runs(gateway.store, max(args.limit, 1))
    lines = [
        f"#{r['id']} {r['state']:<11} {r['started_at']} by {r['actor']}: before {r['before']}, "
        f"{r['counts'].get('orders', 0)} orders, {r['counts'].get('messages', 0)} messages"
        + (f", archive {r['archive']} sha256 {r['archive_sha256']}" if r["archive"] else "")
        + (f", restored {r['restored_at']}" if r["restored_at"] else "")
        + (f", error: {r['error']}" if r["error"] else "")
        for r in found
    ]
    return emit(found, args.json, "\n".join(lines) or "no purge yet")
