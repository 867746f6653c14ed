"""``edi-gateway init`` and ``validate``: a starter project, and files checked without a store."""

from __future__ import annotations

import argparse
from pathlib import Path

from edi_gateway.cli.common import EXIT_FAILED, EXIT_OK, Sub, emit, json_option


def add_commands(sub: Sub) -> None:
    """``init`` and ``validate``."""
    init = sub.add_parser("init", help="write a starter gateway.yaml and folders")
    init.add_argument("directory", type=Path, help="the folder to create (or fill)")
    init.add_argument("--samples", type=Path, help="copy these sample documents into the inbox")
    init.set_defaults(handler=_init)

    validate = sub.add_parser("validate", help="check files against the UBL 2.1 XSDs (no store)")
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE", help="UBL files")
    validate.add_argument(
        "--max-size-mb", type=int, default=64, help="refuse larger files (default 64)"
    )
    json_option(validate)
    validate.set_defaults(handler=_validate)


def _init(args: argparse.Namespace) -> int:
    from edi_gateway.starter import init_project

    written = init_project(args.directory, args.samples)
    config = args.directory / "gateway.yaml"
    print(f"initialised {args.directory} ({len(written)} files and folders)")
    print(f"next: edi-gateway --config {config} config check")
    print(f"then: edi-gateway --config {config} run --once")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from edi_gateway import views

    results = views.validate_files(args.files, args.max_size_mb * 1024 * 1024)
    bad = [r for r in results if not r["valid"]]
    emit(
        {"files": results, "valid": len(results) - len(bad), "invalid": len(bad)},
        args.json,
        views.validate_text(results),
    )
    return EXIT_FAILED if bad else EXIT_OK
