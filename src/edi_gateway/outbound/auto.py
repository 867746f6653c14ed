"""Auto rules: answer new orders on receipt, as the buyer's or supplier's profile says.

``partners[].auto_response: acknowledge | accept`` on the supplier (orders to it) or on the
buyer (orders from it; the supplier's rule wins when both have one) issues an Order Response
AB or AP for every order that arrives ``Received``. A rule that cannot be followed (no outbound
connector, say) is written to the order's history and processing goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edi_gateway.errors import GatewayError
from edi_gateway.outbound.issuing import Issued
from edi_gateway.outbound.respond import Decision, issue
from edi_gateway.pipeline.history import SYSTEM, record

if TYPE_CHECKING:
    from edi_gateway.config import Settings
    from edi_gateway.store.db import Store

CODE = {"acknowledge": "AB", "accept": "AP"}


def auto_respond(store: Store, settings: Settings, message_ids: Sequence[int]) -> list[Issued]:
    """Apply the auto rules to the orders these messages created."""
    rules = {p.id: CODE[p.auto_response] for p in settings.partners if p.auto_response in CODE}
    if not rules or not message_ids:
        return []
    from edi_gateway.store.queries import orders_created_by
    from edi_gateway.store.tables import Order

    issued: list[Issued] = []
    with store.session() as session:
        orders = session.scalars(orders_created_by(message_ids).where(Order.status == "Received"))
        for order in list(orders):
            code = rules.get(order.seller_partner or "") or rules.get(order.buyer_partner or "")
            if code is None:
                continue
            try:
                with session.begin_nested():
                    issued.append(issue(session, settings, order, Decision(code), actor=SYSTEM))
            except GatewayError as exc:
                record(
                    session, "auto_response.skipped", f"{code}: {exc.message}", order_id=order.id
                )
    return issued
