"""A received mail, taken apart: its sender, its Message-ID and the documents it carries.

No I/O here: :func:`read_mail` gets a mail's bytes and returns :class:`Piece` objects, one per
document, that the IMAP transport turns into Envelopes.

- Every XML attachment (``*.xml``, ``application/xml``, ``text/xml``, ``*+xml``) is a piece.
- Every ``*.xml`` entry of a zip attachment is a piece. Zips are opened in memory with limits:
  at most :data:`MAX_ZIP_ENTRIES` entries, each entry and all entries together at most the
  intake size limit once unpacked (read with a cap, never trusting the sizes the zip states);
  entry paths are reduced to a sanitised base name and never touch the file system. A zip
  that breaks a limit, is corrupt or encrypted, or holds no ``.xml`` is one refused piece
  (``BAD_ARCHIVE``) with the zip's bytes.
- A mail from a sender not allowed, or with no document at all, is one refused piece holding
  the whole mail (``SENDER_NOT_ALLOWED`` / ``NO_DOCUMENT``): the bytes are kept, never processed.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import PurePosixPath

from edi_gateway.errors import ErrorCode
from edi_gateway.transports.folder import safe_name

MAX_ZIP_ENTRIES = 1000
DEFAULT_LIMIT = 64 * 1024 * 1024  # when the caller sets no size limit
_XML_TYPES = ("application/xml", "text/xml")
_ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip")
_MAX_ID = 250  # longer Message-IDs are replaced by their digest in source_ref


@dataclass(frozen=True, slots=True)
class Piece:
    """One document of a mail (or the refused mail or zip itself).

    ``ref`` is stable for the same mail bytes: the MIME part's index, ``<part>/<entry>`` for a
    zip entry, ``mail`` for the whole mail.
    """

    ref: str
    filename: str
    payload: bytes
    refusal: tuple[ErrorCode, str] | None = None
    oversize: int | None = None
    sha256: str = ""
    """With ``oversize``: the digest of the bytes that were not kept."""


@dataclass(frozen=True, slots=True)
class Mail:
    """What the transport needs of a mail: who sent it, its identity and its documents."""

    sender: str
    message_id: str
    key: str
    """The mail's stable key in source_ref: ``<Message-ID>/<digest>`` or ``sha256:<digest>``."""
    pieces: list[Piece]


def sender_allowed(sender: str, allowed: Sequence[str]) -> bool:
    """Whether ``sender`` (an address) is listed, exactly or by its ``@domain``."""
    address = sender.strip().lower()
    if address.count("@") != 1:
        return False
    domain = "@" + address.split("@", 1)[1]
    return any(entry in (address, domain) for entry in allowed)


def mail_key(message_id: str, digest: str) -> str:
    """The stable part of a mail's source_ref (the Message-ID alone could be reused)."""
    if message_id and len(message_id) <= _MAX_ID and message_id.isprintable():
        return f"{message_id}/{digest[:16]}"
    return f"sha256:{digest}"


def parse_headers(raw: bytes) -> tuple[str, str, str]:
    """(sender address, Message-ID, Subject) of a mail's header bytes; ``""`` when missing."""
    msg = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)  # headers only
    return _sender(msg), _header(msg, "Message-ID"), _header(msg, "Subject")


def read_mail(raw: bytes, *, allowed: Sequence[str], max_bytes: int | None) -> Mail:
    """The documents of the mail ``raw`` as pieces (see the module docstring)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    sender, message_id, subject = parse_headers(raw)
    key = mail_key(message_id, hashlib.sha256(raw).hexdigest())
    whole = safe_name(f"{subject or 'mail'}.eml", 120)
    if not sender_allowed(sender, allowed):
        detail = (
            f"mail {message_id or '(no Message-ID)'} from {sender or 'an unreadable From'} "
            "refused: the sender is not in the connector's allowed_senders; the whole mail is "
            "kept here and in the mailbox's failed folder"
        )
        return Mail(sender, message_id, key, [_refused("mail", whole, raw, _SNA, detail)])
    limit = max_bytes or DEFAULT_LIMIT
    pieces: list[Piece] = []
    assert isinstance(msg, EmailMessage)
    try:
        for index, part in enumerate(msg.walk()):
            if not part.is_multipart():
                pieces.extend(_part_pieces(part, str(index), limit))
    except Exception as exc:  # noqa: BLE001 - the email package raises anything on hostile headers
        detail = (
            f"mail {message_id or '(no Message-ID)'} cannot be taken apart "
            f"({type(exc).__name__}: {exc}); the whole mail is kept here and in the failed folder"
        )
        return Mail(
            sender, message_id, key, [_refused("mail", whole, raw, ErrorCode.NO_DOCUMENT, detail)]
        )
    if not pieces:
        detail = f"mail {message_id or '(no Message-ID)'} carried no XML or zip attachment"
        pieces.append(_refused("mail", whole, raw, ErrorCode.NO_DOCUMENT, detail))
    return Mail(sender, message_id, key, pieces)


_SNA = ErrorCode.SENDER_NOT_ALLOWED


def _refused(ref: str, name: str, payload: bytes, code: ErrorCode, detail: str) -> Piece:
    return Piece(ref, name, payload, refusal=(code, detail))


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _sender(msg: Message) -> str:
    """The one address in From, lower-cased; ``""`` when From is missing or holds several."""
    found = [addr for _, addr in getaddresses([str(v) for v in msg.get_all("From", [])]) if addr]
    return found[0].strip().lower() if len(found) == 1 else ""


def _kind(part: Message) -> str | None:
    name = (part.get_filename() or "").lower()
    ctype = part.get_content_type()
    if name.endswith(".xml") or ctype in _XML_TYPES or ctype.endswith("+xml"):
        return "xml"
    if name.endswith(".zip") or ctype in _ZIP_TYPES:
        return "zip"
    return None


def _part_pieces(part: Message, ref: str, limit: int) -> list[Piece]:
    kind = _kind(part)
    if kind is None:
        return []
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return []
    default = "document.xml" if kind == "xml" else "documents.zip"
    name = safe_name(part.get_filename() or default)
    if kind == "zip":
        return _unzip(data, ref, name, limit)
    if len(data) > limit:
        return [Piece(ref, name, b"", oversize=len(data), sha256=hashlib.sha256(data).hexdigest())]
    return [Piece(ref, name, data)]


def _unzip(data: bytes, ref: str, name: str, limit: int) -> list[Piece]:
    """The ``*.xml`` entries of a zip, within the limits; else the zip as one refused piece."""
    try:
        return _entries(data, ref, limit)
    except _Refused as exc:
        return [_refused(ref, name, data, ErrorCode.BAD_ARCHIVE, f"zip {name}: {exc}")]
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        detail = f"zip {name} cannot be read ({exc})"
        return [_refused(ref, name, data, ErrorCode.BAD_ARCHIVE, detail)]
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown compression
        detail = f"zip {name} cannot be unpacked ({exc})"
        return [_refused(ref, name, data, ErrorCode.BAD_ARCHIVE, detail)]


class _Refused(Exception):
    """A zip breaks a limit."""


def _entries(data: bytes, ref: str, limit: int) -> list[Piece]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if len(infos) > MAX_ZIP_ENTRIES:
            raise _Refused(f"{len(infos)} entries, more than the limit of {MAX_ZIP_ENTRIES}")
        pieces: list[Piece] = []
        total = 0
        for number, info in enumerate(infos):
            base = PurePosixPath(info.filename.replace("\\", "/")).name
            if not base.lower().endswith(".xml") or base.startswith("."):
                continue  # a read-me, a PDF copy, macOS resource forks
            if info.flag_bits & 0x1:
                raise _Refused(f"entry {number} is encrypted")
            with archive.open(info) as stream:
                content = stream.read(limit + 1)
            total += len(content)
            if len(content) > limit or total > limit:
                raise _Refused(f"unpacks to more than the limit of {limit:,} bytes")
            pieces.append(Piece(f"{ref}/{number}", safe_name(base), content))
    if not pieces:
        raise _Refused("no .xml entry")
    return pieces
