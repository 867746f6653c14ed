"""Supplier replies in the supplier's own CSV / Excel layout -> domain documents.

A column map (YAML data in ``mappings/<supplier>/replies/``) says what a file is and which of
its columns holds each of our fields; :func:`load_map` reads and validates one, and
:func:`read_reply` turns a file's bytes into OrderResponses, DespatchAdvices or Invoices.
Pure functions: no store, no I/O besides reading the map file.

Modules: :mod:`.columns` (map model and loader), :mod:`.tabular` (CSV / XLSX -> rows),
:mod:`.cells` (cell -> text / Decimal / date), :mod:`.rows` (fields of a row, located errors),
:mod:`.build` (rows -> documents, the grouping and status rules).
"""

from edi_gateway.replies.build import read_reply
from edi_gateway.replies.columns import ReplyKind, ReplyMap, load_map, parse_map

__all__ = ["ReplyKind", "ReplyMap", "load_map", "parse_map", "read_reply"]
