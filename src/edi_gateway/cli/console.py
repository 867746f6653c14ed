"""``edi-gateway console``: the web console alone, without polling. No logic here.

``edi-gateway run`` serves the same console on ``daemon.http``; this command is for looking
(and acting) while no daemon runs here, e.g. beside one that runs elsewhere on the same store.
"""

from __future__ import annotations

import argparse

from edi_gateway.cli.common import EXIT_OK, Sub, gateway


def add_commands(sub: Sub) -> None:
    """The ``console`` command."""
    console = sub.add_parser(
        "console",
        help="serve the web console alone (no polling), until Ctrl-C or SIGTERM",
        description="Serve the web console (sign in with a user of `edi-gateway users add`). "
        "Host and port default to daemon.http of gateway.yaml, else 127.0.0.1:9464.",
    )
    console.add_argument("--host", help="the address to listen on (default: daemon.http.host)")
    console.add_argument(
        "--port", type=int, help="the TCP port, 0 for any free one (default: daemon.http.port)"
    )
    console.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from edi_gateway.config.daemon import HttpSettings
    from edi_gateway.daemon.http import status_app
    from edi_gateway.web import console_app
    from edi_gateway.web.pages import store_health
    from edi_gateway.web.server import bind, serve_forever

    with gateway(args) as opened:
        http = opened.settings.daemon.http or HttpSettings()
        host = args.host or http.host
        port = http.port if args.port is None else args.port
        sock = bind(host, port)
        health = store_health(opened)
        app = status_app(health, None, console_app(opened, http.console, health=health))
        bound_host, bound_port = sock.getsockname()[:2]
        print(f"console on http://{bound_host}:{bound_port}/ (Ctrl-C stops it)", flush=True)
        serve_forever(app, sock)
    return EXIT_OK
