"""One SFTP connection for a connector: pinned host key, key or password auth, reconnect.

The host key is checked against the connector's ``known_hosts`` file or its
``host_key_fingerprint`` before any credential is sent; nothing is ever learned or added. A
connection found dead is opened again once on the next operation; library errors are mapped
here to :class:`TransportError` with a stable code (``CONNECTION_FAILED`` recoverable;
``AUTH_FAILED``, ``HOST_KEY_UNKNOWN``, ``HOST_KEY_MISMATCH``, ``CONFIG_INVALID`` not).
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from typing import TypeVar

import paramiko

from edi_gateway.errors import ConfigError, ErrorCode
from edi_gateway.transports.base import TransportError
from edi_gateway.transports.sftp_spec import SftpConnector

_T = TypeVar("_T")
_LINK_ERRORS = (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError)
_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)
# Host key algorithms a known_hosts key type may be negotiated as.
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


class SftpSession:
    """A lazily opened SFTP client; :meth:`run` reopens a dead link once and maps errors."""

    def __init__(self, conn: SftpConnector) -> None:
        self._conn = conn
        self.where = f"sftp://{conn.username}@{conn.host}:{conn.port}"
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def run(self, op: Callable[[paramiko.SFTPClient], _T]) -> _T:
        """``op`` on the open client. A link that turns out dead is reopened and ``op`` tried
        once more (so ``op`` must be safe to repeat); errors of the operation itself (no such
        file, permission denied) reach the caller as the OSError paramiko raised."""
        for attempt in (1, 2):
            fresh = self._sftp is None or not self._alive()
            sftp = self._open()
            try:
                return op(sftp)
            except _LINK_ERRORS as exc:
                if self._alive() and isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                    raise  # the operation's own error: no such file, permission denied ...
                self.close()
                if fresh or attempt == 2:
                    raise TransportError(
                        f"connection to {self.where} lost: {exc or type(exc).__name__}; "
                        "it is retried on the next cycle",
                        recoverable=True,
                        code=ErrorCode.CONNECTION_FAILED,
                    ) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection (a later :meth:`run` opens a new one)."""
        sftp, transport = self._sftp, self._transport
        self._sftp = self._transport = None
        if sftp is not None:
            sftp.close()
        if transport is not None:
            transport.close()

    def _alive(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    def _open(self) -> paramiko.SFTPClient:
        if self._sftp is not None and self._alive():
            return self._sftp
        self.close()
        self._transport = self._handshake()
        try:
            self._authenticate(self._transport)
            sftp = paramiko.SFTPClient.from_transport(self._transport)
            if sftp is None:
                raise paramiko.SSHException("the server refused the sftp subsystem")
            sftp.get_channel().settimeout(self._conn.timeout)  # type: ignore[union-attr]
        except TransportError:
            self.close()
            raise
        except paramiko.AuthenticationException as exc:
            self.close()
            raise self._auth_failed(exc) from exc
        except _LINK_ERRORS as exc:
            self.close()
            raise self._unreachable(exc) from exc
        self._sftp = sftp
        return sftp

    def _handshake(self) -> paramiko.Transport:
        """TCP connect and SSH key exchange; the host key is checked before anything else."""
        conn = self._conn
        pin = _Pin(conn, self.where)
        try:
            sock = socket.create_connection((conn.host, conn.port), timeout=conn.connect_timeout)
        except OSError as exc:
            raise self._unreachable(exc) from exc
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = transport.handshake_timeout = conn.connect_timeout
            pin.restrict(transport.get_security_options())
            transport.start_client(timeout=conn.connect_timeout)
            pin.check(transport.get_remote_server_key())
        except TransportError:
            transport.close()
            raise
        except _LINK_ERRORS as exc:
            transport.close()
            if "host key" in str(exc):  # none of the pinned key types is offered
                raise pin.mismatch(
                    f"the server offers none of the pinned key types ({exc})"
                ) from exc
            raise self._unreachable(exc) from exc
        return transport

    def _authenticate(self, transport: paramiko.Transport) -> None:
        conn = self._conn
        try:
            key = _private_key(conn)
            password = conn.password.value() if conn.password is not None else None
        except ConfigError as exc:
            raise TransportError(
                f"{self.where}: {exc.message}", recoverable=False, code=ErrorCode.CONFIG_INVALID
            ) from exc
        if key is not None:
            try:
                transport.auth_publickey(conn.username, key)
            except paramiko.AuthenticationException:
                if password is None:
                    raise
            if transport.is_authenticated():
                return
        if password is not None:
            transport.auth_password(conn.username, password)
        if not transport.is_authenticated():
            raise paramiko.AuthenticationException("more authentication required")

    def _auth_failed(self, exc: Exception) -> TransportError:
        conn = self._conn
        used = " and ".join(
            f"{what} from {_secret_where(secret)}"
            for what, secret in (("key", conn.private_key), ("password", conn.password))
            if secret is not None
        )
        return TransportError(
            f"{self.where} refused user {conn.username!r} ({exc}); check the user name and the "
            f"{used}, and that the server accepts this method",
            recoverable=False,
            code=ErrorCode.AUTH_FAILED,
        )

    def _unreachable(self, exc: BaseException) -> TransportError:
        return TransportError(
            f"cannot connect to {self.where}: {exc or type(exc).__name__}; check host, port "
            "and that the server runs (retried on the next cycle)",
            recoverable=True,
            code=ErrorCode.CONNECTION_FAILED,
        )


class _Pin:
    """The host key a connector pins: a known_hosts entry or a SHA256 fingerprint."""

    def __init__(self, conn: SftpConnector, where: str) -> None:
        self.where = where
        self.fingerprint = conn.host_key_fingerprint
        self.file = conn.known_hosts
        self.name = conn.host if conn.port == 22 else f"[{conn.host}]:{conn.port}"
        self.keys: dict[str, paramiko.PKey] = {}
        if self.file is None:
            return
        known = paramiko.HostKeys()
        try:
            known.load(str(self.file))
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise TransportError(
                f"{where}: cannot read known_hosts {self.file}: {exc}",
                recoverable=False,
                code=ErrorCode.CONFIG_INVALID,
            ) from exc
        entry = known.lookup(self.name)
        if not entry:
            raise TransportError(
                f"{where}: the host key of {self.name} is not in {self.file}; confirm the "
                "fingerprint with the partner (`ssh-keyscan -p PORT HOST | ssh-keygen -lf -`), "
                "then add the line to that file",
                recoverable=False,
                code=ErrorCode.HOST_KEY_UNKNOWN,
            )
        self.keys = {kind: entry[kind] for kind in entry}

    def restrict(self, options: paramiko.transport.SecurityOptions) -> None:
        """Negotiate only the pinned key types (a known_hosts pin)."""
        if not self.keys:
            return
        wanted = [alg for kind in self.keys for alg in _ALGORITHMS.get(kind, (kind,))]
        usable = tuple(alg for alg in options.key_types if alg in wanted)
        if usable:
            options.key_types = usable

    def check(self, key: paramiko.PKey | None) -> None:
        """Refuse ``key`` unless it is the pinned one."""
        if key is None:
            raise self.mismatch("the server presented no host key")
        if self.fingerprint is not None:
            if key.fingerprint != self.fingerprint:
                raise self.mismatch(
                    f"the server presented {key.fingerprint}, host_key_fingerprint pins "
                    f"{self.fingerprint}"
                )
            return
        pinned = self.keys.get(key.get_name())
        if pinned is None or pinned.asbytes() != key.asbytes():
            expected = ", ".join(k.fingerprint for k in self.keys.values())
            raise self.mismatch(
                f"the server presented {key.get_name()} {key.fingerprint}, {self.file} pins "
                f"{expected} for {self.name}"
            )

    def mismatch(self, detail: str) -> TransportError:
        """The error for a host key that is not the pinned one."""
        return TransportError(
            f"{self.where}: HOST KEY CHANGED: {detail}. The server was reinstalled or someone is "
            "in between: confirm the new fingerprint with the partner before changing the pin",
            recoverable=False,
            code=ErrorCode.HOST_KEY_MISMATCH,
        )


def _private_key(conn: SftpConnector) -> paramiko.PKey | None:
    """The connector's private key, parsed; a ConfigError when it cannot be read."""
    if conn.private_key is None:
        return None
    text = conn.private_key.value() + "\n"
    passphrase = conn.private_key_passphrase
    password = passphrase.value() if passphrase is not None else None
    problems: list[str] = []
    for kind in _KEY_CLASSES:
        try:
            return kind.from_private_key(io.StringIO(text), password=password)
        except paramiko.PasswordRequiredException as exc:
            raise ConfigError(
                f"private key from {_secret_where(conn.private_key)} is encrypted: "
                "add private_key_passphrase"
            ) from exc
        except (paramiko.SSHException, ValueError) as exc:
            problems.append(f"{kind.__name__}: {exc}")
    raise ConfigError(
        f"private key from {_secret_where(conn.private_key)} is not an Ed25519, ECDSA or RSA "
        f"key in OpenSSH or PEM form ({'; '.join(problems)})"
    )


def _secret_where(secret: object) -> str:
    env, file = getattr(secret, "env", None), getattr(secret, "file", None)
    return f"environment variable {env}" if env is not None else f"file {file}"
