"""GS1 Serial Shipping Container Codes (SSCC): the 18-digit number of one box or pallet.

An SSCC is the extension digit, the GS1 company prefix, a serial reference (as many digits
as the prefix leaves of 16) and the GS1 mod-10 check digit (GS1 General Specifications 2.2.1
and 7.9.1). On a GS1-128 barcode it follows FNC1 and Application Identifier (00).
"""

from __future__ import annotations

import re

SSCC_LENGTH = 18
PREFIX = re.compile(r"^[0-9]{4,12}$")
"""A GS1 company prefix: 4 to 12 digits (GS1 issues 6 to 12; 4-5 only for one-off numbers)."""
FNC1 = "\xf1"
"""How reportlab's Code128 writes the FNC1 function character."""


def check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of ``digits`` (weights 3, 1, 3 ... from the right)."""
    if not digits.isdigit() or not digits.isascii():
        raise ValueError(f"not a string of digits: {digits!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def is_valid(sscc: str) -> bool:
    """Whether ``sscc`` is 18 digits whose last is the check digit of the first 17."""
    return (
        len(sscc) == SSCC_LENGTH
        and sscc.isascii()
        and sscc.isdigit()
        and check_digit(sscc[:-1]) == int(sscc[-1])
    )


def capacity(prefix: str) -> int:
    """How many serial references a company prefix leaves room for (10 ** digits left)."""
    return int(10 ** (SSCC_LENGTH - 2 - len(prefix)))


def sscc(extension: int, prefix: str, serial: int) -> str:
    """The SSCC of serial reference ``serial`` under ``prefix`` and ``extension`` digit."""
    if not 0 <= extension <= 9:
        raise ValueError(f"the extension digit is one digit 0-9, not {extension}")
    if not PREFIX.match(prefix):
        raise ValueError(f"a GS1 company prefix is 4 to 12 digits, not {prefix!r}")
    if not 0 <= serial < capacity(prefix):
        raise ValueError(
            f"serial reference {serial} does not fit the {16 - len(prefix)} digits that "
            f"company prefix {prefix} leaves"
        )
    body = f"{extension}{prefix}{serial:0{SSCC_LENGTH - 2 - len(prefix)}d}"
    return body + str(check_digit(body))


def gs1_128_data(sscc_value: str) -> str:
    """The Code 128 data of the SSCC's GS1-128 barcode: FNC1, AI ``00``, the 18 digits."""
    if not is_valid(sscc_value):
        raise ValueError(f"not a valid SSCC: {sscc_value!r}")
    return f"{FNC1}00{sscc_value}"


def human_readable(sscc_value: str) -> str:
    """The text printed under the barcode: the AI in brackets, then the 18 digits."""
    return f"(00) {sscc_value}"
