"""What a supplier receives: each order in its formats, and the bundles they go in. No I/O.

``render_order`` turns one order into its files (``ubl``: the received bytes unchanged; the
human formats from :mod:`edi_gateway.outbound.render`; layouts from ``mappings/``).
``build`` turns the files of the orders of one flush into what is queued: one file per order
and format (``bundle: none``), one zip of them, one multi-sheet workbook, or one CSV of every
line. A bundle over the profile's cap (``max_orders``, ``max_bytes``) goes as several parts,
each a complete file of whole orders with its own sequence number, in order
(docs/adr/0039-bundles-that-scale.md). ``is_due`` says whether a supplier's waiting orders
should go now.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from edi_gateway.outbound.render import XLSX_MEDIA_TYPE

if TYPE_CHECKING:
    from edi_gateway.config import ForwardProfile
    from edi_gateway.domain.documents import Order
    from edi_gateway.outbound.layout import Layout

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same orders give the same bytes
_HUMAN = {
    "xlsx": ("xlsx", XLSX_MEDIA_TYPE),
    "pdf": ("pdf", "application/pdf"),
    "csv": ("csv", "text/csv"),
}


@dataclass(frozen=True, slots=True)
class OrderFile:
    """One file of one order: its format, extension, media type and bytes."""

    format: str
    extension: str
    media_type: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Forwarded:
    """An order ready to go: its identity, number, buyer, and either its files (``bundle:
    none`` and ``zip``, which need nothing else of it) or the domain document (``workbook``
    and ``csv`` render all orders together). A flush of thousands holds no more than that."""

    forward_id: int
    number: str
    buyer: str
    files: tuple[OrderFile, ...] = ()
    order: Order | None = None


@dataclass(frozen=True, slots=True)
class _Naming:
    profile: ForwardProfile
    supplier: str
    seq: int
    sent_on: date


@dataclass(frozen=True, slots=True)
class Packed:
    """A file to queue in the outbox: its name, bytes, the orders it carries and the sequence
    number of the bundle (or part) it belongs to."""

    filename: str
    extension: str
    media_type: str
    payload: bytes
    forward_ids: tuple[int, ...]
    seq: int


def render_order(
    profile: ForwardProfile,
    supplier: str,
    order: Order,
    original: bytes,
    *,
    language: str,
    sent_on: date,
    cancelled: str | None = None,
) -> tuple[OrderFile, ...]:
    """The files ``order`` is forwarded as, one per configured format (bundle formats too).

    ``cancelled`` (the cancellation's ID and reason) renders the order marked CANCELLED, to
    tell the supplier of a cancellation; ``original`` is then the cancellation's own bytes.
    """
    files: list[OrderFile] = []
    for fmt in profile.formats:
        if fmt == "ubl":
            files.append(OrderFile(fmt, "xml", "application/xml", original))
        elif fmt.startswith("layout:"):
            from edi_gateway.outbound.layout import find_layout

            layout = find_layout(profile.mappings, supplier, fmt.removeprefix("layout:"))
            files.append(_layout_file(layout, order, supplier, sent_on, cancelled))
        else:
            extension, media = _HUMAN[fmt]
            payload = _human([order], profile, fmt, language, cancelled)
            files.append(OrderFile(fmt, extension, media, payload))
    return tuple(files)


def build(
    profile: ForwardProfile,
    supplier: str,
    orders: Sequence[Forwarded],
    *,
    seq: int,
    sent_on: date,
    language: str,
    part: int = 1,
) -> list[Packed]:
    """What one flush of ``orders`` to ``supplier`` queues (see the module docstring).

    Unbundled files all carry ``seq``; the parts of a bundle carry ``seq``, ``seq + 1``...
    and are named as parts ``part``, ``part + 1``... of their flush.
    """
    if profile.bundle == "none":
        naming = _Naming(profile, supplier, seq, sent_on)
        used: set[str] = set()
        return [
            Packed(
                _member_name(naming, o, f, used),
                f.extension,
                f.media_type,
                f.payload,
                (o.forward_id,),
                seq,
            )
            for o in orders
            for f in o.files
        ]
    parts = _parts(_Naming(profile, supplier, seq, sent_on), orders, language)
    packed: list[Packed] = []
    for number, (chunk, extension, media, payload) in enumerate(parts, start=1):
        name = file_name(
            profile.bundle_filename,
            supplier=supplier,
            date=sent_on,
            seq=seq + number - 1,
            part=part + number - 1,
            ext=extension,
        )
        ids = tuple(o.forward_id for o in chunk)
        packed.append(Packed(name, extension, media, payload, ids, seq + number - 1))
    return packed


def _parts(
    first: _Naming, orders: Sequence[Forwarded], language: str
) -> list[tuple[Sequence[Forwarded], str, str, bytes]]:
    """``orders`` cut into complete files: at most ``max_orders`` each, then any file over
    ``max_bytes`` cut again (at the share of its orders that should fit, then in halves) until
    each fits or holds one order. Orders keep their order; each is in exactly one part."""
    profile = first.profile
    cap = profile.max_orders or max(len(orders), 1)
    pending = deque(orders[i : i + cap] for i in range(0, len(orders), cap))
    done: list[tuple[Sequence[Forwarded], str, str, bytes]] = []
    while pending:
        part = pending.popleft()
        naming = replace(first, seq=first.seq + len(done))
        extension, media, payload = _bundle_bytes(naming, part, language)
        limit = profile.max_bytes
        if limit is not None and len(payload) > limit and len(part) > 1:
            fits = min(len(part) * limit // len(payload), len(part) // 2) or 1
            pending.extendleft(reversed([part[i : i + fits] for i in range(0, len(part), fits)]))
            continue
        if limit is not None and len(payload) > limit:
            log.warning(
                "order %s alone makes a %s of %d bytes for %s, over max_bytes %d: sent alone",
                part[0].number,
                extension,
                len(payload),
                first.supplier,
                limit,
            )
        done.append((part, extension, media, payload))
    return done


def file_name(pattern: str, **values: object) -> str:
    """``pattern`` filled with ``values``, each made safe for a file name."""
    safe = {
        k: v if isinstance(v, int | date) else _UNSAFE.sub("_", str(v)).strip("._") or "x"
        for k, v in values.items()
    }
    return _UNSAFE.sub("_", pattern.format(**safe)).strip("._")[:200] or "forward"


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``... the first not in ``taken`` (then taken)."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{ext}"
    taken.add(candidate)
    return candidate


def next_instant(profile: ForwardProfile, after: datetime) -> datetime | None:
    """The first scheduled flush time (every_minutes, at) strictly after ``after``."""
    candidates: list[datetime] = []
    if profile.every_minutes:
        step = timedelta(minutes=profile.every_minutes)
        candidates.append(_EPOCH + ((after - _EPOCH) // step + 1) * step)
    day = after.astimezone(UTC).date()
    for offset in (0, 1):
        for clock in sorted(profile.at):
            hour, minute = map(int, clock.split(":"))
            moment = datetime.combine(day + timedelta(days=offset), time(hour, minute), UTC)
            if moment > after:
                candidates.append(moment)
                break
    return min(candidates, default=None)


def is_due(
    profile: ForwardProfile, *, waiting: int, oldest: datetime | None, now: datetime
) -> bool:
    """Whether ``waiting`` orders (the oldest waiting since ``oldest``) should go at ``now``.

    Unbundled orders always go at once. Bundled ones go once ``when_waiting`` orders wait,
    or once a scheduled time (``every_minutes``, ``at``) has passed since the oldest arrived.
    """
    if waiting <= 0:
        return False
    if profile.bundle == "none":
        return True
    if profile.when_waiting is not None and waiting >= profile.when_waiting:
        return True
    due = next_instant(profile, oldest or now)
    return due is not None and due <= now


def _layout_file(
    layout: Layout, order: Order, supplier: str, sent_on: date, cancelled: str | None = None
) -> OrderFile:
    from edi_gateway.outbound.layout import columns_workbook, render_template

    if layout.kind == "columns":
        payload = columns_workbook(layout, [order], cancelled=cancelled)
    else:
        payload = render_template(
            layout, order, supplier=supplier, sent_on=sent_on, cancelled=cancelled
        )
    return OrderFile(f"layout:{layout.name}", layout.extension, layout.media_type, payload)


def _human(
    orders: Sequence[Order],
    profile: ForwardProfile,
    fmt: str,
    language: str,
    cancelled: str | None = None,
) -> bytes:
    # Each renderer imported when used: openpyxl and reportlab cost ~0.1 s each to import,
    # which a CSV bundle (most of whose whole run is start-up) should not pay.
    if fmt == "xlsx":
        from edi_gateway.outbound.render import xlsx

        return xlsx.orders_workbook(orders, language=language, cancelled=cancelled)
    if fmt == "csv":
        from edi_gateway.outbound.render import csv

        return csv.orders_csv(
            orders,
            language=language,
            delimiter=profile.csv_delimiter,
            encoding=profile.csv_encoding,
            cancelled=cancelled,
        )
    from edi_gateway.outbound.render import pdf

    [order] = orders
    return pdf.order_pdf(order, language=language, cancelled=cancelled)


def _bundle_bytes(
    naming: _Naming, orders: Sequence[Forwarded], language: str
) -> tuple[str, str, bytes]:
    profile, supplier = naming.profile, naming.supplier
    documents = [o.order for o in orders if o.order is not None]
    assert len(documents) == len(orders) or profile.bundle == "zip", "rendered without documents"
    if profile.bundle == "csv":
        return "csv", "text/csv", _human(documents, profile, "csv", language)
    if profile.bundle == "workbook":
        fmt = profile.formats[0]
        if fmt == "xlsx":
            return "xlsx", XLSX_MEDIA_TYPE, _human(documents, profile, "xlsx", language)
        from edi_gateway.outbound.layout import columns_workbook, find_layout

        layout = find_layout(profile.mappings, supplier, fmt.removeprefix("layout:"))
        return "xlsx", XLSX_MEDIA_TYPE, columns_workbook(layout, documents)
    # Layouts (pydantic models, jinja2) and zipfile are imported when a bundle uses them: a
    # CSV flush, most of whose run is start-up, does not (docs/adr/0039).
    import io
    import zipfile

    out = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for o in orders:
            for f in o.files:
                name = _member_name(naming, o, f, used)
                archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), f.payload, zipfile.ZIP_DEFLATED)
    return "zip", "application/zip", out.getvalue()


def _member_name(naming: _Naming, order: Forwarded, file: OrderFile, used: set[str]) -> str:
    profile = naming.profile
    name = file_name(
        profile.filename,
        supplier=naming.supplier,
        order=order.number,
        buyer=order.buyer,
        date=naming.sent_on,
        seq=naming.seq,
        format=file.format.removeprefix("layout:"),
        ext=file.extension,
    )
    return unique(name, used)
