"""``edi-gateway users add|list|remove``: who may sign in to the web console. No logic here.

The password is read from standard input (one line; asked twice without echo on a terminal),
never from the command line, where other users of the machine could read it."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from edi_gateway.cli.common import Sub, emit, json_option, with_gateway
from edi_gateway.errors import ErrorCode, GatewayError

if TYPE_CHECKING:
    from edi_gateway.app import Gateway

ROLES = ["viewer", "operator", "admin"]


def add_commands(sub: Sub) -> None:
    """The ``users`` command group."""
    users = sub.add_parser("users", help="who may sign in to the web console, with which role")
    usub = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = usub.add_parser(
        "add",
        help="add a console user; the password is read from standard input",
        description="Add a console user. The password (at least 12 characters) is read from "
        "standard input, e.g. `edi-gateway users add ann --role operator < secret-file`; on a "
        "terminal it is asked for twice, without echo.",
    )
    add.add_argument("name", help="the user name to sign in with")
    add.add_argument(
        "--role", required=True, choices=ROLES, help="viewer reads; operator and admin also act"
    )
    add.add_argument(
        "--replace", action="store_true", help="the user exists: set a new password and role"
    )
    json_option(add)
    add.set_defaults(handler=with_gateway(_add))
    listing = usub.add_parser("list", help="console users, their roles and live sessions")
    json_option(listing)
    listing.set_defaults(handler=with_gateway(_list))
    remove = usub.add_parser("remove", help="remove a console user and end their sessions")
    remove.add_argument("name", help="the user name")
    json_option(remove)
    remove.set_defaults(handler=with_gateway(_remove))


def _password() -> str:
    """The new password from standard input (asked twice, hidden, on a terminal)."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise GatewayError(ErrorCode.USAGE, "the two passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise GatewayError(ErrorCode.USAGE, "no password on standard input")
    return line.rstrip("\r\n")


def _add(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.accounts import add_user

    data = add_user(gateway.store, args.name, args.role, _password(), replace=args.replace)
    return emit(data, args.json, f"user {data['name']} ({data['role']}) can sign in")


def _list(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.accounts import list_users
    from edi_gateway.views import table

    rows = list_users(gateway.store)
    columns = ["name", "role", "created_at", "password_set_at", "sessions"]
    return emit(rows, args.json, table(rows, columns))


def _remove(gateway: Gateway, args: argparse.Namespace) -> int:
    from edi_gateway.accounts import remove_user

    data = remove_user(gateway.store, args.name)
    text = f"removed user {data['name']} ({data['sessions_ended']} session(s) ended)"
    return emit(data, args.json, text)
