"""``edi-gateway rules install PATH`` and ``rules list``: the official rule releases in use."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from edi_gateway.cli.common import Sub, emit, json_option, settings


def add_commands(sub: Sub) -> None:
    """The ``rules`` command group."""
    rules = sub.add_parser("rules", help="install and list the official Peppol rule releases")
    rsub = rules.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = rsub.add_parser(
        "install",
        help="install a release (its folder, or its zip / tar archive as published) after "
        "checking every file against the sha256 this version knows",
    )
    install.add_argument("path", type=Path, help="the release's folder, zip or tar archive")
    json_option(install)
    install.set_defaults(handler=handle)
    listing = rsub.add_parser("list", help="the installed releases, verified, and the one in use")
    json_option(listing)
    listing.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run one ``rules`` action against the configured ``rules.dir`` (no store involved)."""
    from edi_gateway.rules.install import install, listing

    rules = settings(args).rules
    if args.action == "install":
        release = install(args.path, rules.dir)
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
    rows = listing(rules.dir, rules.release)
    lines = [
        f"{'*' if r.active else ' '} {r.name}  {r.rule_sets} rule sets  installed {r.installed_at}"
        + ("" if r.verified else f"  NOT VERIFIED: {r.problem}")
        for r in rows
    ]
    text = "\n".join(lines) if lines else f"no rule release installed in {rules.dir}"
    return emit({"dir": str(rules.dir), "releases": [asdict(r) for r in rows]}, args.json, text)
