"""AS2 (RFC 4130) over HTTP(S): an inbound endpoint that answers with MDNs, outbound delivery.

``cms`` (S/MIME primitives) and ``mime`` / ``mdn`` (messages and receipts) are the protocol
core and do no I/O; ``server`` and ``client`` put them on the wire.
"""

from __future__ import annotations

from edi_gateway.transports.as2.client import As2Outbound
from edi_gateway.transports.as2.server import serve_as2

__all__ = ["As2Outbound", "serve_as2"]
