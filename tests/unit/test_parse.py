"""The hardened parser: every refusal code, hostile inputs, genuine documents that must parse."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

import edi_gateway.ubl.parse as parse_module
from edi_gateway.errors import DocumentError, ErrorCode
from edi_gateway.ubl.parse import parse

DATA = Path(__file__).resolve().parents[1] / "data" / "parse"
ORDER = (DATA / "peppol-order-minimal.xml").read_bytes()
MB = 1024 * 1024
LIMIT = 50 * MB


def refusal(payload: bytes, max_size: int = LIMIT) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        parse(payload, max_size=max_size)
    return info.value


def big_order(lines: int, pad: int) -> bytes:
    """The minimal order with ``lines`` order lines, each item name padded by ``pad`` bytes."""
    start, end = ORDER.index(b"  <cac:OrderLine>"), ORDER.index(b"</Order>")
    line = ORDER[start:end]
    body = b"".join(
        line.replace(b"<cbc:ID>1</cbc:ID>", b"<cbc:ID>%d</cbc:ID>" % n).replace(
            b"<cbc:Name>Widget</cbc:Name>", b"<cbc:Name>Widget %d %s</cbc:Name>" % (n, b"x" * pad)
        )
        for n in range(1, lines + 1)
    )
    return ORDER[:start] + body + ORDER[end:]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A local listening socket: a connection to it would prove network access."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(5)
        sock.settimeout(0.2)
        yield sock


def assert_no_connection(sock: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        conn, _ = sock.accept()
        conn.close()


@pytest.fixture
def no_libxml2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the payload ever reaches libxml2."""

    def forbidden(payload: bytes) -> etree._Element:
        raise AssertionError("payload reached libxml2")

    monkeypatch.setattr(parse_module, "_libxml2_parse", forbidden)


# --- genuine documents ---------------------------------------------------------------------


def test_minimal_order_parses_to_root_element() -> None:
    root = parse(ORDER, max_size=LIMIT)
    assert etree.QName(root).localname == "Order"
    assert root.getroottree().docinfo.encoding == "UTF-8"


@pytest.mark.parametrize(
    ("payload", "encoding"),
    [
        (b"\xef\xbb\xbf" + ORDER, "UTF-8"),
        (ORDER.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"), None),
        (ORDER.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16-be"), None),
        (
            b"\xfe\xff"
            + ORDER.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16-be"),
            None,
        ),
        (ORDER.decode().replace("UTF-8", "ISO-8859-1").encode("latin-1"), "ISO-8859-1"),
        (ORDER.decode().replace("UTF-8", "windows-1252").encode("cp1252"), "windows-1252"),
    ],
    ids=["utf8-bom", "utf16-bom", "utf16be-no-bom", "utf16be-bom", "latin1", "cp1252"],
)
def test_genuine_encodings_parse(payload: bytes, encoding: str | None) -> None:
    root = parse(payload, max_size=LIMIT)
    note = root.find("{*}Note")
    assert note is not None
    assert note.text == "Café crème, 10 × widgets"
    if encoding:
        assert root.getroottree().docinfo.encoding == encoding


def test_comments_and_processing_instructions_are_dropped_and_text_joined() -> None:
    """A value is never cut short by a comment inside it: ``4<!-- -->0`` reads 40."""
    root = parse(b"<a><q>4<!-- x -->0<?pi y?>1</q><!-- gone --></a>", max_size=100)
    assert len(root) == 1 and root[0].text == "401"


def test_size_exactly_at_limit_is_accepted() -> None:
    assert parse(ORDER, max_size=len(ORDER)) is not None


def test_fourteen_mb_order_with_20000_lines_parses_without_huge_tree() -> None:
    payload = big_order(20_000, pad=180)
    assert 13 * MB < len(payload) < 16 * MB
    root = parse(payload, max_size=LIMIT)
    assert len(root.findall("{*}OrderLine")) == 20_000


# --- EMPTY and TOO_LARGE ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"", b" ", b"\n\r\n\t  ", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n", "  \n".encode("utf-16")],
    ids=["zero", "space", "whitespace", "bom", "bom-space", "utf16-spaces"],
)
def test_empty(payload: bytes) -> None:
    assert refusal(payload).code is ErrorCode.EMPTY


def test_too_large_is_refused_before_parsing(no_libxml2: None) -> None:
    payload = bytes(LIMIT + 1)  # 50 MB + 1 of NUL bytes, allocated zeroed, cheap
    error = refusal(payload)
    assert error.code is ErrorCode.TOO_LARGE
    assert f"{LIMIT:,}" in error.message


def test_one_byte_over_limit() -> None:
    assert refusal(ORDER, max_size=len(ORDER) - 1).code is ErrorCode.TOO_LARGE


def test_too_large_wins_over_empty() -> None:
    assert refusal(b"   ", max_size=2).code is ErrorCode.TOO_LARGE


@pytest.mark.parametrize(
    "payload",
    [b"<a>" * 300 + b"</a>" * 300, b"<a>" + b"x" * 10_000_001 + b"</a>"],
    ids=["deeper-than-256", "text-node-over-10MB"],
)
def test_libxml2_resource_limits_are_too_large(payload: bytes) -> None:
    error = refusal(payload)
    assert error.code is ErrorCode.TOO_LARGE
    assert "safety limit" in error.message


# --- FORBIDDEN_DTD -----------------------------------------------------------------------------

LOL = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + b"".join(
        b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>\n<lolz>&lol9;</lolz>"
)


@pytest.mark.parametrize(
    "payload",
    [
        b"<!DOCTYPE a>\n<a/>",
        b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY e "x">]>\n<a>&e;</a>',
        b'<!DOCTYPE a SYSTEM "a.dtd"><a/>',
        b'<!DOCTYPE a PUBLIC "-//X//DTD X//EN" "http://example.invalid/x.dtd"><a/>',
        b'<!DOCTYPE a [<!ENTITY % p SYSTEM "p.ent"> %p;]><a/>',
        b"\xef\xbb\xbf<?xml version='1.0'?><!-- c --><?pi x?>\n <!DOCTYPE a><a/>",
        b"<!doctype a><a/>",
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a><a/>'.encode("utf-16"),
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a><a/>'.encode("utf-16-le"),
        '<?xml version="1.0" encoding="UTF-32"?><!DOCTYPE a><a/>'.encode("utf-32"),
        b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE a+AD4-<a/>',
        LOL,
    ],
    ids=[
        "bare",
        "internal-entity",
        "external-dtd",
        "public-dtd",
        "parameter-entity",
        "after-bom-comment-pi",
        "lowercase",
        "utf16-bom",
        "utf16-no-bom",
        "utf32",
        "utf7-disguised",
        "billion-laughs",
    ],
)
def test_any_doctype_is_refused_before_libxml2(payload: bytes, no_libxml2: None) -> None:
    assert refusal(payload).code is ErrorCode.FORBIDDEN_DTD


def test_billion_laughs_is_refused() -> None:
    error = refusal(LOL)
    assert error.code is ErrorCode.FORBIDDEN_DTD
    assert "DOCTYPE" in error.message


def test_xxe_file_entity_never_reads_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("S3CRET-edi-gateway-xxe-canary")
    payload = (
        b'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "%s">]>\n<a>&x;</a>'
        % secret.as_uri().encode()
    )
    error = refusal(payload)
    assert error.code is ErrorCode.FORBIDDEN_DTD
    assert "S3CRET" not in str(error)
    # Defence in depth: even the libxml2 layer on its own does not expand the entity.
    root = parse_module._libxml2_parse(payload)
    assert b"S3CRET" not in etree.tostring(root)


def test_xxe_network_entity_opens_no_socket(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    url = b"http://127.0.0.1:%d/evil" % port
    payloads = [
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "%s">]><a>&x;</a>' % url,
        b'<!DOCTYPE a SYSTEM "%s"><a/>' % url,
        b'<!DOCTYPE a [<!ENTITY %% p SYSTEM "%s"> %%p;]><a/>' % url,
    ]
    for payload in payloads:
        assert refusal(payload).code is ErrorCode.FORBIDDEN_DTD
        parse_module._libxml2_parse(payload)  # the parser settings alone must not connect
    assert_no_connection(listener)


# --- BAD_ENCODING -------------------------------------------------------------------------------


def test_latin1_bytes_declared_utf8() -> None:
    payload = '<?xml version="1.0" encoding="UTF-8"?>\n<a>\ncafé</a>'.encode("latin-1")
    error = refusal(payload)
    assert error.code is ErrorCode.BAD_ENCODING
    assert error.line == 3


def test_latin1_bytes_without_declaration() -> None:
    assert refusal("<a>café</a>".encode("latin-1")).code is ErrorCode.BAD_ENCODING


@pytest.mark.parametrize("name", ["X-NOPE-9", "hex", "", "UTF-8 "])
def test_unknown_encoding_name(name: str, no_libxml2: None) -> None:
    payload = b'<?xml version="1.0" encoding="%s"?>\n<a/>' % name.encode()
    error = refusal(payload)
    assert error.code is ErrorCode.BAD_ENCODING
    assert repr(name) in error.message


def test_encoding_python_knows_but_libxml2_does_not() -> None:
    payload = '<?xml version="1.0" encoding="IBM037"?><a/>'.encode("cp037")
    assert refusal(payload).code is ErrorCode.BAD_ENCODING


# --- NOT_WELL_FORMED ----------------------------------------------------------------------------


def test_truncated_has_line_number() -> None:
    payload = ORDER[: ORDER.index(b"<cac:OrderLine>") + 20]
    error = refusal(payload)
    assert error.code is ErrorCode.NOT_WELL_FORMED
    assert error.line == ORDER[: len(payload)].count(b"\n") + 1


@pytest.mark.parametrize(
    "payload",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        bytes(range(256)) * 4,
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"hello world",
        b"<a></b>",
        b"<a/><b/>",
        b"<a>&undefined;</a>",
        b"<a>\x01</a>",
        b'<?xml version="1.0"?>',
    ],
    ids=["png", "bytes", "pdf", "text", "mismatch", "two-roots", "entity-ref", "ctrl", "decl-only"],
)
def test_not_well_formed(payload: bytes) -> None:
    error = refusal(payload)
    assert error.code is ErrorCode.NOT_WELL_FORMED
    assert error.line is not None


def test_doctype_in_content_is_not_mistaken_for_a_dtd() -> None:
    root = parse(b"<a><![CDATA[<!DOCTYPE x>]]><!-- <!DOCTYPE y> --></a>", max_size=100)
    assert root.text == "<!DOCTYPE x>"
