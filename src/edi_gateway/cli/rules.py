"""``edi-gateway rules install PATH`` and ``rules list``: the official rule releases in use."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

Printer = Callable[[Any, bool, str], int]


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    json_option: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The ``rules`` command group."""
    rules = sub.add_parser("rules", help="install and list the official Peppol rule releases")
    rsub = rules.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = rsub.add_parser(
        "install",
        help="install a release (its folder, or its zip / tar archive as published) after "
        "checking every file against the sha256 this version knows",
    )
    install.add_argument("path", type=Path)
    json_option(install)
    listing = rsub.add_parser("list", help="the installed releases, verified, and the one in use")
    json_option(listing)


def handle(args: argparse.Namespace, emit: Printer) -> int:
    """Run one ``rules`` action against the configured ``rules.dir``."""
    from edi_gateway.config import config_path, load_config
    from edi_gateway.rules.install import install, listing

    settings = load_config(config_path(args.config)).rules
    if args.action == "install":
        release = install(args.path, settings.dir)
        data = {
            "installed": release.name,
            "path": str(release.path),
            "rule_sets": sorted(release.sets),
        }
        text = (
            f"installed Peppol rule release {release.name} in {release.path} "
            f"({len(release.sets)} rule sets, verified and compiled); running gateways use it "
            "after a restart"
        )
        return emit(data, args.json, text)
    rows = listing(settings.dir, settings.release)
    lines = [
        f"{'*' if r.active else ' '} {r.name}  {r.rule_sets} rule sets  installed {r.installed_at}"
        + ("" if r.verified else f"  NOT VERIFIED: {r.problem}")
        for r in rows
    ]
    text = "\n".join(lines) if lines else f"no rule release installed in {settings.dir}"
    return emit({"dir": str(settings.dir), "releases": [asdict(r) for r in rows]}, args.json, text)
