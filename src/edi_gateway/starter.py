"""``edi-gateway init DIR [--samples DIR]``: a working, commented starter deployment.

Writes ``DIR/gateway.yaml`` (SQLite store, one inbound and one outbound folder connector, the
partners the bundled samples use, with forwarding to the two suppliers), creates the folders,
copies the supplier layouts of ``mappings/``, and optionally copies sample documents into the
inbox. It never overwrites an existing gateway.yaml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edi_gateway.config import DEFAULT_NAME, load_config
from edi_gateway.errors import ConfigError

FOLDERS = ("inbox", "archive", "error", "outbox")
MAPPINGS = "mappings"

STARTER_YAML = """\
# edi-gateway configuration, written by `edi-gateway init`.
# Relative paths are relative to the folder of this file. Unknown keys are refused, and every
# problem is reported with its key path when the gateway starts (`edi-gateway config check`
# lists them all with their lines without starting anything).

# Where messages, orders and their history are kept. SQLite needs no server; for PostgreSQL use
#   url: postgresql+psycopg://USER@HOST:5432/DBNAME
#   password: {env: EDI_GATEWAY_DB_PASSWORD}    # or {file: PATH}; never in the url itself
store:
  url: sqlite:///gateway.db

intake:
  max_size_mb: 64          # larger payloads fail with TOO_LARGE (1..2048)
  unknown_partner: reject  # reject | accept: documents from a party not listed below
  batch_size: 200          # messages processed per pass (1..10000)

# Trading partners. A document is matched to a partner by its EndpointID or PartyIdentification,
# written as scheme (ISO 6523 ICD, always quoted: "0088" = GLN) and value (quoted too).
partners:
  - id: vastra
    name: Region Västra Sjukvård
    role: buyer             # buyer | supplier | both
    endpoint: {scheme: "0088", value: "7350051600005"}
    language: sv
    outbound: outbox        # where Order Responses etc. for this partner are delivered
    auto_response: acknowledge  # none | acknowledge | accept: answer each order on receipt
    validation: xsd         # xsd | peppol: also the official Peppol rules (`rules install` first)
    legal:                  # completes what its orders leave out on invoices
      registration_name: Region Västra Sjukvård
      street: Södra Vägen 14
      city: Göteborg
      postal_zone: "412 54"
      country: SE
  - id: rijnoever
    name: Zorggroep Rijnoever Coöperatie U.A.
    role: buyer
    endpoint: {scheme: "0088", value: "8712345000004"}
    language: nl
    outbound: outbox
    legal:
      registration_name: Zorggroep Rijnoever Coöperatie U.A.
      street: Oudegracht 210
      city: Utrecht
      postal_zone: 3511 NS
      country: NL
  - id: nordisk
    name: Nordisk Vårdutrustning AB
    role: supplier
    endpoint: {scheme: "0088", value: "7350099000003"}
    language: sv
    outbound: outbox
    legal:                  # the seller on the invoices the gateway issues for nordisk
      registration_name: Nordisk Vårdutrustning AB
      company_id: {value: "5567891238"}
      vat_id: SE556789123801
      street: Industrigatan 7
      city: Malmö
      postal_zone: "212 14"
      country: SE
      iban: SE4550000000058398257466
      bic: ESSESESS
      payment_terms: 30 dagar netto
      default_vat_rate: 25
    forward:                # orders to nordisk: one workbook (layout mappings/nordisk/inkop)
      formats: [layout:inkop]
      bundle: workbook      # none | zip | workbook | csv
      every_minutes: 30     # also: at: ["08:00", "14:30"] (UTC), when_waiting: 20
      bundle_filename: "{supplier}-{date:%Y%m%d}-{seq:04d}.{ext}"
      max_orders: 500       # more go as further files ({seq}, {part}); also max_bytes
  - id: delftlab
    name: Delftse Lab- en Kantoorartikelen B.V.
    role: supplier
    endpoint: {scheme: "0088", value: "8719333000008"}
    language: nl
    outbound: outbox
    legal:
      registration_name: Delftse Lab- en Kantoorartikelen B.V.
      company_id: {value: "27123456", scheme: "0106"}
      vat_id: NL812345678B01
      street: Schoemakerstraat 97
      city: Delft
      postal_zone: 2628 VK
      country: NL
      iban: NL91ABNA0417164300
      bic: ABNANL2A
      payment_terms: 30 dagen netto
      default_vat_rate: 21
    forward:                # every order at once, as UBL and as delftlab's own XML
      formats: [ubl, layout:bestelling]
      filename: "{supplier}-{order}-{format}.{ext}"
      hold: false           # true: wait for `edi-gateway orders release ORDER`

# Where documents come from and go to. Drop files into inbox/ (write them as *.part or *.tmp
# and rename when complete); processed files move to archive/, refused ones to error/.
connectors:
  - name: inbox
    type: folder
    direction: in
    path: inbox
    archive: archive
    error: error
    pattern: "*.xml"
    every_seconds: 5        # poll interval
  - name: outbox
    type: folder
    direction: out
    path: outbox
  # Network connectors (complete examples in the README: SFTP, email, RabbitMQ, AS2, HTTP).
  # Secrets are never written here: {env: VARIABLE} or {file: PATH}. For example:
  # - name: partner-sftp
  #   type: sftp
  #   direction: in
  #   host: sftp.example.com
  #   username: edi
  #   private_key: {file: secrets/id_ed25519}
  #   known_hosts: secrets/known_hosts   # host keys are pinned: an unknown key is refused
  #   path: /outgoing
  #   archive: /outgoing/done            # or delete: true; files leave only after intake
  #   cron: "*/5 * * * *"                 # or every_seconds: 60 (UTC)

# The daemon (`edi-gateway run`): health and metrics endpoint, log format, backoff.
# daemon:
#   http: {host: 127.0.0.1, port: 9464}   # GET /healthz, GET /metrics (Prometheus)
#   log_format: json                      # text (default) | json, with message_id per line

# Retention: the daemon purges what finished (Closed, Cancelled, Fully invoiced orders;
# dismissed messages) that long ago, into an archive `edi-gateway purge restore` brings back.
# retention: {after_days: 400, archive_dir: purged}

# Which supplier each buyer's orders go to (first match wins; an order no route matches goes to
# the supplier it names). The supplier's forward: profile says how: formats, bundles, connector.
routes:
  - name: vastra-orders
    match: {sender: vastra, kinds: [Order]}
    deliver_to: nordisk
  - name: rijnoever-orders
    match: {sender: rijnoever, kinds: [Order]}
    deliver_to: delftlab
"""


def bundled_mappings() -> Path | None:
    """The supplier layouts and reply maps shipped as the package ``edi_gateway.mappings``
    (the top-level ``mappings/`` folder of the source tree)."""
    from importlib.resources import files

    try:
        candidate = Path(str(files("edi_gateway.mappings")))
    except ModuleNotFoundError:
        return None
    return candidate if candidate.is_dir() else None


def bundled_samples() -> Path | None:
    """The ``samples/`` folder of a source checkout, if this package runs from one."""
    candidate = Path(__file__).resolve().parents[2] / "samples"
    return candidate if candidate.is_dir() else None


def init_project(target: Path, samples: Path | None = None) -> list[Path]:
    """Create a starter deployment in ``target``; return every file and folder it created.

    Raises ConfigError when ``target/gateway.yaml`` exists already or ``samples`` is not a
    folder. The written config is loaded once more before returning, so it is known to be valid.
    """
    if samples is not None and not samples.is_dir():
        raise ConfigError(f"samples folder {samples} does not exist")
    config = target / DEFAULT_NAME
    if config.exists():
        raise ConfigError(
            f"{config} already exists; refusing to overwrite it. "
            "Remove it first or choose another folder."
        )
    created: list[Path] = []
    if not target.exists():
        target.mkdir(parents=True)
        created.append(target)
    try:
        with config.open("x", encoding="utf-8") as handle:
            handle.write(STARTER_YAML)
    except FileExistsError:
        raise ConfigError(f"{config} already exists; refusing to overwrite it.") from None
    created.append(config)
    for name in FOLDERS:
        folder = target / name
        if not folder.exists():
            folder.mkdir()
            created.append(folder)
    layouts = bundled_mappings()
    if layouts is not None and not (target / MAPPINGS).exists():
        shutil.copytree(
            layouts, target / MAPPINGS, ignore=shutil.ignore_patterns("__init__.py", "__pycache__")
        )
        created.append(target / MAPPINGS)
    if samples is not None:
        created += _copy_samples(samples, target / "inbox")
    load_config(config)
    return created


def _copy_samples(samples: Path, inbox: Path) -> list[Path]:
    copied: list[Path] = []
    for source in sorted(samples.glob("*.xml")):
        destination = inbox / source.name
        if source.is_file() and not destination.exists():
            partial = inbox / f".{source.name}.part"  # a running poller ignores it
            shutil.copyfile(source, partial)
            partial.replace(destination)
            copied.append(destination)
    return copied
