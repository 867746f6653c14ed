"""A seeded mutation engine for the promise "a bad message fails alone", and its oracle.

Seeds are read at run time, never copied into this repository: every XSD-valid UBL instance of
``../shared/corpus`` (``MANIFEST.tsv``) whose root type the gateway handles, plus
``samples/*.xml``. ``mutants(seed, count)`` yields ``(name, bytes, operator)``; everything is
driven by ``random.Random`` seeded from ``(seed, n)``, so ``mutant(seed, n)`` rebuilds any one
input alone::

    .venv/bin/python -m tests.mutate SEED N [--good K] [-o FILE]   # write mutant N of SEED

(``--good K``: the run dropped K good orders ``good_orders(K, f"s{SEED}")``, the default 10.)

Each mutant's top-level ``cbc:ID`` is rewritten to ``FZ-<seed>-<n>`` before it is mutated (so
inputs never collide with each other by document ID). ``good_orders(n, tag)`` gives valid,
distinct orders to drop after the mutants. The oracle (``audit_process``, ``audit_store``,
``audit_folders``) reads a gateway's exit, stderr, store (SQLite or PostgreSQL) and folders
afterwards and lists every broken promise; ``suspects`` and ``isolate`` search for the inputs
behind a breach that names none. The suite's ``test_fuzz.py`` and ``bench/fuzz.py`` share it.
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import random
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from lxml import etree

from edi_gateway.domain.documents import DocumentKind

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
CORPUS = ROOT.parent / "shared" / "corpus"
GOOD_SOURCE = SAMPLES / "order-vastra-1001.xml"
GOOD_BUYER_KEY = "0088:7350051600005"  # vastra, the buyer of GOOD_SOURCE

UBL = "urn:oasis:names:specification:ubl:schema:xsd:"
CBC = UBL + "CommonBasicComponents-2"
CAC = UBL + "CommonAggregateComponents-2"
HANDLED = tuple(kind.value for kind in DocumentKind)  # every root the gateway processes
LINE_TAGS = frozenset(
    {
        "OrderLine",
        "InvoiceLine",
        "CreditNoteLine",
        "DebitNoteLine",
        "DespatchLine",
        "ReceiptLine",
        "LineResponse",
    }
)
NUMERIC_SUFFIXES = ("Quantity", "Amount", "Percent", "Numeric", "Measure", "Rate")
TEXT_LOCAL_NAMES = frozenset(
    {"ID", "Name", "Note", "Description", "StreetName", "CityName", "RegistrationName"}
)
TERMINAL = frozenset({"processed", "orphan", "duplicate", "failed"})


def _parser() -> etree.XMLParser:
    """The hardened parser: no entities, no network, no DTD."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


# --------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    """One seed document: where it came from, its root type and its bytes."""

    name: str
    root: str
    data: bytes


@functools.cache
def seeds() -> tuple[Seed, ...]:
    """Every seed, in a fixed order (corpus rows by path, then samples by name)."""
    found: list[Seed] = []
    manifest = CORPUS / "MANIFEST.tsv"
    if manifest.is_file():
        with manifest.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        for row in sorted(rows, key=lambda r: r["path"]):
            wanted = row["kind"] == "ubl-instance" and row["xsd_ubl21"] == "valid"
            if wanted and row["root"] in HANDLED:
                path = CORPUS / row["path"]
                found.append(Seed(f"corpus/{row['path']}", row["root"], path.read_bytes()))
    for path in sorted(SAMPLES.glob("*.xml")):
        data = path.read_bytes()
        match = re.search(rb"<(?:\w+:)?(\w+)[\s>]", data.split(b"?>", 1)[-1])
        found.append(Seed(f"samples/{path.name}", match.group(1).decode() if match else "", data))
    return tuple(found)


# --------------------------------------------------------------------------- helpers


def _local(element: Any) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _elements(root: Any) -> list[Any]:
    """Every element below the root (not the root itself), in document order."""
    return [e for e in root.iter() if isinstance(e.tag, str)][1:]


def _leaves(root: Any) -> list[Any]:
    return [e for e in _elements(root) if not any(isinstance(c.tag, str) for c in e)]


def _numeric(root: Any) -> list[Any]:
    return [e for e in _leaves(root) if _local(e).endswith(NUMERIC_SUFFIXES)]


def _top_id(root: Any) -> Any:
    return root.find(f"{{{CBC}}}ID")


def _lines(root: Any) -> list[Any]:
    return [e for e in _elements(root) if _local(e) in LINE_TAGS]


def _line_id(line: Any) -> Any:
    """The element holding a line's ID (an OrderLine's is inside its LineItem)."""
    found = line.find(f"{{{CBC}}}ID")
    if found is None:
        found = line.find(f"{{{CAC}}}LineItem/{{{CBC}}}ID")
    return found


def _filler(rng: random.Random, size: int, numeric: bool = False) -> str:
    if numeric:
        return rng.choice(["9" * size, "1" + "0" * size, "0." + "0" * size + "1"])
    unit = rng.choice(["A", "x ", "å", "漢", "<&>", "\u00e9", "0123456789"])
    return (unit * (size // len(unit) + 1))[:size]


def _serialize(root: Any) -> bytes:
    return bytes(etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8"))


def _replace_text_at(rng: random.Random, data: bytes, insert: bytes) -> bytes:
    """``insert`` put into a random text node (just after some ``>``)."""
    spots = [m.end() for m in re.finditer(rb">[^<\s]", data)]
    if not spots:
        spots = [m.end() for m in re.finditer(rb">", data)] or [len(data) // 2]
    at = rng.choice(spots) - 1
    return data[:at] + insert + data[at:]


# --------------------------------------------------------------------------- operators
# A tree operator changes the parsed document in place and returns a short description, or
# None when the document has nothing it can work on. A bytes operator maps bytes to bytes.

TreeOp = Callable[[random.Random, Any, str], "str | None"]
BytesOp = Callable[[random.Random, bytes, str], "tuple[bytes, str]"]


def op_bitflip(rng: random.Random, data: bytes, tag: str) -> tuple[bytes, str]:
    raw = bytearray(data)
    flips = rng.randint(1, 8)
    for _ in range(flips):
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    return bytes(raw), f"{flips} bit(s) flipped"


def op_truncate(rng: random.Random, data: bytes, tag: str) -> tuple[bytes, str]:
    at = rng.randrange(len(data))
    return data[:at], f"cut at byte {at} of {len(data)}"


def op_namespace_swap(rng: random.Random, data: bytes, tag: str) -> tuple[bytes, str]:
    """The root namespace swapped for another UBL document type's (same local name)."""
    declared = re.findall(rb'xmlns(?::\w+)?="' + re.escape(UBL.encode()) + rb'(\w+)-2"', data)
    roots = [name.decode() for name in declared if name.decode() in HANDLED]
    if not roots:
        return op_namespace_change(rng, data, tag)
    old = roots[0]
    new = rng.choice([r for r in HANDLED if r != old])
    return data.replace(f'{UBL}{old}-2"'.encode(), f'{UBL}{new}-2"'.encode()), f"{old}->{new}"


def op_namespace_change(rng: random.Random, data: bytes, tag: str) -> tuple[bytes, str]:
    """One declared namespace URI changed: cbc <-> cac, another version, or garbage."""
    uris = sorted(set(re.findall(rb'xmlns(?::\w+)?="([^"]*)"', data)))
    if not uris:
        return op_bitflip(rng, data, tag)
    old = rng.choice(uris)
    new = rng.choice(
        [
            old.replace(b"-2", b"-3"),
            old.replace(b"CommonBasic", b"CommonAggregate")
            if b"CommonBasic" in old
            else old.replace(b"CommonAggregate", b"CommonBasic"),
            old + b"x",
            old.upper(),
            b"",
            b"http://example.com/not-ubl",
        ]
    )
    needle = b'="' + old + b'"'
    return data.replace(needle, b'="' + new + b'"'), f"{old.decode()!r}->{new.decode()!r}"


CONTROL = [bytes([c]) for c in [*range(1, 9), 0x0B, 0x0C, *range(0x0E, 0x20)]]


def op_control_chars(rng: random.Random, data: bytes, tag: str) -> tuple[bytes, str]:
    """Characters XML forbids (never NUL) or broken UTF-8 put into a text node."""
    insert = rng.choice(
        [
            rng.choice(CONTROL),
            b"&#x%x;" % rng.choice([*range(1, 9), 0x0B, 0x0C, *range(0x0E, 0x20)]),
            b"\xef\xbf\xbe",  # U+FFFE
            b"\xef\xbf\xbf",  # U+FFFF
            b"\xed\xa0\x80",  # a UTF-16 surrogate as UTF-8
            b"\xff",
            b"\xc3\x28",
            b"&#xD800;",
        ]
    )
    return _replace_text_at(rng, data, insert), f"inserted {insert!r}"


def op_delete_element(rng: random.Random, root: Any, tag: str) -> str | None:
    candidates = _elements(root)
    if not candidates:
        return None
    victim = rng.choice(candidates)
    victim.getparent().remove(victim)
    return f"deleted {_local(victim)}"


def op_duplicate_element(rng: random.Random, root: Any, tag: str) -> str | None:
    candidates = _elements(root)
    if not candidates:
        return None
    chosen = rng.choice(candidates)
    for _ in range(rng.choice([1, 1, 1, 2, 10])):
        chosen.addnext(copy.deepcopy(chosen))
    return f"duplicated {_local(chosen)}"


def op_duplicate_line(rng: random.Random, root: Any, tag: str) -> str | None:
    lines = _lines(root)
    if not lines:
        return op_duplicate_element(rng, root, tag)
    chosen = rng.choice(lines)
    item = chosen.find(f"{{{CAC}}}LineItem")
    if item is not None and rng.random() < 0.2:  # an OrderLine with two LineItems
        item.addnext(copy.deepcopy(item))
        return f"duplicated the LineItem of an {_local(chosen)}"
    chosen.addnext(copy.deepcopy(chosen))
    return f"duplicated {_local(chosen)} (its line ID repeats)"


def op_repeat_line_id(rng: random.Random, root: Any, tag: str) -> str | None:
    lines = [line for line in _lines(root) if _line_id(line) is not None]
    if not lines:
        return None
    if len(lines) == 1:
        lines[0].addnext(copy.deepcopy(lines[0]))
        return f"duplicated the only {_local(lines[0])}"
    first, second = rng.sample(lines, 2)
    _line_id(second).text = _line_id(first).text
    return f"two {_local(first)}s with ID {_line_id(first).text!r}"


def op_deep_nesting(rng: random.Random, root: Any, tag: str) -> str | None:
    candidates = _elements(root)
    if not candidates:
        return None
    target = rng.choice(candidates)
    # mostly thousands deep (past libxml2's limit of 256), else just below that limit
    depth = rng.randint(1000, 5000) if rng.random() < 0.7 else rng.randint(100, 250)
    wrapper = rng.choice([target.tag, f"{{{CAC}}}Wrapper", target.getparent().tag])
    top = etree.Element(wrapper)
    inner = top
    for _ in range(depth - 1):
        inner = etree.SubElement(inner, wrapper)
    target.getparent().replace(target, top)
    inner.append(target)
    return f"{_local(target)} wrapped in {depth} <{etree.QName(wrapper).localname}>"


def op_huge_value(rng: random.Random, root: Any, tag: str) -> str | None:
    size = rng.randint(10_000, 100_000)
    top = _top_id(root)
    if top is not None and rng.random() < 0.2:
        top.text = f"{tag}-{_filler(rng, size)}"
        return f"top-level ID of {size} chars"
    texts = [e for e in _leaves(root) if _local(e) in TEXT_LOCAL_NAMES and e is not top]
    numbers = _numeric(root)
    pool = [(e, False) for e in texts] + [(e, True) for e in numbers]
    if not pool:
        return None
    element, numeric = rng.choice(pool)
    element.text = _filler(rng, size, numeric)
    return f"{_local(element)} of {len(element.text)} chars"


EXTREME_NUMBERS = [
    "1e400",
    "-1E-400",
    "-0",
    "-0.00",
    "0",
    "-1",
    "-99999999999999999999",
    "99999999999999999999.999999",
    "0.0000000000000000000000000001",
    "1" + "0" * 60,
    "0" * 300 + "1",
    "+1",
    "1.7976931348623157E+309",
    "NaN",
    "Infinity",
    "-INF",
    "  42  ",
    ".5",
    "5.",
]


def op_extreme_number(rng: random.Random, root: Any, tag: str) -> str | None:
    numbers = _numeric(root)
    if not numbers:
        return None
    chosen = rng.sample(numbers, min(len(numbers), rng.choice([1, 1, 2, 5])))
    value = rng.choice(EXTREME_NUMBERS)
    for element in chosen:
        element.text = value
    return f"{_local(chosen[0])} (x{len(chosen)}) = {value!r}"


REQUIRED = frozenset(
    {
        "ID",
        "IssueDate",
        "EndpointID",
        "Name",
        "LineID",
        "DocumentCurrencyCode",
        "PriceAmount",
        "PayableAmount",
        "OrderResponseCode",
        "InvoiceTypeCode",
        "ResponseCode",
        "LineStatusCode",
        "AcceptedIndicator",
    }
)


def op_empty_value(rng: random.Random, root: Any, tag: str) -> str | None:
    pool = [e for e in _leaves(root) if _local(e) in REQUIRED or _local(e).endswith("Quantity")]
    if not pool:
        return None
    element = rng.choice(pool)
    attrs = [a for a in element.attrib if a in ("unitCode", "currencyID", "schemeID")]
    if attrs and rng.random() < 0.3:
        element.set(attrs[0], rng.choice(["", " "]))
        return f"{_local(element)}@{attrs[0]} emptied"
    element.text = rng.choice(["", " ", "\n\t"])
    return f"{_local(element)} emptied"


BAD_DATES = [
    "2026-02-30",
    "2026-02-29",
    "2026-13-01",
    "2026-00-10",
    "2026-11-31",
    "0000-01-01",
    "0001-01-01",
    "9999-12-31",
    "-0001-01-01",
    "10000-01-01",
    "2026-11-01Z",
    "2026-11-01+14:00",
    "2026-11-01-12:00",
    "2026-1-1",
    "26-11-01",
    "2026/11/01",
    "2026-11-01T10:00:00",
    " 2026-11-01 ",
    "",
]
BAD_TIMES = ["24:00:00", "23:59:60", "25:00:00", "10:00:00+25:00", "10:00", "10:00:00.9999999999Z"]


def op_wrong_date(rng: random.Random, root: Any, tag: str) -> str | None:
    dates = [e for e in _leaves(root) if _local(e).endswith("Date")]
    times = [e for e in _leaves(root) if _local(e).endswith("Time")]
    if times and (not dates or rng.random() < 0.2):
        element, value = rng.choice(times), rng.choice(BAD_TIMES)
    elif dates:
        element, value = rng.choice(dates), rng.choice(BAD_DATES)
    else:
        return None
    element.text = value
    return f"{_local(element)} = {value!r}"


GARBAGE_CODES = [
    "",
    " ",
    "XYZ",
    "c62",
    "C 62",
    "C62" * 40,
    "ÅÄÖ",
    "\u202eC62",
    "<&>",
    "0",
    "-1",
    "C62\u0301",
    "../../x",
]


def op_unit_garbage(rng: random.Random, root: Any, tag: str) -> str | None:
    pool = [e for e in _elements(root) if "unitCode" in e.attrib]
    if not pool:
        return op_attr_garbage(rng, root, tag)
    chosen = rng.sample(pool, min(len(pool), rng.choice([1, 1, 3])))
    value = rng.choice(GARBAGE_CODES)
    for element in chosen:
        element.set("unitCode", value)
    return f"unitCode of {_local(chosen[0])} (x{len(chosen)}) = {value!r}"


def op_attr_garbage(rng: random.Random, root: Any, tag: str) -> str | None:
    names = ("currencyID", "schemeID", "listID", "unitCode")
    pool = [(e, a) for e in _elements(root) for a in e.attrib if a in names]
    if not pool:
        return None
    element, attr = rng.choice(pool)
    value = rng.choice([*GARBAGE_CODES, "EURO", "eur", "XXX"])
    element.set(attr, value)
    return f"{_local(element)}@{attr} = {value!r}"


def op_swap_order(rng: random.Random, root: Any, tag: str) -> str | None:
    parents = [
        e
        for e in [root, *_elements(root)]
        if len({c.tag for c in e if isinstance(c.tag, str)}) >= 2
    ]
    if not parents:
        return None
    parent = rng.choice(parents)
    kids = [c for c in parent if isinstance(c.tag, str)]
    first, second = rng.sample(kids, 2)
    while first.tag == second.tag:
        first, second = rng.sample(kids, 2)
    marker = etree.Comment("swap")
    first.addprevious(marker)
    second.addprevious(first)
    marker.addprevious(second)
    parent.remove(marker)
    return f"swapped {_local(first)} and {_local(second)} in {_local(parent)}"


NOT_NUMBERS = [
    "ten",
    "12,50",
    "1.2.3",
    "0x1F",
    "١٢٣",
    "１２",
    "1_000",
    "1e3",
    "--1",
    "½",
    "Ⅻ",
    "12 34",
    "€ 12",
    "null",
    "true",
]


def op_text_for_number(rng: random.Random, root: Any, tag: str) -> str | None:
    numbers = _numeric(root)
    if not numbers:
        return None
    element = rng.choice(numbers)
    element.text = rng.choice(NOT_NUMBERS)
    return f"{_local(element)} = {element.text!r}"


ODDITIES = [
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u200b",  # zero-width space
    "\ufeff",  # BOM inside text
    "\u2028",  # line separator
    "\u0085",  # next line
    "\u00ad",  # soft hyphen
    "e" + "\u0301" * 50,  # stacked combining marks
    "\u0300" * 500,  # combining marks with nothing to combine with
    "\U0001f4a9",
    "\ue000",
    "İß",  # case mappings that change length
    "\u0649\u0670",
    "\t\r\n",
]


def op_unicode_oddity(rng: random.Random, root: Any, tag: str) -> str | None:
    pool = [e for e in _leaves(root) if _local(e) in TEXT_LOCAL_NAMES]
    if not pool:
        return None
    element = rng.choice(pool)
    odd = rng.choice(ODDITIES)
    text = element.text or ""
    at = rng.randint(0, len(text))
    element.text = rng.choice([text[:at] + odd + text[at:], odd, odd * 20 + text])
    return f"{_local(element)} with {odd[:3]!r}"


PATH_IDS = [
    "/../../escaped",
    "\\..\\..\\escaped",
    "/etc/passwd",
    " ",
    ":*?|<>",
    "\u202eLMX.exe",
    "%2e%2e%2f",
    "{order}{supplier}{date:%Y}{seq:04d}",
    "'; DROP TABLE orders;--",
    "..",
    "\t\n",
    "CON",
]


def op_path_id(rng: random.Random, root: Any, tag: str) -> str | None:
    """The document ID made of characters file names and templates choke on."""
    top = _top_id(root)
    if top is None:
        return None
    top.text = tag + rng.choice(PATH_IDS)
    return f"top-level ID {top.text!r}"


ENCODINGS = [
    # (label, declared encoding or None for no declaration, how the bytes are encoded)
    ("UTF-16 with BOM", "UTF-16", "utf-16"),
    ("UTF-16LE without BOM", "UTF-16", "utf-16-le"),
    ("ISO-8859-1, declared", "ISO-8859-1", "latin-1"),
    ("UTF-8 bytes declared ISO-8859-1", "ISO-8859-1", "utf-8"),
    ("UTF-8 bytes declared UTF-16", "UTF-16", "utf-8"),
    ("UTF-8 with a BOM", "UTF-8", "utf-8-sig"),
    ("declared EBCDIC-US", "EBCDIC-US", "utf-8"),
    ("UTF-32, no declaration", None, "utf-32"),
]


def op_encoding(rng: random.Random, data: bytes, tag: str) -> tuple[bytes, str]:
    """The same document in another encoding, declared truly or falsely."""
    body = re.sub(r"^\s*<\?xml[^>]*\?>", "", data.decode("utf-8", errors="replace"))
    label, declared, codec = rng.choice(ENCODINGS)
    head = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    return (head + body).encode(codec, errors="xmlcharrefreplace"), label


BYTE_OPS: dict[str, BytesOp] = {
    "bitflip": op_bitflip,
    "truncate": op_truncate,
    "namespace_swap": op_namespace_swap,
    "namespace_change": op_namespace_change,
    "control_chars": op_control_chars,
    "encoding": op_encoding,
}


def op_comment_inject(rng: random.Random, root: Any, tag: str) -> str | None:
    """A comment, processing instruction or CDATA section inside a value: the XSD sees the
    whole text, a reader of ``.text`` only the part before it."""
    pool = [e for e in _leaves(root) if e.text and len(e.text.strip()) > 1]
    if not pool:
        return None
    element = rng.choice(pool)
    text = element.text
    at = rng.randint(1, len(text) - 1)
    kind = rng.choice(["comment", "pi", "cdata"])
    if kind == "cdata":
        element.text = etree.CDATA(text)
    else:
        element.text = text[:at]
        inserted = etree.Comment("x") if kind == "comment" else etree.ProcessingInstruction("x")
        inserted.tail = text[at:]
        element.append(inserted)
    return f"{kind} inside {_local(element)} {text[:40]!r} at {at}"


EXT = "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2"


def op_extension_payload(rng: random.Random, root: Any, tag: str) -> str | None:
    """A UBLExtension (its content is any element of another namespace, so the XSD lets it
    pass) holding a copy of a part of the document (another line, party, ID), a deep tree
    or a huge text."""
    content = etree.Element(f"{{{EXT}}}ExtensionContent")
    kind = rng.choice(["copy", "copy", "deep", "huge"])
    if kind == "copy" and _elements(root):
        picked = rng.choice(_lines(root) or _elements(root))
        content.append(copy.deepcopy(picked))
        what = f"a copy of {_local(picked)}"
    elif kind == "deep":
        inner = etree.SubElement(content, "{urn:fuzz}Deep")
        depth = rng.randint(50, 250)
        for _ in range(depth):
            inner = etree.SubElement(inner, "{urn:fuzz}Deep")
        what = f"{depth} nested elements"
    else:
        etree.SubElement(content, "{urn:fuzz}Text").text = _filler(rng, 100_000)
        what = "100,000 characters"
    extension = etree.Element(f"{{{EXT}}}UBLExtension")
    extension.append(content)
    first = root[0] if len(root) else None
    if first is not None and first.tag == f"{{{EXT}}}UBLExtensions":
        first.append(extension)
    else:
        holder = etree.Element(f"{{{EXT}}}UBLExtensions")
        holder.append(extension)
        root.insert(0, holder)
    return f"UBLExtension with {what}"


def op_line_ref_garbage(rng: random.Random, root: Any, tag: str) -> str | None:
    """References to order lines that do not exist, repeat, or differ only in form."""
    pool = [e for e in _leaves(root) if _local(e) == "LineID"]
    if not pool:
        return None
    chosen = rng.sample(pool, min(len(pool), rng.choice([1, 1, 2, len(pool)])))
    others = [e.text or "" for e in pool]
    value = rng.choice(
        ["999999", "0", "-1", " 1", "01", "1.0", rng.choice(others), _filler(rng, 5000)]
    )
    for element in chosen:
        element.text = value
    return f"{len(chosen)} LineID(s) = {value[:40]!r}"


TREE_OPS: dict[str, TreeOp] = {
    "delete_element": op_delete_element,
    "duplicate_element": op_duplicate_element,
    "duplicate_line": op_duplicate_line,
    "repeat_line_id": op_repeat_line_id,
    "deep_nesting": op_deep_nesting,
    "huge_value": op_huge_value,
    "extreme_number": op_extreme_number,
    "empty_value": op_empty_value,
    "wrong_date": op_wrong_date,
    "unit_garbage": op_unit_garbage,
    "attr_garbage": op_attr_garbage,
    "swap_order": op_swap_order,
    "text_for_number": op_text_for_number,
    "unicode_oddity": op_unicode_oddity,
    "path_id": op_path_id,
    "comment_inject": op_comment_inject,
    "extension_payload": op_extension_payload,
    "line_ref_garbage": op_line_ref_garbage,
}
OPERATORS: tuple[str, ...] = (*BYTE_OPS, *TREE_OPS)


# --------------------------------------------------------------------------- mutants


@dataclass(frozen=True)
class Mutant:
    """One fuzz input and how it was made (``seed``/``n`` rebuild it)."""

    name: str
    data: bytes
    operator: str
    seed: int
    n: int
    source: str
    how: str
    doc_id: str


CUSTOMER_SIDE = frozenset(
    {
        "BuyerCustomerParty",
        "AccountingCustomerParty",
        "DeliveryCustomerParty",
        "OriginatorCustomerParty",
        "ReceiverParty",
    }
)
SUPPLIER_SIDE = frozenset(
    {"SellerSupplierParty", "AccountingSupplierParty", "DespatchSupplierParty", "SenderParty"}
)
VASTRA_GLN, NORDISK_GLN = "7350051600005", "7350099000003"  # partners of the starter config


def _adopt(root: Any) -> bool:
    """A corpus document made to come from and go to the starter config's partners (vastra
    buys from nordisk), so it correlates with their orders and reaches the reactions."""
    changed = False
    for container in _elements(root):
        local = _local(container)
        if local not in CUSTOMER_SIDE and local not in SUPPLIER_SIDE:
            continue
        gln = VASTRA_GLN if local in CUSTOMER_SIDE else NORDISK_GLN
        found = container.findall(f".//{{{CBC}}}EndpointID") + container.findall(
            f".//{{{CAC}}}PartyIdentification/{{{CBC}}}ID"
        )
        for element in found:
            element.text = gln
            element.set("schemeID", "0088")
            changed = True
    return changed


@functools.lru_cache(maxsize=100_000)
def _source_of(seed: int, n: int) -> str:
    return _pick_seed(_rng(seed, n)).name


def _earlier_vastra_orders(seed: int, n: int, window: int = 300) -> list[str]:
    """IDs of the earlier inputs of this run made from a vastra sample order (whatever their
    mutation made of them): replies pointed at them meet mutated orders."""
    return [
        f"FZ-{seed}-{m}"
        for m in range(max(0, n - window), n)
        if _source_of(seed, m).startswith("samples/order-vastra")
    ]


def _retarget(
    rng: random.Random, root: Any, seed: int, n: int, order_refs: Sequence[str]
) -> str | None:
    refs = root.findall(f".//{{{CAC}}}OrderReference/{{{CBC}}}ID")
    if not refs:
        return None
    pool = list(order_refs) if order_refs and rng.random() < 0.5 else []
    pool = pool or _earlier_vastra_orders(seed, n) or list(order_refs)
    if not pool:
        return None
    chosen = rng.choice(pool)
    for ref in refs:  # a document naming several orders names different ones half the time
        ref.text = chosen if rng.random() < 0.5 else rng.choice(pool)
    return ", ".join(dict.fromkeys(ref.text for ref in refs))


@functools.cache
def _pools() -> tuple[list[Seed], dict[str, list[Seed]]]:
    """The sample seeds, and the corpus seeds per root type."""
    samples = [s for s in seeds() if s.name.startswith("samples/")]
    corpus: dict[str, list[Seed]] = {}
    for s in seeds():
        if s.name.startswith("corpus/"):
            corpus.setdefault(s.root, []).append(s)
    return samples, corpus


def _pick_seed(rng: random.Random) -> Seed:
    """Two in five from samples/ (the parties the gateway knows, so reactions run), else a
    corpus document of a root type picked uniformly (the corpus is mostly invoices)."""
    samples, corpus = _pools()
    if not corpus or rng.random() < 0.4:
        return rng.choice(samples)
    return rng.choice(corpus[rng.choice(sorted(corpus))])


def _rng(seed: int, n: int) -> random.Random:
    return random.Random(f"edi-gateway-fuzz:{seed}:{n}")


def mutant(seed: int, n: int, order_refs: Sequence[str] = ()) -> Mutant:
    """Input ``n`` of run ``seed``: the same bytes every time, whatever was made before.

    Before the mutation, half of the corpus documents are adopted by the starter config's
    partners (vastra buys from nordisk), and a third of the documents with an OrderReference
    are pointed at an order that will exist: one of ``order_refs`` (the good orders dropped
    later: replies wait as orphans and attach when their order comes) or an earlier input
    made from a vastra order. Pass the same ``order_refs`` to rebuild an input.
    """
    rng = _rng(seed, n)
    source = _pick_seed(rng)
    operator = rng.choice(OPERATORS)
    tag = f"FZ-{seed}-{n}"
    how, marks = "", []
    try:
        root = etree.fromstring(source.data, _parser())
    except etree.XMLSyntaxError:
        root = None
    if root is not None:
        top = _top_id(root)
        if top is not None:
            top.text = tag
        if source.name.startswith("corpus/") and rng.random() < 0.5 and _adopt(root):
            marks.append("adopt")
        if rng.random() < 0.35:
            retarget = _retarget(rng, root, seed, n, order_refs)
            if retarget:
                marks.append("ref")
                how = f"order references -> {retarget}; "
        if operator in TREE_OPS:
            described = TREE_OPS[operator](rng, root, tag)
            for _ in range(3):  # nothing to work on: another tree operator, else the bytes
                if described is not None:
                    break
                operator = rng.choice(tuple(TREE_OPS))
                described = TREE_OPS[operator](rng, root, tag)
            if described is None:
                operator = rng.choice(tuple(BYTE_OPS))
            else:
                how += described
        data = _serialize(root)
    else:
        data = source.data
        if operator in TREE_OPS:
            operator = rng.choice(tuple(BYTE_OPS))
    if operator in BYTE_OPS:
        data, done = BYTE_OPS[operator](rng, data, tag)
        how += done
    stem = re.sub(r"[^A-Za-z0-9]+", "_", Path(source.name).stem)[:40]
    name = "-".join([f"fz{seed}", f"{n:05d}", operator, *marks, stem]) + ".xml"
    return Mutant(name, data, operator, seed, n, source.name, how, tag)


def mutants(
    seed: int, count: int, order_refs: Sequence[str] = ()
) -> Iterator[tuple[str, bytes, str]]:
    """``count`` inputs of run ``seed`` as ``(name, bytes, operator)``; ``mutant(seed, n)``
    rebuilds the n-th alone, with how it was made."""
    for n in range(count):
        made = mutant(seed, n, order_refs)
        yield made.name, made.data, made.operator


@dataclass(frozen=True)
class GoodOrder:
    """A valid order that must come through whatever the mutants before it did."""

    name: str
    data: bytes
    order_id: str


def good_order_ids(n: int, tag: str) -> list[str]:
    return [f"GOOD-{tag}-{k:04d}" for k in range(n)]


def good_orders(n: int, tag: str) -> list[GoodOrder]:
    """``n`` valid, distinct orders (samples/order-vastra-1001.xml, each its own cbc:ID);
    their file names sort after every mutant's."""
    made = []
    for k, order_id in enumerate(good_order_ids(n, tag)):
        root = etree.fromstring(GOOD_SOURCE.read_bytes(), _parser())
        _top_id(root).text = order_id
        made.append(GoodOrder(f"zz-good-{tag}-{k:04d}.xml", _serialize(root), order_id))
    return made


# --------------------------------------------------------------------------- gateway set-up


def fuzz_config(config: Path, store: str | None = None) -> None:
    """Turn on every reaction the starter config knows, so mutants reach them too: automatic
    responses for both buyers, relaying of nordisk's replies, nordisk bundles as soon as a few
    orders wait (delftlab already forwards each order at once). ``store``: another store URL
    (e.g. PostgreSQL) than the starter's SQLite file."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    if store is not None:
        data["store"]["url"] = store
    for partner in data["partners"]:
        if partner["id"] == "rijnoever":
            partner["auto_response"] = "accept"
        if partner["id"] == "nordisk":
            partner["relay_replies"] = True
            partner["forward"]["when_waiting"] = 25
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


# --------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Breach:
    """A broken promise: which, on which input (a file name, or '' for the run), and why."""

    promise: str
    name: str
    operator: str
    detail: str


@dataclass
class Audit:
    """What the store and folders say after a run."""

    breaches: list[Breach] = field(default_factory=list)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    messages: int = 0
    tracebacks: Counter[str] = field(default_factory=Counter)

    def add(self, promise: str, name: str, operator: str, detail: str) -> None:
        self.breaches.append(Breach(promise, name, operator, detail))


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:,.]+\s+(?P<level>[A-Z]+)\s+(?P<msg>.*)$")
CHAINED = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)


def tracebacks(stderr: str) -> list[str]:
    """Every traceback in ``stderr`` (a chain counts once, by its last exception): the log
    line it belongs to, if any, then its last line; numbers folded so equal causes group."""
    found: list[str] = []
    lines = stderr.splitlines()
    before = ""
    for i, line in enumerate(lines):
        if line != "Traceback (most recent call last):":
            if line.strip() and not line.startswith((" ", "\t")):
                before = line
            continue
        end = i + 1
        while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end]):
            end += 1
        last = lines[end][:300] if end < len(lines) else "(cut off)"
        if before in CHAINED and found:
            found[-1] = found[-1].rsplit(" -> ", 1)[0] + " -> " + last
            continue
        log = LOG_LINE.match(before)
        said = re.sub(r"\b\d+\b", "N", log.group("msg"))[:160] if log else "(no log line)"
        found.append(f"{said} -> {last}")
    return found


WHOLE_RUN = ("terminal-state", "no-escaped-exception", "one-message-per-file", "exit-code")
"""Promises whose breach may hide the input that caused it (a batch or the run broke)."""


def summary_printed(stdout: str) -> bool:
    """Whether a ``--json`` command got as far as printing its summary."""
    try:
        json.loads(stdout)
    except ValueError:
        return False
    return True


def audit_process(
    audit: Audit, what: str, returncode: int, ok: Sequence[int], err: str, finished: bool = True
) -> None:
    """The process promises: an expected exit code, its summary printed (``finished``), and
    no traceback on stderr: an exception that ended the process (``no-escaped-exception``) or
    one logged while bad input was handled (``no-traceback``)."""
    if returncode not in ok or not finished:
        audit.add("exit-code", "", "", f"{what} exited {returncode}: {err[-500:]}")
    seen = tracebacks(err)
    audit.tracebacks.update(seen)
    escaped = seen.pop() if seen and not finished else None
    if escaped is not None:
        audit.add("no-escaped-exception", "", "", f"{what} died: {escaped}")
    counted = Counter(seen)
    for last, count in sorted(counted.items()):
        audit.add("no-traceback", "", "", f"{what} logged {count} x: {last}")


RAW_EXCEPTION = re.compile(r"<class '|Traceback|\b\w*(?:Error|Exception)\(")


@dataclass
class _Store:
    """What the audit reads of a gateway's store."""

    messages: list[tuple[Any, ...]]
    documents: dict[int, int]
    orders: dict[str, int]
    reactions: list[tuple[Any, ...]]
    without_order_document: list[tuple[Any, ...]]
    integrity: list[str]


DANGLING = [
    (child, column, parent)
    for child, column, parent in (
        ("messages", "order_id", "orders"),
        ("documents", "order_id", "orders"),
        ("documents", "message_id", "messages"),
        ("document_lines", "document_id", "documents"),
        ("document_lines", "order_line_id", "order_lines"),
        ("order_lines", "order_id", "orders"),
        ("order_keys", "order_id", "orders"),
        ("history", "order_id", "orders"),
        ("history", "message_id", "messages"),
        ("outbox", "order_id", "orders"),
        ("forwards", "order_id", "orders"),
    )
]


BYTES_APART = [
    ("messages", "message_payloads", "message_id"),
    ("outbox", "outbox_payloads", "outbox_id"),
]
"""Rows whose bytes live in a table of their own, written in the same transaction: a row
without them is a half-written change."""


def store_url(db: Path | str) -> str:
    """A SQLAlchemy URL: a PostgreSQL URL as given, a SQLite file opened read-only."""
    if isinstance(db, str) and "://" in db:
        return db
    return f"sqlite:///file:{db}?mode=ro&uri=true"


def _read_store(db: Path | str, buyer_key: str) -> _Store:
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url(db))
    try:
        with engine.connect() as conn:

            def rows(sql: str, **params: Any) -> list[tuple[Any, ...]]:
                return [tuple(r) for r in conn.execute(text(sql), params)]

            integrity = [
                f"{child}.{column} -> missing {parent} {value}"
                for child, column, parent in DANGLING
                for (value,) in rows(
                    f"SELECT DISTINCT c.{column} FROM {child} c WHERE c.{column} IS NOT NULL "
                    f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column})"
                )
            ] + [
                f"{parent} {value} -> no {child} row (its bytes)"
                for parent, child, column in BYTES_APART
                for (value,) in rows(
                    f"SELECT p.id FROM {parent} p "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {child} c WHERE c.{column} = p.id)"
                )
            ]
            return _Store(
                rows(
                    "SELECT id, filename, state, error_code, error_detail, order_id, doc_kind "
                    "FROM messages"
                ),
                {
                    mid: count
                    for mid, count in rows(
                        "SELECT message_id, count(*) FROM documents "
                        "WHERE message_id IS NOT NULL GROUP BY message_id"
                    )
                },
                {
                    number: count
                    for number, count in rows(
                        "SELECT o.order_number, count(l.id) FROM orders o LEFT JOIN order_lines "
                        "l ON l.order_id = o.id WHERE o.buyer_key = :buyer GROUP BY o.order_number",
                        buyer=buyer_key,
                    )
                },
                rows(
                    "SELECT 'forward', order_id, error FROM forwards WHERE state = 'failed' "
                    "UNION ALL SELECT 'outbox ' || kind || ' ' || doc_number, order_id, "
                    "last_error FROM outbox WHERE state = 'failed'"
                ),
                rows(
                    "SELECT o.id, o.order_number FROM orders o WHERE NOT EXISTS (SELECT 1 FROM "
                    "documents d WHERE d.order_id = o.id AND d.kind = 'Order' "
                    "AND d.direction = 'in')"
                ),
                integrity,
            )
    finally:
        engine.dispose()


@functools.cache
def good_lines() -> int:
    """How many lines each good order has (those of its source)."""
    return len(etree.parse(str(GOOD_SOURCE), _parser()).findall(f"{{{CAC}}}OrderLine"))


def audit_store(
    audit: Audit,
    db: Path | str,
    inputs: Mapping[str, str],
    good: Mapping[str, str],
    buyer_key: str = GOOD_BUYER_KEY,
) -> dict[str, str]:
    """Check the store against the promises; ``inputs``: file name -> operator ('good' for a
    good order), ``good``: file name -> order ID; ``db`` a SQLite file or a PostgreSQL URL.
    Returns file name -> final state."""
    store = _read_store(db, buyer_key)
    audit.messages += len(store.messages)
    by_name: dict[str, list[tuple[Any, ...]]] = {}
    for row in store.messages:
        by_name.setdefault(row[1], []).append(row)
    for name in sorted(set(by_name) - set(inputs)):
        audit.add("one-message-per-file", name, "?", "a message for a file never dropped")
    states: dict[str, str] = {}
    said: dict[str, str] = {}
    for name, operator in inputs.items():
        found = by_name.get(name, [])
        if len(found) != 1:
            audit.add("one-message-per-file", name, operator, f"{len(found)} messages")
        for mid, _, state, code, detail, order_id, _kind in found:
            states[name] = state
            said[name] = f"message {mid}: {state} {code or ''} {(detail or '')[:300]}".strip()
            audit.outcomes[(state, code or "")] += 1
            row = (mid, state, code, detail, order_id)
            _check_message(audit, name, operator, row, store.documents)
    for name, order_id in good.items():
        if states.get(name) != "processed":
            audit.add("good-order-processed", name, "good", said.get(name, "no message"))
        if order_id not in store.orders:
            audit.add("good-order-processed", name, "good", f"order {order_id} not stored")
        elif store.orders[order_id] < good_lines():  # (an OrderChange may add lines)
            lines = f"{store.orders[order_id]} of its {good_lines()} lines"
            audit.add("good-order-processed", name, "good", f"order {order_id} stored {lines}")
    _check_reactions(audit, store, inputs)
    for oid, number in store.without_order_document:
        audit.add("half-write-undone", "", "", f"order {oid} ({number[:80]!r}) has no Order")
    for problem in store.integrity:
        audit.add("half-write-undone", "", "", f"dangling reference: {problem}")
    return states


def _check_reactions(audit: Audit, store: _Store, inputs: Mapping[str, str]) -> None:
    """A reaction (forward, outbound document) that failed says why in words, not as a bare
    Python exception; it is charged to the input that made the order."""
    order_file = {row[5]: row[1] for row in store.messages if row[6] == "Order" and row[5]}
    for what, order_id, error in store.reactions:
        if error and not RAW_EXCEPTION.search(error):
            continue
        name = order_file.get(order_id, "")
        audit.add(
            "reaction-explained",
            name,
            inputs.get(name, ""),
            f"{what} of order {order_id} failed: {(error or '(no reason given)')[:300]}",
        )


def _check_message(
    audit: Audit,
    name: str,
    operator: str,
    row: tuple[Any, ...],
    documents: Mapping[int, int],
) -> None:
    mid, state, code, detail, order_id = row
    said = f"message {mid}: {state} {code or ''} {(detail or '')[:400]}"
    if state not in TERMINAL:
        audit.add("terminal-state", name, operator, said)
    if code == "INTERNAL_ERROR":
        audit.add("no-internal-error", name, operator, said)
    if state == "failed":
        if not code or not (detail or "").strip():
            audit.add("failure-explained", name, operator, said)
        if documents.get(mid) or order_id is not None:
            audit.add(
                "half-write-undone",
                name,
                operator,
                f"{said} (documents: {documents.get(mid, 0)}, order {order_id})",
            )


def audit_folders(audit: Audit, project: Path, states: Mapping[str, str], inbox: str) -> None:
    """After ``run``: the inbox and its .claimed/ empty, every file once in archive/ or error/
    (error/ exactly for the failed ones), nothing written outside the project's folders."""
    inbox_dir = project / inbox
    for left in sorted(p.name for p in inbox_dir.iterdir() if p.is_file()):
        audit.add("files-settled", left, "", "still in the inbox")
    claimed = inbox_dir / ".claimed"
    if claimed.is_dir():
        for left in sorted(p.name for p in claimed.iterdir()):
            audit.add("files-settled", left.partition("--")[2], "", "still in .claimed/")
    settled: Counter[str] = Counter()
    for folder in ("archive", "error"):
        for path in (project / folder).iterdir():
            original = path.name.partition("--")[2]
            settled[original] += 1
            failed = states.get(original) == "failed"
            if original in states and failed != (folder == "error"):
                audit.add("files-settled", original, "", f"{states[original]} but in {folder}/")
    for name in states:
        if settled[name] != 1:
            audit.add("files-settled", name, "", f"{settled[name]} times in archive/ + error/")
    expected = {"archive", "error", "inbox", "outbox", "mappings", "gateway.yaml"}
    for path in project.iterdir():
        if path.name not in expected and not path.name.startswith("gateway.db"):
            audit.add("no-escape", path.name, "", "written outside the configured folders")


def outbox_states(db: Path | str) -> Counter[str]:
    """Outbound rows per state (reactions: responses, forwards, relays)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url(db))
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT state, count(*) FROM outbox GROUP BY state"))
            return Counter({state: count for state, count in found})
    finally:
        engine.dispose()


T = TypeVar("T")
ISOLATED = frozenset({*WHOLE_RUN, "good-order-processed"})
"""Broken promises that do not name the input to blame: worth a search for it."""


def suspects(
    audit: Audit, states: Mapping[str, str], inputs: Mapping[str, str]
) -> tuple[list[str], set[str]]:
    """The inputs to search for the cause of the breaches that name no input to blame, and
    those promises. A batch that broke: the first batch left ``received`` (or never taken);
    a good order that failed: the inputs pointed at good orders (the ``-ref-`` ones)."""
    promises = {b.promise for b in audit.breaches} & ISOLATED
    mutants = [n for n, op in inputs.items() if op != "good"]
    if promises & set(WHOLE_RUN):
        stuck = [n for n in mutants if states.get(n) == "received"]
        never = [n for n in mutants if n not in states]
        return (stuck or never)[:400], promises
    if promises:
        return [n for n in mutants if "-ref-" in n], promises
    return [], promises


def isolate(items: Sequence[T], breaks: Callable[[Sequence[T]], bool], budget: int = 24) -> list[T]:
    """The smallest part of ``items`` found to still break (halving; an interaction between
    halves ends the search with both). ``breaks`` is called at most ``budget`` times."""
    current = list(items)
    while len(current) > 1 and budget > 0:
        half = len(current) // 2
        first, second = current[:half], current[half:]
        budget -= 1
        if breaks(first):
            current = first
            continue
        budget -= 1
        if budget >= 0 and breaks(second):
            current = second
            continue
        break
    return current


def main(argv: Sequence[str]) -> int:
    """``python -m tests.mutate SEED N [-o FILE]``: write one mutant (stdout without -o)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.mutate")
    parser.add_argument("seed", type=int)
    parser.add_argument("n", type=int)
    parser.add_argument(
        "--good", type=int, default=10, help="the good orders of the run (IDs GOOD-sSEED-K)"
    )
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args(argv)
    made = mutant(args.seed, args.n, good_order_ids(args.good, f"s{args.seed}"))
    print(f"{made.name}: {made.operator} on {made.source}: {made.how[:200]}", file=sys.stderr)
    if args.output:
        args.output.write_bytes(made.data)
    else:
        sys.stdout.buffer.write(made.data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def ingest_breaks_again(
    project: Any,
    store: str | Path,
    source: Path,
    names: Sequence[str],
    good: Mapping[str, str],
    promises: set[str],
    timeout: float,
) -> bool:
    """Whether ``edi-gateway ingest`` of just these files from ``source``, then the good orders,
    into the fresh gateway ``project`` (a ``tests.integration.conftest.Project``) with its store
    at ``store`` breaks one of ``promises`` again (the search for the smallest failing set)."""
    folder = project.root / "fuzz-in"
    folder.mkdir()
    for name in [*names, *good]:
        shutil.copy(source / name, folder / name)
    done = project.run("ingest", folder, "--json", timeout=timeout)
    audit = Audit()
    finished = summary_printed(done.stdout)
    audit_process(audit, "ingest", done.returncode, (0, 1), done.stderr, finished)
    inputs = dict.fromkeys(names, "?") | dict.fromkeys(good, "good")
    audit_store(audit, store, inputs, good)
    return bool({b.promise for b in audit.breaches} & promises)
