"""IMAP transport (``type: imap``): documents attached to the mails of a mailbox.

``poll`` logs in, selects ``mailbox`` and offers, mail by mail, every mail still there (not
deleted, without the keywords ``$EdiProcessed`` / ``$EdiFailed``). Each XML attachment and each
``*.xml`` of a zip attachment becomes its own Envelope (:mod:`.email_parts`):

- ``source`` is ``imap:<connector>``; ``source_ref`` is ``<Message-ID>/<mail digest>/<part>``
  (``<part>/<entry>`` in a zip), stable for the same mail however often it is offered; the
  digest keeps two different mails that reuse one Message-ID apart.
- ``meta`` holds ``sender`` (the From address), ``message_id``, ``imap_uid``, ``uidvalidity``.
- A mail from a sender not in ``allowed_senders``, or without any document, becomes one
  Envelope of the whole mail that intake stores as ``failed`` (``SENDER_NOT_ALLOWED``,
  ``NO_DOCUMENT``); it is never processed and never deleted.

Mails are read with ``BODY.PEEK`` (nothing changes on the server while reading). A mail is
moved (IMAP MOVE, else COPY + \\Deleted + EXPUNGE) to ``processed``, or to ``failed`` when one
of its documents failed, only in ``ack`` once every Envelope of the mail was acknowledged, i.e.
after intake committed them all; with ``processed: null`` / ``failed: null`` it stays and gets a
keyword instead. Nothing is claimed on the server: a mail not acknowledged (a crash, a stop
between batches) is simply still in the mailbox and offered again by the next ``poll``, which
intake's idempotency makes harmless. So ``recover`` has nothing to do. One gateway per mailbox.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edi_gateway.envelope import Envelope
from edi_gateway.errors import ConfigError, ErrorCode
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.claims import Claimants
from edi_gateway.transports.email_common import auth_error, network_error
from edi_gateway.transports.email_parts import (
    DEFAULT_LIMIT,
    Mail,
    Piece,
    mail_key,
    parse_headers,
    read_mail,
)
from edi_gateway.transports.email_spec import ImapConnector
from edi_gateway.transports.tls import client_tls

log = logging.getLogger(__name__)

PROCESSED_KEYWORD = "$EdiProcessed"
FAILED_KEYWORD = "$EdiFailed"
_SEARCH = ("UNDELETED", "UNKEYWORD", PROCESSED_KEYWORD, "UNKEYWORD", FAILED_KEYWORD)
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_NETWORK = (OSError, imaplib.IMAP4.abort)


@dataclass(slots=True)
class _Claim:
    """A mail offered and not yet settled: the refs still to be acknowledged."""

    uidvalidity: str
    refs: set[str] = field(default_factory=set)
    ok: bool = True


class ImapInbound:
    """Offers the documents of the mails in an IMAP folder; see the module docstring."""

    def __init__(
        self,
        conn: ImapConnector,
        max_bytes: int | None = None,
        claimants: Claimants | None = None,
    ) -> None:
        """``claimants`` is not needed: what a gateway took and never acknowledged, the server
        itself gives back once that gateway's connection is gone (transports/claims.py)."""
        del claimants
        if conn.direction != "in":
            raise ConfigError(f"connector {conn.name!r} is not inbound (direction: in)")
        self.name = conn.name
        self.source = f"imap:{conn.name}"
        self._conn = conn
        self._max_bytes = max_bytes
        self._where = f"IMAP {conn.host}:{conn.server_port} ({conn.name})"
        self._imap: imaplib.IMAP4 | None = None
        self._uidvalidity = ""
        self._pending: dict[str, _Claim] = {}
        self._polling = False
        self._caps: frozenset[str] = frozenset()

    def recover(self) -> Iterator[Envelope]:
        """Nothing: a mail not acknowledged is still in the mailbox and ``poll`` offers it."""
        return iter(())

    def poll(self) -> Iterator[Envelope]:
        """Offer the documents of every mail in the mailbox, mail by mail, oldest first."""
        self._pending.clear()
        imap = self._connect()
        self._polling, finished = True, False
        try:
            for uid in self._search(imap):
                mail_envelopes = self._read(imap, uid)
                self._pending[uid] = _Claim(
                    self._uidvalidity, {e.source_ref for e in mail_envelopes}
                )
                yield from mail_envelopes
            finished = True
        finally:
            self._polling = False
            if not finished:  # stopped or failed part-way: unacknowledged mails stay as they are
                self._pending.clear()
            if not self._pending:
                self.close()

    def ack(self, envelope: Envelope, *, ok: bool) -> None:
        """Settle the envelope's mail once all its envelopes are acknowledged (see module)."""
        if envelope.source != self.source:
            raise TransportError(
                f"{self.source} cannot acknowledge {envelope.source}/{envelope.source_ref!r}",
                recoverable=False,
                code=ErrorCode.INTERNAL_ERROR,
            )
        uid = envelope.meta.get("imap_uid", "")
        claim = self._pending.get(uid)
        if claim is None or envelope.source_ref not in claim.refs:
            return  # acknowledged before, or offered by an earlier poll: nothing to do
        claim.refs.discard(envelope.source_ref)
        claim.ok = claim.ok and ok
        if claim.refs:
            return
        del self._pending[uid]
        try:
            self._settle(uid, claim)
        finally:
            if not self._polling and not self._pending:
                self.close()

    def close(self) -> None:
        """Log out (the transport reconnects when used again)."""
        imap, self._imap = self._imap, None
        if imap is None:
            return
        try:
            imap.logout()
        except (*_NETWORK, imaplib.IMAP4.error):
            _shutdown(imap)

    def _drop(self) -> None:
        """Forget a dead link without talking to the server."""
        imap, self._imap = self._imap, None
        if imap is not None:
            _shutdown(imap)

    # -- the mailbox -------------------------------------------------------------------------

    def _connect(self) -> imaplib.IMAP4:
        if self._imap is not None:
            return self._imap
        conn = self._conn
        password = conn.password.value()
        imap = self._open()
        try:
            try:
                imap.login(conn.username, password)
            except imaplib.IMAP4.abort as exc:
                raise network_error(self._where, exc) from exc
            except imaplib.IMAP4.error as exc:
                raise auth_error(self._where, conn.username, _text(exc)) from exc
            self._caps = _capabilities(imap)
            self._select(imap)
        except _NETWORK as exc:
            _shutdown(imap)
            raise network_error(self._where, exc) from exc
        except BaseException:
            _shutdown(imap)
            raise
        self._imap = imap
        return imap

    def _open(self) -> imaplib.IMAP4:
        conn = self._conn
        context = client_tls(conn.ca_file)
        timeout = conn.timeout_seconds
        try:
            if conn.security == "ssl":
                return imaplib.IMAP4_SSL(
                    conn.host, conn.server_port, ssl_context=context, timeout=timeout
                )
            imap = imaplib.IMAP4(conn.host, conn.server_port, timeout=timeout)
        except (*_NETWORK, imaplib.IMAP4.error) as exc:
            raise network_error(self._where, exc) from exc
        if conn.security == "starttls":
            try:
                if "STARTTLS" not in imap.capabilities:
                    raise TransportError(
                        f"{self._where}: the server does not offer STARTTLS; use security: ssl "
                        "with its TLS port, or ask for STARTTLS",
                        recoverable=False,
                        code=ErrorCode.TLS_FAILED,
                    )
                imap.starttls(ssl_context=context)
            except (*_NETWORK, imaplib.IMAP4.error) as exc:
                _shutdown(imap)
                raise network_error(self._where, exc) from exc
            except TransportError:
                _shutdown(imap)
                raise
        return imap

    def _select(self, imap: imaplib.IMAP4) -> None:
        mailbox = self._conn.mailbox
        typ, data = self._call(imap.select, _quote(mailbox))
        if typ != "OK":
            raise TransportError(
                f"{self._where}: cannot open mailbox {mailbox!r} ({_text(data)}); check mailbox",
                recoverable=False,
                code=ErrorCode.NOT_FOUND,
            )
        _, validity = imap.response("UIDVALIDITY")
        self._uidvalidity = _text(validity)
        for folder in (self._conn.processed, self._conn.failed):
            if folder is not None:
                self._call(imap.create, _quote(folder))  # NO when it exists: that is fine

    def _search(self, imap: imaplib.IMAP4) -> list[str]:
        typ, data = self._call(imap.uid, "SEARCH", *_SEARCH)
        self._expect(typ, data, "search the mailbox")
        return [uid.decode() for uid in b" ".join(d for d in data if d).split()]

    def _read(self, imap: imaplib.IMAP4, uid: str) -> list[Envelope]:
        limit = self._max_bytes or DEFAULT_LIMIT
        typ, data = self._call(imap.uid, "FETCH", uid, "(RFC822.SIZE)")
        self._expect(typ, data, f"read the size of mail {uid}")
        found = _SIZE.search(b" ".join(d for d in data if isinstance(d, bytes)))
        size = int(found.group(1)) if found else 0
        if size > 2 * limit + (1 << 20):  # larger than any mail with a document we would take
            return self._too_large(imap, uid, size)
        raw = self._fetch(imap, uid, "BODY.PEEK[]")
        mail = read_mail(raw, allowed=self._conn.allowed_senders, max_bytes=self._max_bytes)
        return [self._envelope(mail, piece, uid) for piece in mail.pieces]

    def _too_large(self, imap: imaplib.IMAP4, uid: str, size: int) -> list[Envelope]:
        import hashlib

        header = self._fetch(imap, uid, "BODY.PEEK[HEADER]")
        sender, message_id, _ = parse_headers(header)
        digest = hashlib.sha256(header).hexdigest()
        piece = Piece("mail", "mail.eml", b"", oversize=size, sha256=digest)
        mail = Mail(sender, message_id, mail_key(message_id, digest), [piece])
        return [self._envelope(mail, piece, uid)]

    def _fetch(self, imap: imaplib.IMAP4, uid: str, what: str) -> bytes:
        typ, data = self._call(imap.uid, "FETCH", uid, f"({what})")
        self._expect(typ, data, f"read mail {uid}")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return bytes(item[1])
        raise TransportError(
            f"{self._where}: mail {uid} vanished while being read; it is tried again",
            recoverable=True,
            code=ErrorCode.CONNECTION_FAILED,
        )

    def _envelope(self, mail: Mail, piece: Piece, uid: str) -> Envelope:
        meta = {
            "sender": mail.sender,
            "message_id": mail.message_id,
            "imap_uid": uid,
            "uidvalidity": self._uidvalidity,
        }
        if piece.oversize is not None:
            kept = f"mail {mail.message_id or uid} in {self._conn.failed or self._conn.mailbox}"
            meta.update(sha256=piece.sha256, limit=str(self._max_bytes or 0), kept_at=kept)
        return Envelope(
            piece.payload,
            self.source,
            f"{mail.key}/{piece.ref}",
            piece.filename,
            meta=meta,
            oversize=piece.oversize,
            refusal=piece.refusal,
        )

    def _settle(self, uid: str, claim: _Claim) -> None:
        """Move (or mark) a mail whose envelopes intake committed; once, after reconnecting."""
        for attempt in (1, 2):
            try:
                imap = self._connect()
                if claim.uidvalidity != self._uidvalidity:
                    log.warning("%s: mailbox renumbered; mail %s is offered again", self.name, uid)
                    return
                self._move_or_mark(imap, uid, claim.ok)
                return
            except TransportError as exc:
                self.close()
                if attempt == 2 or not exc.recoverable:
                    raise

    def _move_or_mark(self, imap: imaplib.IMAP4, uid: str, ok: bool) -> None:
        folder = self._conn.processed if ok else self._conn.failed
        if folder is None:
            keyword = PROCESSED_KEYWORD if ok else FAILED_KEYWORD
            typ, data = self._call(imap.uid, "STORE", uid, "+FLAGS", f"(\\Seen {keyword})")
            self._expect(typ, data, f"mark mail {uid} {keyword}")
            return
        if "MOVE" in self._caps:
            typ, data = self._call(imap.uid, "MOVE", uid, _quote(folder))
            self._expect(typ, data, f"move mail {uid} to {folder!r}")
            return
        typ, data = self._call(imap.uid, "COPY", uid, _quote(folder))
        self._expect(typ, data, f"copy mail {uid} to {folder!r}")
        typ, data = self._call(imap.uid, "STORE", uid, "+FLAGS", "(\\Deleted)")
        self._expect(typ, data, f"delete mail {uid} after copying it to {folder!r}")
        if "UIDPLUS" in self._caps:
            self._call(imap.uid, "EXPUNGE", uid)
        else:
            self._call(imap.expunge)

    def _call(self, method: Callable[..., tuple[str, list[Any]]], *args: str) -> Any:
        """An imaplib call; a dropped link becomes a recoverable TransportError."""
        try:
            return method(*args)
        except _NETWORK as exc:
            self._drop()
            raise network_error(self._where, exc) from exc
        except imaplib.IMAP4.error as exc:
            raise TransportError(
                f"{self._where}: the server refused a command ({_text(exc)}); tried again later",
                recoverable=True,
                code=ErrorCode.CONNECTION_FAILED,
            ) from exc

    def _expect(self, typ: str, data: list[Any], what: str) -> None:
        if typ != "OK":
            raise TransportError(
                f"{self._where}: cannot {what}: {_text(data)}",
                recoverable=True,
                code=ErrorCode.CONNECTION_FAILED,
            )


def _capabilities(imap: imaplib.IMAP4) -> frozenset[str]:
    """What the server offers once logged in (imaplib keeps only the greeting's list)."""
    typ, data = imap.capability()
    if typ != "OK":
        return frozenset(imap.capabilities)
    return frozenset(_text(data).upper().split())


def _shutdown(imap: imaplib.IMAP4) -> None:
    with contextlib.suppress(OSError):
        imap.shutdown()


def _quote(name: str) -> str:
    """An IMAP quoted string (folder names are checked to be printable ASCII at load)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(value: object) -> str:
    """Readable text of an imaplib answer or exception argument."""
    if isinstance(value, BaseException):
        value = value.args[0] if value.args else str(value)
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)
