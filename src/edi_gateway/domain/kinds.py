"""The document types the gateway interprets, on their own: the configuration names them, and
importing them must not cost the dataclasses of :mod:`edi_gateway.domain.documents` (start-up
of every command)."""

from __future__ import annotations

from enum import StrEnum


class DocumentKind(StrEnum):
    """The UBL 2.1 document types the gateway interprets (value = UBL root element name)."""

    ORDER = "Order"
    ORDER_CHANGE = "OrderChange"
    ORDER_CANCELLATION = "OrderCancellation"
    ORDER_RESPONSE = "OrderResponse"
    ORDER_RESPONSE_SIMPLE = "OrderResponseSimple"
    DESPATCH_ADVICE = "DespatchAdvice"
    RECEIPT_ADVICE = "ReceiptAdvice"
    INVOICE = "Invoice"
    CREDIT_NOTE = "CreditNote"
    DEBIT_NOTE = "DebitNote"
    APPLICATION_RESPONSE = "ApplicationResponse"
