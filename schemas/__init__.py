"""Package data: the sha256 manifest of the OASIS UBL 2.1 ``xsdrt`` set (installed as
``edi_gateway.schemas``; see docs/adr/0002-xsd-source-and-hardened-parser.md)."""
