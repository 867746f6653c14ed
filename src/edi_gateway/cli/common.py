"""What every command group shares: the global options, ``--json``, paging and filter options,
printing (text or JSON, errors as JSON), and opening the configured gateway. No logic here."""

from __future__ import annotations

import argparse
import functools
import gc
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from edi_gateway.app import Gateway
    from edi_gateway.config import Settings
    from edi_gateway.config.cache import StoreAt
    from edi_gateway.config.validating import Validating
    from edi_gateway.store.db import Store
    from edi_gateway.store.queries import Filters, Page

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C
DEFAULT_LIMIT = 500
Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]
ORDER_REF = "store ID, BUYER:ORDER_ID or an unambiguous order ID"


def global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--config``, ``-v`` and ``--log-format``: on the top parser with their defaults, on
    every subcommand without (so a value given after the subcommand wins, and one given before
    is not reset)."""
    keep: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--config", help="gateway.yaml (default: $EDI_GATEWAY_CONFIG, ./gateway.yaml)", **keep
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress to stderr", **keep
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="log lines as text (default) or one JSON object per line (default for run: "
        "daemon.log_format)",
        **keep,
    )


def spread_global_options(parser: argparse.ArgumentParser) -> None:
    """Accept the global options after any subcommand too (``run --log-format json``)."""
    for sub in _subparsers(parser):
        global_options(sub, top=False)


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if id(child) not in seen:
                    seen.add(id(child))
                    yield child
                    yield from _subparsers(child)


def json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: machine-readable output (and errors as ``{"error": {code, message}}``)."""
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output; errors as JSON on stdout"
    )


def paging(parser: argparse.ArgumentParser) -> None:
    """``--limit`` and ``--offset`` of a list."""
    parser.add_argument(
        "--limit", type=_positive, default=DEFAULT_LIMIT, help=f"rows (default {DEFAULT_LIMIT})"
    )
    parser.add_argument("--offset", type=_not_negative, default=0, help="rows to skip first")


def time_filters(parser: argparse.ArgumentParser, what: str) -> None:
    """``--since`` and ``--until`` (UTC unless the time names its zone)."""
    parser.add_argument(
        "--since", type=utc_time, help=f"{what} at or after, ISO: 2026-11-01 (UTC if no zone)"
    )
    parser.add_argument("--until", type=utc_time, help=f"{what} before, ISO (UTC if no zone)")


def list_filters(parser: argparse.ArgumentParser, what: str) -> None:
    """``--since``, ``--until``, ``--partner`` and ``--order`` (the filters of every list)."""
    time_filters(parser, what)
    parser.add_argument("--partner", help="only those of this partner (its id)")
    parser.add_argument("--order", help=f"only those of this order ({ORDER_REF})")


def list_options(parser: argparse.ArgumentParser, what: str, rows: str) -> None:
    """The options of a list of messages or outbox rows: the filters, ``--code``,
    ``--connector``, paging and ``--json``."""
    list_filters(parser, what)
    parser.add_argument("--code", help=f"only {rows} whose (last) error has this code")
    parser.add_argument("--connector", help=f"only {rows} through this connector")
    paging(parser)
    json_option(parser)


def choice_of(values: list[str]) -> Callable[[str], str]:
    """An argparse type matching ``values`` case-insensitively ('-' or '_' for a space)."""
    canonical = {v.lower(): v for v in values}

    def pick(text: str) -> str:
        return canonical.get(text.lower().replace("-", " ").replace("_", " "), text)

    return pick


def utc_time(text: str) -> datetime:
    """An ISO date or time as an aware datetime (UTC when it names no zone)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _positive(text: str) -> int:
    value = _not_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number of rows above 0")
    return value


def _not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, found {text!r}")
    return value


def emit(data: Any, as_json: bool, text: str) -> int:
    """Print ``data`` as JSON or ``text``; exit code 0."""
    if as_json:
        json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(text)
    return EXIT_OK


def emit_page(page: Page, args: argparse.Namespace, text: str) -> int:
    """A list: its rows (JSON: the list itself), and how many more there are past this page
    (text: a last line; JSON: a line on stderr, so stdout stays the documented list)."""
    more = page.more_text(args.offset)
    if args.json:
        emit(page.rows, True, "")
        if more:
            print(more, file=sys.stderr)
        return EXIT_OK
    return emit(None, False, f"{text}\n{more}" if more else text)


def error(code: str, message: str, as_json: bool) -> None:
    """An error: ``{"error": {"code", "message"}}`` on stdout under --json, else one line on
    stderr."""
    if as_json:
        emit({"error": {"code": code, "message": message}}, True, "")
    else:
        print(f"error: {code}: {message}", file=sys.stderr)


def settings(args: argparse.Namespace) -> Settings:
    """The configuration ``--config`` (or its defaults) names."""
    from edi_gateway.config import config_path, load_config

    return load_config(config_path(args.config))


class Opened:
    """What a read-only command needs: the open store and, loaded only when asked for, the
    settings (not the whole :class:`~edi_gateway.app.Gateway`, whose pipeline imports cost
    start-up; nor, when the config cache says where the store is, pydantic and the models)."""

    def __init__(self, store: Store, settings: Callable[[], Settings]) -> None:
        self.store = store
        self._settings = settings

    @functools.cached_property
    def settings(self) -> Settings:
        """The configuration, loaded on first use."""
        return self._settings()


def with_store(run: Callable[[Opened, argparse.Namespace], int]) -> Handler:
    """A handler that runs ``run`` with the configured store open (read-only commands)."""

    def handle(args: argparse.Namespace) -> int:
        with no_collections():
            at, validating = _store_at(args)
            if at is None:
                configured = settings(args)
                opened = Opened(_open_configured(configured), lambda: configured)
            else:
                opened = Opened(_open_at(at, validating), lambda: settings(args))
            try:
                return run(opened, args)
            finally:
                opened.store.close()

    return handle


def _store_at(args: argparse.Namespace) -> tuple[StoreAt | None, Validating | None]:
    """Where the store is, without validating the config here: from the config cache when it
    knows for certain (docs/adr/0041); else read from the YAML alone, the config then being
    validated meanwhile by a :class:`~edi_gateway.config.validating.Validating` child. None sends
    the command the usual way (validate, then open), which also reports any problem of the
    config."""
    from edi_gateway.config.cache import cached_store
    from edi_gateway.config.locate import config_path
    from edi_gateway.config.validating import Validating
    from edi_gateway.config.where import store_location
    from edi_gateway.errors import ConfigError

    try:
        path = config_path(args.config).absolute()  # expanded already
        raw = path.read_bytes()
    except (ConfigError, OSError):
        return None, None
    known = cached_store(path, raw)
    if known is not None:
        return known, None
    at = store_location(path, raw)
    validating = Validating.start(path, raw) if at is not None else None
    return (at, validating) if validating is not None else (None, None)  # no fork: in line


def _open_at(at: StoreAt, validating: Validating | None) -> Store:
    """The store at ``at``, opened once ``validating`` (if any) has found the config good: a
    config that does not validate is refused before anything is opened (or made)."""
    try:
        from edi_gateway.store.db import open_at  # SQLAlchemy: while the child validates
    except BaseException:
        if validating is not None:
            validating.close()
        raise
    if validating is not None:
        validating.verdict()
    return open_at(at.url, at.lease_seconds)


def _open_configured(configured: Settings) -> Store:
    from edi_gateway.store.db import open_configured

    return open_configured(configured)


@contextmanager
def no_collections() -> Iterator[None]:
    """The cyclic garbage collector paused for the block (a read-only command; ``ingest``
    while it imports and opens the gateway). Its imports (SQLAlchemy, pydantic, the config
    models) make ~60,000 objects that all stay alive, which young collections walked again
    and again (~15-20 ms of the command; ~0.5 G instructions of ``ingest``, whose collections
    during its imports also moved them all through the middle generation). What the block
    itself leaves for the collector is the imports' few thousand, the same for 3 rows as for
    300 (tests/integration/test_startup.py), so pausing costs no memory that grows. On leaving,
    everything goes to the oldest generation at once (``freeze`` + ``unfreeze`` move lists, no
    walk), where full collections still see it, and collecting resumes for a process that
    goes on (the tests; a program exits, ``cli.entry``)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # then the oldest generation, at once: a young collection would walk them
        gc.unfreeze()
        if was:
            gc.enable()


@contextmanager
def gateway(args: argparse.Namespace) -> Iterator[Gateway]:
    """The configured gateway, open for the block."""
    from edi_gateway.app import Gateway

    opened = Gateway.open(settings(args))
    try:
        yield opened
    finally:
        opened.close()


FILTER_KEYS = (
    "since",
    "until",
    "partner",
    "order",
    "code",
    "connector",
    "search",
    "order_type",
    "overdue",
    "attention",
    "needs",
)
"""The arguments of a list that are :class:`~edi_gateway.store.queries.Filters` by name."""


def filters_of(args: argparse.Namespace) -> Filters:
    """The :class:`~edi_gateway.store.queries.Filters` the arguments give (those its parser
    has)."""
    from edi_gateway.store.queries import Filters

    given = vars(args)
    return Filters(
        state=given.get("state") or given.get("status"),
        **{key: given[key] for key in FILTER_KEYS if given.get(key) not in (None, False)},
    )


def listing_of(page_of: str, table_of: str) -> Handler:
    """The handler of a list: the filters given (those of :class:`~edi_gateway.store.queries.
    Filters` its parser has), one page of ``queries.<page_of>``, shown by ``views.<table_of>``
    (by name: the store is imported only when a list is asked for)."""

    def run(opened: Opened, args: argparse.Namespace) -> int:
        from edi_gateway import views
        from edi_gateway.store import queries

        wanted = filters_of(args)
        with opened.store.looking() as conn:  # Core: the ORM costs start-up (queries.py)
            page = getattr(queries, page_of)(conn, wanted, args.limit, args.offset)
        return emit_page(page, args, getattr(views, table_of)(page.rows))

    return with_store(run)


def with_configured(run: Callable[[Opened, argparse.Namespace], int]) -> Handler:
    """A handler that runs ``run`` with the settings loaded and the store they configure open
    (migrated when needed), as :func:`with_gateway` opens them, for a command that writes but
    needs no pipeline: ``outbox flush`` leaves out importing :mod:`edi_gateway.app` (intake,
    processing, rules; ~2% of a CSV bundle flush's start-up, docs/adr/0039)."""

    def handle(args: argparse.Namespace) -> int:
        from edi_gateway.store.db import open_configured

        configured = settings(args)
        store = open_configured(configured)
        try:
            return run(Opened(store, lambda: configured), args)
        finally:
            store.close()

    return handle


def with_gateway(run: Callable[[Gateway, argparse.Namespace], int]) -> Handler:
    """A handler that runs ``run`` with the configured gateway open."""

    def handle(args: argparse.Namespace) -> int:
        with gateway(args) as opened:
            return run(opened, args)

    return handle
