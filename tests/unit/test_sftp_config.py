"""The ``type: sftp`` connector entry of gateway.yaml: what it demands and what it refuses."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edi_gateway.config import load_config
from edi_gateway.errors import ConfigError
from edi_gateway.transports.sftp_spec import SftpConnector

INBOUND = """\
connectors:
  - name: partner-in
    type: sftp
    direction: in
    host: sftp.partner.example
    port: 2222
    username: gateway
    private_key: {file: keys/id_ed25519}
    known_hosts: keys/known_hosts
    path: /outgoing/orders
    archive: /outgoing/archive
"""


def load(tmp_path: Path, text: str) -> SftpConnector:
    path = tmp_path / "gateway.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    [conn] = load_config(path).connectors
    assert isinstance(conn, SftpConnector)
    return conn


def problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.message


def test_inbound_entry_loads_with_defaults(tmp_path: Path) -> None:
    conn = load(tmp_path, INBOUND)
    assert conn.known_hosts == tmp_path / "keys" / "known_hosts"
    assert conn.private_key is not None and conn.private_key.file == tmp_path / "keys/id_ed25519"
    assert (conn.pattern, conn.ignore, conn.stable_seconds) == (
        "*.xml",
        ["*.part", "*.tmp", ".*"],
        0,
    )
    assert (conn.claimed, conn.error, conn.delete) == (None, None, False)


def test_host_key_pin_is_required(tmp_path: Path) -> None:
    message = problem(tmp_path, INBOUND.replace("    known_hosts: keys/known_hosts\n", ""))
    assert "known_hosts" in message and "host_key_fingerprint" in message
    both = INBOUND + "    host_key_fingerprint: SHA256:" + "A" * 43 + "\n"
    assert "exactly one of known_hosts" in problem(tmp_path, both)


def test_fingerprint_form(tmp_path: Path) -> None:
    pinned = INBOUND.replace("    known_hosts: keys/known_hosts\n", "")
    good = load(tmp_path, pinned + "    host_key_fingerprint: 'SHA256:" + "b" * 43 + "='\n")
    assert good.host_key_fingerprint == "SHA256:" + "b" * 43
    assert "ssh-keygen -lf" in problem(tmp_path, pinned + "    host_key_fingerprint: MD5:ab\n")


def test_credentials_are_required_and_never_inline(tmp_path: Path) -> None:
    no_auth = INBOUND.replace("    private_key: {file: keys/id_ed25519}\n", "")
    assert "private_key" in problem(tmp_path, no_auth)
    inline = problem(tmp_path, no_auth + "    password: hunter2\n")
    assert "expected {env: VARIABLE} or {file: PATH}" in inline and "hunter2" not in inline
    ok = load(tmp_path, no_auth + "    password: {env: PARTNER_SFTP_PASSWORD}\n")
    assert ok.password is not None and ok.password.env == "PARTNER_SFTP_PASSWORD"


def test_archive_or_delete(tmp_path: Path) -> None:
    neither = INBOUND.replace("    archive: /outgoing/archive\n", "")
    assert "archive: REMOTE_FOLDER or delete: true" in problem(tmp_path, neither)
    assert "exactly one of archive" in problem(tmp_path, INBOUND + "    delete: true\n")
    assert load(tmp_path, neither + "    delete: true\n").delete


def test_outbound_takes_no_inbound_settings(tmp_path: Path) -> None:
    out = INBOUND.replace("direction: in", "direction: out")
    assert "found archive, expected none on direction: out" in problem(tmp_path, out)
    assert load(tmp_path, out.replace("    archive: /outgoing/archive\n", "")).direction == "out"


def test_remote_paths_are_posix(tmp_path: Path) -> None:
    assert "POSIX path" in problem(tmp_path, INBOUND.replace("/outgoing/orders", "'C:\\\\in'"))
    assert load(tmp_path, INBOUND.replace("/outgoing/orders", "/outgoing/orders/")).path == (
        "/outgoing/orders"
    )


def test_readme_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### SFTP connector", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "gateway.yaml"
    acme = (
        "partners:\n  - {id: acme, name: A, role: buyer,\n"
        "     endpoint: {scheme: '0088', value: '7300010000001'}}\n"
    )
    path.write_text(acme + example, encoding="utf-8")
    inbound, outbound = load_config(path).connectors
    assert isinstance(inbound, SftpConnector) and isinstance(outbound, SftpConnector)
    assert inbound.archive == "/outgoing/archive" and outbound.host_key_fingerprint
