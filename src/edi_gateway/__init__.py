"""edi-gateway: a UBL 2.1 / Peppol BIS 3 EDI gateway."""

__version__ = "0.1.0"
