"""``edi-gateway partners list``: the trading partners gateway.yaml names. No store involved."""

from __future__ import annotations

import argparse

from edi_gateway.cli.common import Sub, emit_page, json_option, paging, settings


def add_commands(sub: Sub) -> None:
    """The ``partners`` command group."""
    partners = sub.add_parser("partners", help="the trading partners of gateway.yaml")
    psub = partners.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = psub.add_parser(
        "list", help="partners with their role, Peppol endpoint, connectors and checks"
    )
    listing.add_argument("--partner", help="only this partner (its id)")
    paging(listing)
    json_option(listing)
    listing.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    from edi_gateway import views
    from edi_gateway.store.queries import Page

    rows = views.partner_rows(settings(args), args.partner)
    page = Page.of(rows, args.limit, args.offset)
    return emit_page(page, args, views.partners_table(page.rows))
