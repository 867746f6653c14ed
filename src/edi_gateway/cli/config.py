"""``edi-gateway config check``: every problem of a gateway.yaml with its line; nothing runs."""

from __future__ import annotations

import argparse

from edi_gateway.cli.common import EXIT_OK, EXIT_USAGE, Sub, emit, json_option


def add_commands(sub: Sub) -> None:
    """The ``config`` command group."""
    config = sub.add_parser("config", help="check gateway.yaml without running anything")
    csub = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = csub.add_parser(
        "check",
        help="list every problem of the config (--config) with its YAML line; exit 0 when "
        "there is none, 2 otherwise; no store is opened, nothing is processed",
    )
    json_option(check)
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from edi_gateway import views
    from edi_gateway.config import check_config, config_path

    path = config_path(args.config)
    problems = check_config(path)
    data = {"config": str(path.absolute()), "ok": not problems, "problems": problems}
    emit(data, args.json, views.config_check_text(data))
    return EXIT_USAGE if problems else EXIT_OK
