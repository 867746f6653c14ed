"""Write domain documents as UBL 2.1 / Peppol BIS 3 XML: the mirror of :mod:`.read`.

Pure functions, domain object in, bytes out: no I/O, no store. Each writer builds the document
with lxml in the order the UBL 2.1 XSD sequences demand, keeps to the data model of the Peppol
transaction's Schematron (which refuses any element outside it), and serializes UTF-8 with an
XML declaration. Interpreting the output with :func:`edi_gateway.ubl.read.interpret` gives back
the document's essentials.

* :func:`write_order_response`: Peppol Order Response (T76), module :mod:`.write_order_response`.
* :func:`write_despatch_advice`: Peppol Despatch Advice (T16), module :mod:`.write_despatch`.

Mandatory Peppol data is never invented: when the domain object lacks it (an endpoint, the
currency of a response, an item name ...) the writer raises :class:`WriteError` naming every
problem at once. Defaults that are Peppol conventions rather than data (CustomizationID and
ProfileID, a Shipment ID ``NA``) are documented on each writer.
"""

from __future__ import annotations

from edi_gateway.ubl.write_common import WriteError
from edi_gateway.ubl.write_despatch import write_despatch_advice
from edi_gateway.ubl.write_invoice import write_debit_note, write_invoice
from edi_gateway.ubl.write_order_response import write_order_response

__all__ = [
    "WriteError",
    "write_debit_note",
    "write_despatch_advice",
    "write_invoice",
    "write_order_response",
]
