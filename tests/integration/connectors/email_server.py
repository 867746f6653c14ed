"""A real mail system for tests: Dovecot (IMAP, IMAPS, LMTP) and an SMTP front (aiosmtpd).

Recipe: ../shared/RECIPES.md ("Email"). Dovecot runs from its own config in a temporary folder
on free loopback ports, with a self-signed certificate for 127.0.0.1 (IMAPS, STARTTLS) and two
users, ``gateway`` and ``partner`` (mailboxes ``<user>@example.test``). The SMTP front offers
STARTTLS on one port and TLS from the first byte on another, requires AUTH of a known user
for nothing but checks it when given, and hands every accepted mail to Dovecot's LMTP.
Installed with apt when missing; a server that cannot start fails under CI=true.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers import apt_install, free_port, unavailable

DOMAIN = "example.test"
USERS = {"gateway": "gateway-secret", "partner": "partner-secret"}
MAIL_USER = "edimail"
PACKAGES = ("dovecot-imapd", "dovecot-lmtpd")


def _dovecot() -> str | None:
    """The dovecot binary (/usr/sbin may be missing from PATH)."""
    found = shutil.which("dovecot") or "/usr/sbin/dovecot"
    return found if Path(found).exists() else None


def _mail_user() -> tuple[int, int]:
    """A system user without a shell that owns the mailboxes."""
    try:
        entry = pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", MAIL_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(MAIL_USER)
    return entry.pw_uid, entry.pw_gid


def _certificate(base: Path) -> tuple[Path, Path]:
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key)),
            *("-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _dovecot_conf(base: Path, ports: dict[str, int], uid: int, gid: int) -> Path:
    users = base / "users"
    users.write_text(
        "".join(
            f"{name}:{{PLAIN}}{secret}:{uid}:{gid}::{base / 'mail' / name}\n"
            for name, secret in USERS.items()
        )
    )
    conf = base / "dovecot.conf"
    conf.write_text(
        f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
first_valid_uid = {min(uid, 100)}
first_valid_gid = {min(gid, 100)}
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service imap-login {{
  inet_listener imap {{
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    port = {ports["lmtp"]}
  }}
}}
protocol lmtp {{
  auth_username_format = %Ln
}}
"""
    )
    return conf


class _Relay:
    """aiosmtpd handler: every accepted mail goes to Dovecot's LMTP."""

    def __init__(self, lmtp_port: int) -> None:
        self.lmtp_port = lmtp_port

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=10) as lmtp:
                lmtp.sendmail(envelope.mail_from, envelope.rcpt_tos, envelope.original_content)
        except smtplib.SMTPRecipientsRefused:
            return "550 5.1.1 no such user"
        except (OSError, smtplib.SMTPException) as exc:
            return f"451 4.3.0 mailbox store unavailable: {exc}"
        return "250 2.0.0 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = isinstance(data, LoginPassword) and USERS.get(data.login.decode()) == (
        data.password.decode()
    )
    return AuthResult(success=ok, handled=False)


class MailServers:
    """Dovecot + the SMTP front; ``ports``: imap, imaps, lmtp, smtp (STARTTLS), smtps."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.ports = {k: free_port() for k in ("imap", "imaps", "lmtp", "smtp", "smtps")}
        self.cert, key = _certificate(base)
        uid, gid = _mail_user()
        for name in USERS:
            (base / "mail" / name).mkdir(parents=True, exist_ok=True)
            shutil.chown(base / "mail" / name, uid, gid)
        self.conf = _dovecot_conf(base, self.ports, uid, gid)
        self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_tls.load_cert_chain(self.cert, key)
        self._dovecot: subprocess.Popen[bytes] | None = None
        self._smtp: list[Any] = []

    def client_tls(self) -> ssl.SSLContext:
        """A client context that trusts the servers' certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._dovecot = subprocess.Popen(
            [_dovecot() or "dovecot", "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        common = {"authenticator": _authenticator, "auth_require_tls": False}
        relay = _Relay(self.ports["lmtp"])
        self._smtp = [
            Controller(
                relay,
                hostname="127.0.0.1",
                port=self.ports["smtp"],
                tls_context=self._server_tls,
                **common,
            ),
            Controller(
                relay,
                hostname="127.0.0.1",
                port=self.ports["smtps"],
                ssl_context=self._server_tls,
                **common,
            ),
        ]
        for controller in self._smtp:
            controller.start()
        self._wait_for_dovecot()

    def _wait_for_dovecot(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self._dovecot is not None
            if self._dovecot.poll() is not None:
                err = self._dovecot.stderr.read().decode() if self._dovecot.stderr else ""
                log = (self.base / "dovecot.log").read_text() if self._log_exists() else ""
                raise RuntimeError(f"dovecot exited: {err}{log[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.ports["lmtp"]), timeout=1):
                    pass
                with socket.create_connection(("127.0.0.1", self.ports["imap"]), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start listening within 20 s")

    def _log_exists(self) -> bool:
        return (self.base / "dovecot.log").exists()

    def stop(self) -> None:
        for controller in self._smtp:
            controller.stop()
        self._smtp = []
        if self._dovecot is not None:
            self._dovecot.send_signal(signal.SIGTERM)
            try:
                self._dovecot.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._dovecot.kill()
                self._dovecot.wait()
            if self._dovecot.stderr:
                self._dovecot.stderr.close()
            self._dovecot = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def clear(self) -> None:
        """Remove every mail and folder of every user (no session may be open)."""
        for name in USERS:
            shutil.rmtree(self.base / "mail" / name / "Maildir", ignore_errors=True)


@contextmanager
def mail_servers(base: Path) -> Iterator[MailServers]:
    """Dovecot and the SMTP front, running in ``base``; stopped on exit."""
    if _dovecot() is None:
        apt_install(*PACKAGES)
    if _dovecot() is None:
        unavailable("Dovecot is not installed and could not be installed")
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        unavailable("aiosmtpd is missing: pip install -e '.[dev]'")
    if os.geteuid() != 0:
        unavailable("Dovecot tests run as root (they create a mail user)")
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's own deprecation notes
    base.chmod(0o755)
    servers = MailServers(base)
    try:
        servers.start()
    except (RuntimeError, OSError) as exc:
        servers.stop()
        unavailable(f"Dovecot / SMTP front did not start: {exc}")
    try:
        yield servers
    finally:
        servers.stop()
