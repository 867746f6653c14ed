"""The folder connector's harness: the reference the suite is checked against (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.integration.connectors.harness import Stop, poll_once

if TYPE_CHECKING:
    from edi_gateway.app import Gateway, Outcome


class FolderHarness:
    """A partner who drops files into a shared folder and reads the gateway's out folder."""

    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inbox = root / "partner-in"
        self.outbox = root / "partner-out"
        for folder in (self.inbox, self.outbox):
            folder.mkdir(parents=True, exist_ok=True)

    def inbound(self, name: str) -> dict[str, Any]:
        return {"name": name, "type": "folder", "direction": "in", "path": str(self.inbox)}

    def outbound(self, name: str) -> dict[str, Any]:
        return {"name": name, "type": "folder", "direction": "out", "path": str(self.outbox)}

    def with_bad_credentials(self, entry: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError("a folder has no credentials")

    def take(self, gateway: Gateway, name: str, stop: Stop = lambda: False) -> Outcome:
        return poll_once(gateway, name, stop)

    def send(self, name: str, payload: bytes) -> None:
        # A directory entry cannot hold "/" or NUL, nor more than 255 bytes: the nearest name.
        name = Path(name.replace("\x00", "")).name[:200]
        part = self.inbox / f".{name}.part"
        part.write_bytes(payload)
        part.rename(self.inbox / name)

    def waiting(self) -> int:
        return sum(1 for p in self.inbox.iterdir() if p.is_file() and not p.name.startswith("."))

    def delivered(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.outbox.iterdir() if p.is_file()}

    def reset(self) -> None:
        for path in self.root.rglob("*"):
            if path.is_file() or path.is_symlink():
                path.unlink()

    def restart(self) -> None:
        """Nothing to restart: a folder is always there."""

    def outside_files(self) -> list[str]:
        allowed = {self.inbox, self.outbox, self.root / "archive", self.root / "error"}
        return [
            str(p)
            for p in self.root.rglob("*")
            if p.is_file() and not any(a in p.parents for a in allowed)
        ]
