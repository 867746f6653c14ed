"""gateway.yaml loading: typed settings, resolved paths, and operator-grade error messages."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import typing
import warnings
from pathlib import Path

import pytest
from pydantic import HttpUrl

from edi_gateway.config import ENV_VAR, check_config, config_path, load_config
from edi_gateway.config.connectors import CONNECTOR_TYPES, connector_model
from edi_gateway.config.models import Settings
from edi_gateway.errors import ConfigError, ErrorCode

GOOD = """\
store: {url: "sqlite:///data/gw.db"}
partners:
  - id: acme
    name: Acme Buyer
    role: buyer
    endpoint: {scheme: "0088", value: "7350051600005"}
    identifiers: [{scheme: "0192", value: "987654325"}]
  - id: supply
    name: Supply Co
    role: supplier
    endpoint: {scheme: "0088", value: "7350099000003"}
    outbound: outbox
    forward: {formats: [ubl]}
connectors:
  - {name: inbox, type: folder, direction: in, path: in}
  - {name: outbox, type: folder, direction: out, path: /srv/out, partner: supply}
routes:
  - {name: r1, match: {sender: acme, kinds: [Order], connector: inbox},
     deliver_to: supply}
"""


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.code is ErrorCode.CONFIG_INVALID
    message = info.value.message
    assert str(path) in message
    assert "pydantic" not in message and "https://" not in message
    return message


def test_good_config_loads_typed_and_resolved(tmp_path: Path) -> None:
    s = load_config(write(tmp_path, GOOD))
    assert s.path == tmp_path / "gateway.yaml"
    assert s.store.url == f"sqlite:///{tmp_path / 'data' / 'gw.db'}"
    assert s.intake.max_size_mb == 64 and s.intake.unknown_partner == "reject"
    inbox = s.connector("inbox")
    assert inbox.path == tmp_path / "in"
    assert inbox.archive == tmp_path / "archive" / "inbox"
    assert inbox.error == tmp_path / "error" / "inbox"
    assert inbox.pattern == "*.xml" and inbox.every_seconds == 10
    out = s.connector("outbox")
    assert out.path == Path("/srv/out") and out.archive is None
    assert s.partners[0].keys() == ["0088:7350051600005", "0192:987654325"]
    assert s.partners[1].outbound == "outbox" and s.partners[1].forward is not None
    assert s.routes[0].match.kinds == ["Order"]


def test_partner_by_key_and_connector_lookup(tmp_path: Path) -> None:
    s = load_config(write(tmp_path, GOOD))
    assert s.partner_by_key(["9999:1", "0192:987654325"]) is s.partners[0]
    assert s.partner_by_key(["0088:7350099000003"]) is s.partners[1]
    assert s.partner_by_key(["nope"]) is None
    with pytest.raises(ConfigError, match="no connector named 'ftp'; known: inbox, outbox"):
        s.connector("ftp")


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_config(write(tmp_path, GOOD))
    with pytest.raises(ValueError, match="frozen"):
        s.partners[0].name = "x"


def test_store_urls(tmp_path: Path) -> None:
    pg = "postgresql+psycopg://gw@127.0.0.1:5432/gw"
    assert load_config(write(tmp_path, f"store: {{url: '{pg}'}}\n")).store.url == pg
    default = load_config(write(tmp_path, "intake: {batch_size: 5}\n"))
    assert default.store.url == f"sqlite:///{tmp_path / 'gateway.db'}"
    memory = load_config(write(tmp_path, "store: {url: 'sqlite:///:memory:'}\n"))
    assert memory.store.url == "sqlite:///:memory:"


WEBHOOK = """\
alerts:
  webhooks:
    - {{name: ops, url: "{url}", secret: {{env: HOOK_SECRET}}, causes: [message.failed]}}
"""

BAD = [
    (
        GOOD.replace('scheme: "0192"', "scheme: 192"),
        ["partners[0].identifiers[0].scheme: found 192", "4-digit ISO 6523 ICD"],
    ),
    (
        GOOD.replace('value: "7350099000003"', "value: 7350099000003"),
        ["partners[1].endpoint.value: found 7350099000003", "quoted string"],
    ),
    (
        GOOD.replace("role: supplier", "role: seller"),
        ["partners[1].role: found 'seller', expected 'buyer', 'supplier' or 'both'"],
    ),
    (
        GOOD.replace("name: Supply Co", "name: Supply Co\n    colour: red"),
        ["partners[1].colour: unknown key", "allowed keys: id, name, role, endpoint"],
    ),
    (
        GOOD.replace("type: folder, direction: out", "type: ftp, direction: out"),
        ["connectors[1].type: found 'ftp', expected one of 'folder'"],
    ),
    (
        GOOD.replace("path: in}", "path: in, every_secs: 3}"),
        [
            "connectors[0].every_secs: unknown key",
            "allowed keys: name, type, direction, every_seconds",
        ],
    ),
    (
        GOOD.replace("path: /srv/out,", "path: /srv/out, archive: done,"),
        ["connectors[1].archive:", "only inbound"],
    ),
    (GOOD.replace("id: supply", "id: acme"), ["partners[1].id: found 'acme' again"]),
    (
        GOOD.replace("7350099000003", "7350051600005"),
        ["partners[1]: identifier '0088:7350051600005' is also used by partner 'acme'"],
    ),
    (
        GOOD.replace("{name: outbox", "{name: inbox"),
        ["connectors[1].name: found 'inbox' again", "partners[1].outbound: found 'outbox'"],
    ),
    (
        GOOD.replace("deliver_to: supply", "deliver_to: acme"),
        ["routes[0].deliver_to: found 'acme', expected a supplier with a forward: profile: supply"],
    ),
    (GOOD.replace("sender: acme", "sender: ghost"), ["routes[0].match.sender: found 'ghost'"]),
    (
        GOOD.replace("connector: inbox}", "connector: outbox}"),
        ["routes[0].match.connector: found 'outbox', expected an inbound connector: inbox"],
    ),
    (
        GOOD.replace("kinds: [Order]", "kinds: [Invoice]"),
        ["routes[0].match.kinds: found ['Invoice'], expected [Order]"],
    ),
    (GOOD.replace("kinds: [Order]", "kinds: [Ordr]"), ["routes[0].match.kinds[0]: found 'Ordr'"]),
    (GOOD + "intake: {max_size_mb: 0}\n", ["intake.max_size_mb: found 0"]),
    (
        GOOD.replace('"sqlite:///data/gw.db"', "'mysql://x'"),
        ["store.url: found 'mysql://x', expected sqlite:///FILE or postgresql+psycopg://"],
    ),
    (GOOD + "path: /etc\n", ["path: unknown key", "allowed keys: store, intake"]),
    (GOOD + "colour: red\n", ["colour: unknown key", "store, intake, partners, connectors"]),
    (GOOD.replace("id: acme", "id: Acme Corp"), ["partners[0].id: found 'Acme Corp'", "slug"]),
    ("partners:\n  - {id: a}\n", ["partners[0].name: missing", "partners[0].endpoint: missing"]),
    ("connectors: [{name: x, path: p}]\n", ["connectors[0].type: missing"]),
    ("- a\n- b\n", ["expected a mapping of keys at the top level"]),
    (
        GOOD + WEBHOOK.format(url="ftp://hooks.example/x"),
        [
            "alerts.webhooks[0].url: found 'ftp://hooks.example/x', expected URL scheme should "
            "be 'http' or 'https'"
        ],
    ),
    (GOOD + WEBHOOK.format(url="not a url"), ["found 'not a url', expected a valid URL"]),
]


def test_a_webhook_url_is_an_http_url(tmp_path: Path) -> None:
    """``alerts.webhooks[].url`` holds pydantic's ``HttpUrl``, normalised as it normalises, though
    its schema is made only when a webhook is first validated (config/alerts.py WebhookUrl)."""
    settings = load_config(write(tmp_path, GOOD + WEBHOOK.format(url="HTTP://Hooks.Example/a b")))
    url = settings.alerts.webhooks[0].url
    assert isinstance(url, HttpUrl)
    assert str(url) == "http://hooks.example/a%20b"


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_config_names_file_key_found_and_expected(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    message = error_for(tmp_path, text)
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize("key", ["peppol_validation: true", "options: {copies: 2}"])
def test_keys_that_never_did_anything_are_refused_with_what_to_do(tmp_path: Path, key: str) -> None:
    """A key that nothing reads would let a user believe it works: refused, with the reason."""
    text = GOOD.replace("    outbound: outbox\n", f"    outbound: outbox\n    {key}\n", 1)
    message = error_for(tmp_path, text)
    assert "partners[1]" in message and key.partition(":")[0] in message
    assert ("validation: peppol" if key.startswith("peppol") else "Remove") in message


def test_every_problem_is_listed_in_one_message(tmp_path: Path) -> None:
    text = GOOD.replace("role: seller", "").replace("role: buyer", "role: b")
    text = text.replace("path: in}", "path: in, x: 1}") + "intake: {batch_size: 0}\n"
    message = error_for(tmp_path, text)
    assert "3 problems" in message
    for key in ("partners[0].role", "connectors[0].x", "intake.batch_size"):
        assert f"  - {key}:" in message


def test_yaml_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "store:\n  url: x\n partners: [\n")
    with pytest.raises(ConfigError, match=rf"{path}:3:\d+: YAML syntax error"):
        load_config(path)


def test_duplicate_key_is_refused_with_line(tmp_path: Path) -> None:
    path = write(tmp_path, "intake: {}\nstore: {}\nintake: {}\n")
    with pytest.raises(ConfigError, match=rf"{path}:3:1: .*key 'intake' given twice"):
        load_config(path)


def test_problems_have_lines_in_a_file_with_a_tab_after_a_key(tmp_path: Path) -> None:
    """libyaml reads ``store:<TAB>{}``; the line marks come from the same parser (PyYAML's
    own refused the file, and every problem was listed without its line)."""
    path = write(tmp_path, "store:\t{}\nintake: {}\npartners: 5\n")
    assert check_config(path) == [
        {"line": 3, "message": "partners: found 5, expected a valid list"}
    ]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(path)


def test_missing_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"partners: []\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path / "latin1.yaml")


def test_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli, env, local = (write(tmp_path, GOOD, name) for name in ("cli.yaml", "env.yaml", "x"))
    local.unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(env))
    assert config_path(str(cli)) == cli
    assert config_path(None) == env
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(ConfigError, match=rf"no config file at {tmp_path / 'gateway.yaml'}"):
        config_path(None)
    write(tmp_path, GOOD)
    assert config_path(None) == Path("gateway.yaml")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing\.yaml \(from \$EDI_GATEWAY_CONFIG\)"):
        config_path(None)


EVERY_TYPE = """\
connectors:
  - {name: in-folder, type: folder, direction: in, path: inbox}
  - name: in-sftp
    type: sftp
    direction: in
    host: sftp.example
    username: edi
    password: {env: SFTP_PASSWORD}
    host_key_fingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    path: /upload
    archive: /archive
  - name: in-imap
    type: imap
    direction: in
    host: mail.example
    username: edi
    password: {env: IMAP_PASSWORD}
    allowed_senders: ["@buyer.example"]
  - {name: out-smtp, type: smtp, direction: out, host: mail.example,
     from_address: edi@us.example, to: [orders@buyer.example]}
  - {name: in-amqp, type: amqp, direction: in, host: mq.example, username: edi,
     password: {env: AMQP_PASSWORD}, queue: orders}
  - {name: in-as2, type: as2, direction: in, as2_id: US, certificate: us.pem,
     private_key: {file: us.key},
     partners: [{as2_id: THEM, partner: buyer, certificate: them.pem}]}
  - {name: in-http, type: http, direction: in, require_tls: false,
     partners: [{partner: buyer, token: {env: HTTP_TOKEN}}]}
partners:
  - {id: buyer, name: Buyer, role: buyer, endpoint: {scheme: "0088", value: "7300010000001"}}
"""


def test_every_registered_type_names_its_model_beside_its_transport() -> None:
    for kind, target in CONNECTOR_TYPES.items():
        model = connector_model(kind)
        assert model is not None, kind
        assert target.startswith("edi_gateway.transports.") and target.split(":")[0].endswith(
            "_spec"
        ), target
        assert typing.get_args(model.model_fields["type"].annotation) == (kind,)


def test_loading_a_config_imports_no_transport_nor_its_library(tmp_path: Path) -> None:
    """Connector models live beside their transports, in light ``*_spec`` modules: a config
    using every type loads without paramiko, pika, cryptography, imaplib or smtplib."""
    path = write(tmp_path, EVERY_TYPE)
    code = (
        "import sys; from pathlib import Path; from edi_gateway.config import load_config; "
        "s = load_config(Path(sys.argv[1])); assert len({c.type for c in s.connectors}) == 7; "
        "libs = {'paramiko', 'pika', 'cryptography', 'asn1crypto', 'imaplib', 'smtplib'}; "
        "loaded = [m for m in sys.modules if m.split('.')[0] in libs or "
        "(m.startswith('edi_gateway.transports.') and not m.endswith('_spec'))]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)


def test_a_connector_is_dumped_as_its_own_type(tmp_path: Path) -> None:
    """A ``connectors:`` entry is a ConnectorBase by annotation: it is dumped with the fields
    of the model its ``type`` names (ConnectorBase's ``polymorphic_serialization``), and the
    dump validates back to the same settings."""
    settings = load_config(write(tmp_path, EVERY_TYPE))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warns when it dumps a subclass as its base
        dumped = settings.model_dump(mode="json", exclude={"path"})
    for conn, data in zip(settings.connectors, dumped["connectors"], strict=True):
        assert set(data) == set(type(conn).model_fields), conn.type
    again = Settings.model_validate(
        {**dumped, "path": settings.path}, context={"base_dir": tmp_path}
    )
    assert again == settings


@pytest.mark.parametrize(
    ("invoicee", "refused"),
    [
        ("nobody", "found 'nobody', expected another partner with role buyer or both: none"),
        ("supply", "found 'supply', expected another partner with role buyer or both: none"),
        ("acme", "found 'acme', expected another partner with role buyer or both: none"),
    ],
)
def test_an_invoicee_must_be_another_buying_partner(
    tmp_path: Path, invoicee: str, refused: str
) -> None:
    """`invoicee:` names the partner a buyer's bills go to: an unknown id, a supplier or the
    buyer itself would make the bills go nowhere, so the config is refused saying which."""
    text = GOOD.replace("    role: buyer\n", f"    role: buyer\n    invoicee: {invoicee}\n", 1)
    message = error_for(tmp_path, text)
    assert f"partners[0].invoicee: {refused}" in message


def test_an_invoicee_on_a_supplier_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("    role: supplier\n", "    role: supplier\n    invoicee: acme\n", 1)
    assert "partners[1].invoicee: found on supplier 'supply', expected role buyer or both" in (
        error_for(tmp_path, text)
    )
