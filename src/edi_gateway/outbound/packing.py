"""Boxes of a despatch: what goes in each, and the SSCC on each (``despatch --boxes/--box``).

``--boxes N`` spreads each despatched line over N boxes in whole units, as evenly as they go
(a line's odd units go to the boxes the previous line left lightest); ``--box LINE:QTY,...``
(repeatable, one per box) says exactly what each box holds, and then the despatched lines
are the sum of the boxes. Every box gets an SSCC from the supplier's GS1 company prefix
(else the gateway's ``packing.gs1_company_prefix``; never an invented one) and a serial the
store hands out once (:mod:`edi_gateway.store.sscc`). See docs/adr/0028.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from edi_gateway.errors import ErrorCode, GatewayError
from edi_gateway.outbound.issuing import NotAllowed

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from edi_gateway.config import Settings
    from edi_gateway.config.packing import LabelSize
    from edi_gateway.store.db import Store
    from edi_gateway.store.tables import Order as OrderRow
    from edi_gateway.store.tables import OrderLine

ZERO = Decimal(0)
MAX_BOXES = 999
BoxContents = tuple[tuple[str, Decimal], ...]
"""(order line id, quantity) pairs in one box."""


@dataclass(frozen=True, slots=True)
class Packing:
    """How the despatched goods are boxed: N boxes, or each box's contents, or not at all."""

    boxes: int | None = None
    contents: tuple[BoxContents, ...] = field(default_factory=tuple)

    @property
    def wanted(self) -> bool:
        """Whether the despatch is packed in boxes that get SSCCs and labels."""
        return self.boxes is not None or bool(self.contents)

    def lines(self) -> tuple[tuple[str, Decimal], ...]:
        """The despatched (line, quantity) pairs the ``--box`` contents add up to."""
        totals: dict[str, Decimal] = {}
        for box in self.contents:
            for line_id, quantity in box:
                totals[line_id] = totals.get(line_id, ZERO) + quantity
        return tuple(totals.items())


Packed = list[tuple["OrderLine", Decimal, str | None]]
"""(order line, quantity, SSCC of its box or None) in box order."""


def pack(
    session: Session,
    settings: Settings,
    order: OrderRow,
    chosen: Sequence[tuple[OrderLine, Decimal]],
    packing: Packing,
) -> Packed:
    """``chosen`` as despatch lines: unboxed, or per box with an SSCC from the store."""
    if not packing.wanted:
        return [(line, quantity, None) for line, quantity in chosen]
    extension, prefix = company_prefix(settings, order)
    boxes = _boxes(chosen, packing)
    from edi_gateway.domain.sscc import sscc
    from edi_gateway.store.sscc import allocate_serials

    serials = allocate_serials(session, extension, prefix, len(boxes))
    return [
        (line, quantity, sscc(extension, prefix, serial))
        for serial, box in zip(serials, boxes, strict=True)
        for line, quantity in box
    ]


def company_prefix(settings: Settings, order: OrderRow) -> tuple[int, str]:
    """The SSCC extension digit and GS1 company prefix for the supplier of ``order``.

    Raises:
        GatewayError: GS1_PREFIX_MISSING when neither the supplier partner nor ``packing:``
            has a ``gs1_company_prefix``.
    """
    supplier = settings.partner(order.seller_partner) if order.seller_partner else None
    prefix = (supplier.gs1_company_prefix if supplier else None) or (
        settings.packing.gs1_company_prefix
    )
    if prefix is None:
        who = f"partner {supplier.id}" if supplier else "the supplier (no configured partner)"
        raise GatewayError(
            ErrorCode.GS1_PREFIX_MISSING,
            f"boxes need SSCCs, and SSCCs need a GS1 company prefix: none is configured for "
            f"{who} nor as packing.gs1_company_prefix in {settings.path}; nothing was sent",
        )
    return settings.packing.sscc_extension_digit, prefix


def label_size(settings: Settings, supplier_id: str | None) -> LabelSize:
    """The label size of the supplier ``supplier_id``, else the gateway's."""
    supplier = settings.partner(supplier_id) if supplier_id else None
    if supplier is not None and supplier.label_size is not None:
        return supplier.label_size
    return settings.packing.label_size


def _boxes(
    chosen: Sequence[tuple[OrderLine, Decimal]], packing: Packing
) -> list[list[tuple[OrderLine, Decimal]]]:
    if packing.contents:
        if packing.boxes is not None and packing.boxes != len(packing.contents):
            raise NotAllowed(
                f"--boxes {packing.boxes} but {len(packing.contents)} --box given: give one"
            )
        by_id = {line.line_id: line for line, _ in chosen}
        for number, box in enumerate(packing.contents, start=1):
            if not box or any(quantity <= ZERO for _, quantity in box):
                raise NotAllowed(f"box {number}: every quantity in a box must be more than 0")
        return [[(by_id[line_id], qty) for line_id, qty in box] for box in packing.contents]
    count = packing.boxes or 0
    if not 1 <= count <= MAX_BOXES:
        raise NotAllowed(f"--boxes must be 1 to {MAX_BOXES}, not {count}")
    return _spread(chosen, count)


def _spread(
    chosen: Sequence[tuple[OrderLine, Decimal]], count: int
) -> list[list[tuple[OrderLine, Decimal]]]:
    boxes: list[list[tuple[OrderLine, Decimal]]] = [[] for _ in range(count)]
    start = 0
    for line, quantity in chosen:
        if quantity != quantity.to_integral_value():
            raise NotAllowed(
                f"line {line.line_id}: {quantity} {line.unit} cannot be spread over boxes in "
                "whole units: say what each box holds with --box LINE:QTY,..."
            )
        base, odd = divmod(int(quantity), count)
        for i in range(count):
            extra = 1 if (i - start) % count < odd else 0
            if base + extra:
                boxes[i].append((line, Decimal(base + extra)))
        start = (start + odd) % count
    empty = [str(i) for i, box in enumerate(boxes, start=1) if not box]
    if empty:
        raise NotAllowed(
            f"{count} boxes but only {count - len(empty)} can hold something (box(es) "
            f"{', '.join(empty)} would be empty): use fewer boxes"
        )
    return boxes


@dataclass(frozen=True, slots=True)
class Slip:
    """The packing slip (and labels) of an issued despatch advice, and the SSCCs of its boxes."""

    pdf: bytes
    ssccs: list[str]


def slip(store: Store, settings: Settings, document_id: int) -> Slip:
    """The packing slip of the stored despatch advice ``document_id``, as ``documents show``
    renders it (the supplier's label size), and its boxes' SSCCs in order."""
    from edi_gateway.domain.documents import DespatchAdvice
    from edi_gateway.outbound.documents import show
    from edi_gateway.ubl.read import read_stored

    advice = read_stored(show(store, settings, document_id, "ubl").payload)
    if not isinstance(advice, DespatchAdvice):
        raise NotAllowed(f"document {document_id} is not a despatch advice: it has no slip")
    ssccs = list(dict.fromkeys(ln.handling_unit for ln in advice.lines if ln.handling_unit))
    return Slip(show(store, settings, document_id, "pdf").payload, ssccs)
