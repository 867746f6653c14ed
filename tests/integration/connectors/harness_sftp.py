"""The SFTP connector's harness: a private OpenSSH sshd (internal-sftp, chrooted) on loopback.

Recipe: ../shared/RECIPES.md. Needs root (a chroot, a system user); installs openssh-server
with apt when it is missing. The partner's side works on the chroot's files directly: it drops
files into ``/data/inbox`` the way an uploading partner would (``.part`` first, then rename)
and reads what the gateway uploaded into ``/data/outbox``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.integration.connectors.harness import Stop, poll_once
from tests.servers import apt_install, free_port, unavailable

if TYPE_CHECKING:
    from edi_gateway.app import Gateway, Outcome

SSHD = Path("/usr/sbin/sshd")
USER = "edisftp"
PASSWORD = "edi-sftp-test-only"  # the test user's password: only a loopback test sshd asks
CHROOT_BASE = Path("/var/lib/edi-gateway-tests")  # root-owned at every level, unlike /tmp
AREAS = ("inbox", "outbox", "archive", "error")


def _ensure_user() -> None:
    """The sftp-only test user, with the known test password (for password auth tests)."""
    if subprocess.run(["id", USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(
            ["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
    subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n", text=True, check=True)


def keygen(path: Path) -> str:
    """A new ed25519 key pair at ``path`` (+ ``.pub``); returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def fingerprint(pub: Path) -> str:
    """``SHA256:...`` of a public key file, as ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True, text=True
    )
    return out.stdout.split()[1]


def _descendants(pid: int) -> list[list[int]]:
    """PIDs below ``pid`` (sshd's per-connection processes), one list per generation."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    generations, frontier = [], [pid]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        if frontier:
            generations.append(frontier)
    return generations


class SshServer:
    """A private sshd on a free loopback port; ``root`` holds the chroot ``/data`` tree."""

    def __init__(self, base: Path, root: Path) -> None:
        self.base, self.root, self.port = base, root, free_port()
        self.data = root / "data"
        self.host_key = base / "host_ed25519"
        self.client_key = base / "client_ed25519"
        self.stranger_key = base / "stranger_ed25519"  # never authorized
        self.other_host_key = base / "other_host_ed25519"  # a "changed" server key
        self.known_hosts = base / "known_hosts"
        self.proc: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        """Keys, known_hosts, authorized_keys, the chroot tree and sshd_config."""
        os.chmod(self.base, 0o755)  # sshd reads authorized_keys as the user
        host_pub = keygen(self.host_key)
        client_pub = keygen(self.client_key)
        keygen(self.stranger_key)
        keygen(self.other_host_key)
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        authorized = self.base / f"authorized_keys_{USER}"
        authorized.write_text(client_pub + "\n")
        authorized.chmod(0o644)
        self.root.chmod(0o755)
        for folder in (self.data, *(self.data / a for a in AREAS)):
            folder.mkdir(exist_ok=True)
            shutil.chown(folder, user=USER, group=USER)
        (self.base / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {self.base / 'sshd.pid'}\nAuthorizedKeysFile {self.base}/authorized_keys_%u\n"
            "StrictModes no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
            f"UsePAM no\nPermitRootLogin no\nAllowUsers {USER}\nSubsystem sftp internal-sftp\n"
            f"Match User {USER}\n  ChrootDirectory {self.root}\n  ForceCommand internal-sftp\n"
            "  AllowTcpForwarding no\n  X11Forwarding no\n"
        )
        config = str(self.base / "sshd_config")
        check = subprocess.run(
            [str(SSHD), "-t", "-f", config], check=False, capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"sshd -t refused the config: {check.stderr}")

    def start(self) -> None:
        """Start sshd; ready when its port accepts connections."""
        log = (self.base / "sshd.log").open("ab")
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.base / "sshd_config")],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.base / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not open its port within 10 s")

    def stop(self) -> None:
        """Stop sshd and every session it serves (a real outage: open links drop)."""
        if self.proc is None:
            return
        # youngest first: each sshd monitor then reaps its session child and exits itself
        deadline = time.monotonic() + 5
        while (generations := _descendants(self.proc.pid)) and time.monotonic() < deadline:
            for pid in generations[-1]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            time.sleep(0.05)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextmanager
def sshd() -> Iterator[SshServer]:
    """A running private sshd; stopped and its folders removed afterwards."""
    if os.geteuid() != 0:
        unavailable("the sshd harness needs root (a chroot and a system user)")
    if not SSHD.exists():
        apt_install("openssh-server")
    if not SSHD.exists() or not shutil.which("ssh-keygen"):
        unavailable("openssh-server is not installed and could not be installed")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    CHROOT_BASE.mkdir(mode=0o755, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="edi-sshd-"))
    root = Path(tempfile.mkdtemp(prefix="sftp-", dir=CHROOT_BASE))
    server = SshServer(base, root)
    try:
        try:
            _ensure_user()
            server.prepare()
            server.start()
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            unavailable(f"sshd could not be started: {exc}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


class SftpHarness:
    """A partner with an SFTP server: its ``/data/inbox`` and ``/data/outbox`` folders."""

    kind = "sftp"

    def __init__(self, server: SshServer) -> None:
        self.server = server
        self.inbox = server.data / "inbox"
        self.outbox = server.data / "outbox"

    def _entry(self, name: str, direction: str, path: str) -> dict[str, Any]:
        return {
            "name": name,
            "type": "sftp",
            "direction": direction,
            "host": "127.0.0.1",
            "port": self.server.port,
            "username": USER,
            "private_key": {"file": str(self.server.client_key)},
            "known_hosts": str(self.server.known_hosts),
            "path": path,
            "connect_timeout": 5,
            "timeout": 10,
        }

    def inbound(self, name: str) -> dict[str, Any]:
        entry = self._entry(name, "in", "/data/inbox")
        return {**entry, "archive": "/data/archive", "error": "/data/error"}

    def outbound(self, name: str) -> dict[str, Any]:
        return self._entry(name, "out", "/data/outbox")

    def with_bad_credentials(self, entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "private_key": {"file": str(self.server.stranger_key)}}

    def take(self, gateway: Gateway, name: str, stop: Stop = lambda: False) -> Outcome:
        return poll_once(gateway, name, stop)

    def send(self, name: str, payload: bytes, folder: Path | None = None) -> None:
        # A directory entry cannot hold "/" or NUL, nor more than 255 bytes: the nearest name.
        name = Path(name.replace("\x00", "")).name[:200]
        target = folder or self.inbox
        part = target / f".{os.urandom(4).hex()}.part"
        part.write_bytes(payload)
        shutil.chown(part, user=USER, group=USER)
        part.rename(target / name)

    def waiting(self) -> int:
        claimed = self.inbox / ".claimed"
        folders = [self.inbox, claimed] if claimed.is_dir() else [self.inbox]
        return sum(
            1 for f in folders for p in f.iterdir() if p.is_file() and not p.name.startswith(".")
        )

    def delivered(self) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes()
            for p in self.outbox.iterdir()
            if p.is_file() and not p.name.startswith(".")
        }

    def files(self, area: str) -> dict[str, bytes]:
        """The regular files in ``/data/<area>`` by name."""
        folder = self.server.data / area
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def reset(self) -> None:
        for path in sorted(self.server.data.rglob("*"), reverse=True):
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir() and path.parent != self.server.data:
                path.rmdir()

    def restart(self) -> None:
        self.server.stop()
        self.server.start()

    def outside_files(self) -> list[str]:
        allowed = {self.server.data / a for a in AREAS}
        return [
            str(p)
            for p in self.server.root.rglob("*")
            if p.is_file() and not any(a in p.parents for a in allowed)
        ]
