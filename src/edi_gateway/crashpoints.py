"""Named crash points: where the proofs kill the gateway with SIGKILL on purpose.

``EDI_GATEWAY_CRASH_AT=POINT`` (or ``POINT@N``: the N-th time, counted per process; or
``POINT=SUBJECT``: each time it is reached for that subject) makes the process kill itself
with SIGKILL when it reaches ``POINT``, exactly as an operator's ``kill -9``
or a power cut would stop it there. Unset (always, in production), :func:`reach` is one
environment look-up. The points are the moments between two durable steps where a crash is
most likely to lose or double work (docs/adr/0016):

``after-claim``          a transport handed over claimed payloads; intake has not committed them
``after-intake-commit``  intake committed the raw bytes; processing and the ack have not run
``after-process``        outcomes and reactions committed; the transport is not acknowledged
``during-recovery``      a payload a crash left claimed was committed again by ``recover``
``after-temp-write``     a folder/SFTP delivery wrote its temporary file, not yet renamed
``after-bundle-part``    a flush queued one bundle (or part of one) in the outbox and marked its
                         orders; the flush's transaction has not committed (docs/adr/0039)
``after-send``           a transport delivered an outbox row; the row is not yet marked sent
                         (folder and SFTP: the re-run finds the identical file; the others send
                         again with the same message ID: README, "Delivery guarantees")
``purge-after-archive``  a purge batch is in the archive (fsynced); its rows are not deleted
``purge-before-commit``  a purge batch's rows are deleted, its transaction not yet committed
``bulk-issued``          a bulk respond/despatch/invoice issued one order's document in its
                         batch's transaction, not yet committed (docs/adr/0038)
``reading``              processing is about to read a message (subject: its file name): with
                         ``reading=NAME``, a document that kills every process reading it
                         (docs/adr/0046)
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "EDI_GATEWAY_CRASH_AT"
POINTS = frozenset(
    {
        "after-claim",
        "after-intake-commit",
        "after-process",
        "during-recovery",
        "after-temp-write",
        "after-bundle-part",
        "after-send",
        "purge-after-archive",
        "purge-before-commit",
        "bulk-issued",
        "reading",
    }
)
_passed: Counter[str] = Counter()  # per process, only ever touched when ENV is set


def reach(point: str, subject: str | None = None) -> None:
    """Die here (SIGKILL) if ``EDI_GATEWAY_CRASH_AT`` names this point (and this pass, or this
    ``subject``)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition("@")
    name, equals, wanted = name.partition("=")
    if name != point or (equals and wanted != subject):
        return
    _passed[point] += 1
    if _passed[point] == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
