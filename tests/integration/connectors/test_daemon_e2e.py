"""The real daemon over real network connectors, end to end: ``edi-gateway run`` as a
subprocess against the servers of the contract suite's harnesses, which play the partners.

The buyer drops an Order on SFTP; the daemon takes it on its schedule and forwards it (UBL) to
the supplier over RabbitMQ; the supplier answers with an Order Response mailed to the gateway's
IMAP mailbox; the order is Accepted and the answer is relayed to the buyer as it came (a T76) over
AS2, which the buyer decrypts and which passes ``ubl-check``. ``/metrics`` counts every message
in and out per connector, ``/healthz`` is ok, JSON log lines about messages carry
``message_id``, and SIGTERM ends the daemon with exit 0.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree

from edi_gateway.ubl.read import interpret
from tests import factory as f
from tests.conftest import shared_dir
from tests.integration.conftest import EXE, cli_env, cli_json, metric_samples
from tests.integration.connectors.harness_amqp import AmqpHarness
from tests.integration.connectors.harness_as2 import As2Harness
from tests.integration.connectors.harness_email import EmailHarness
from tests.integration.connectors.harness_sftp import SftpHarness
from tests.servers import free_port

pytestmark = pytest.mark.integration

ORDER_ID = "E2E-1001"
WAIT = 45.0  # generous: a slow shared CI machine; every wait ends as soon as it is met


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_for(what: str, condition: Callable[[], Any], daemon: subprocess.Popen[str]) -> Any:
    """Poll ``condition`` until it returns something true; fail naming ``what`` after WAIT s
    (or at once when the daemon died)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert daemon.poll() is None, f"the daemon exited ({daemon.returncode}) waiting for {what}"
        try:
            found = condition()
        except (OSError, ValueError):
            found = None
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out after {WAIT} s waiting for {what}")


def _config(
    root: Path,
    port: int,
    sftp: SftpHarness,
    amqp: AmqpHarness,
    mail: EmailHarness,
    as2: As2Harness,
) -> Path:
    """gateway.yaml: buyer in over SFTP, out over AS2; supplier out over RabbitMQ, in by mail."""
    data = {
        "store": {"url": "sqlite:///gateway.db"},
        "partners": [
            f.buyer_partner(outbound="as2-to-buyer"),
            f.seller_partner(
                id="supplier",
                outbound="amqp-to-supplier",
                forward={"formats": ["ubl"]},
                relay_replies=True,
            ),
        ],
        "connectors": [
            {**sftp.inbound("sftp-from-buyer"), "partner": "buyer", "every_seconds": 0.5},
            as2.outbound("as2-to-buyer"),
            amqp.outbound("amqp-to-supplier"),
            {**mail.inbound("imap-from-supplier"), "partner": "supplier", "every_seconds": 0.5},
        ],
        "daemon": {
            "http": {"host": "127.0.0.1", "port": port},
            "log_format": "json",
            "outbox_every_seconds": 1,
        },
    }
    config = root / "gateway.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return config


def test_order_chain_through_the_daemon_over_sftp_amqp_imap_and_as2(
    sftp_harness: SftpHarness,
    amqp_harness: AmqpHarness,
    email_harness: EmailHarness,
    as2_harness: As2Harness,
    tmp_path: Path,
) -> None:
    for harness in (sftp_harness, amqp_harness, email_harness, as2_harness):
        harness.reset()
    root = tmp_path / "gateway"
    root.mkdir()
    port = free_port()
    config = _config(root, port, sftp_harness, amqp_harness, email_harness, as2_harness)
    base = f"http://127.0.0.1:{port}"
    stderr = root / "daemon.log"  # a file, not a pipe: a full pipe would block the daemon
    with stderr.open("w", encoding="utf-8") as log:
        daemon = subprocess.Popen(
            [str(EXE), "--config", str(config), "run"],
            cwd=root,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        _wait_for("/healthz", lambda: _get(f"{base}/healthz")[0] == 200, daemon)

        # 1-2. the buyer's order over SFTP, forwarded unchanged to the supplier over RabbitMQ
        order = f.order(ORDER_ID, f.items(2))
        sftp_harness.send(f"{ORDER_ID}.xml", order)
        forwarded = _wait_for("the forward on RabbitMQ", amqp_harness.delivered, daemon)
        assert forwarded == {f"supplier-{ORDER_ID}-ubl.xml": order}
        [props] = amqp_harness.received_properties
        assert props.headers["document_type"] == "Order"
        assert props.headers["partner"] == "supplier"
        assert sftp_harness.waiting() == 0 and list(sftp_harness.files("archive")) != []

        # 3. the supplier's acceptance by mail: the order moves to Accepted
        response = f.order_response("OR-E2E-1", ORDER_ID, "AP").replace(
            b"<cac:OrderReference>",  # a complete T76: relays go out as the supplier sent them
            b"<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode><cac:OrderReference>",
            1,
        )
        email_harness.send("order-response.xml", response)

        def accepted() -> dict[str, Any] | None:
            shown: dict[str, Any] = cli_json(
                "--config", config, "orders", "show", f"buyer:{ORDER_ID}", cwd=root
            )
            return shown if shown["status"] == "Accepted" else None

        shown = _wait_for("the order to be Accepted", accepted, daemon)
        assert shown["response_code"] == "AP"
        _wait_for("the mail to leave the inbox", lambda: email_harness.waiting() == 0, daemon)

        # 4. relayed to the buyer as a Peppol T76 over AS2, decrypted by the buyer
        relayed = _wait_for("the T76 over AS2", as2_harness.delivered, daemon)
        [(name, t76)] = relayed.items()
        assert t76 == response  # byte-identical (docs/adr/0026-faithful-relays.md)
        document = interpret(etree.fromstring(t76))
        assert document.kind.value == "OrderResponse" and document.order_refs == [ORDER_ID]
        assert b"urn:fdc:peppol.eu:poacc:trns:order_response:3" in t76
        checked = tmp_path / "t76.xml"
        checked.write_bytes(t76)
        tool = shared_dir() / "tools" / "ubl-check"
        done = subprocess.run(
            [sys.executable, str(tool), str(checked)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr

        # 5. metrics and health
        def counted() -> dict[str, float] | None:
            samples = metric_samples(_get(f"{base}/metrics")[1])
            out = 'edi_messages_out_total{connector="as2-to-buyer",partner="buyer"}'
            return samples if samples.get(out) == 1 else None

        samples = _wait_for("the AS2 delivery to be counted", counted, daemon)
        status, body = _get(f"{base}/healthz")
        health = json.loads(body)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            out, _ = daemon.communicate(timeout=30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    err = stderr.read_text(encoding="utf-8")
    assert daemon.returncode == 0, err[-3000:]

    assert samples['edi_messages_in_total{connector="sftp-from-buyer",partner="buyer"}'] == 1
    assert samples['edi_messages_in_total{connector="imap-from-supplier",partner="supplier"}'] == 1
    assert samples['edi_messages_out_total{connector="amqp-to-supplier",partner="supplier"}'] == 1
    assert not [k for k in samples if k.startswith("edi_messages_failed_total{")]
    assert not [k for k in samples if k.startswith("edi_deliveries_failed_total{") and samples[k]]
    assert samples["edi_outbox_pending"] == 0
    assert status == 200 and health["status"] == "ok", body
    for name in ("sftp-from-buyer", "imap-from-supplier"):
        assert health["connectors"][name]["up"] is True
        assert health["connectors"][name]["messages_taken"] == 1

    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line JSON
    about_messages = [line for line in lines if re.search(r"\bmessage \d+", line["message"])]
    assert about_messages, err[-3000:]
    for line in about_messages:
        assert str(line.get("message_id")) in line["message"], line
    taken = {line["file_name"]: line for line in lines if "message_id" in line}
    assert set(taken) == {f"{ORDER_ID}.xml", "order-response.xml"}
    assert taken[f"{ORDER_ID}.xml"]["connector"] == "sftp-from-buyer"
    assert taken["order-response.xml"]["connector"] == "imap-from-supplier"
    sent = {line["connector"] for line in lines if "outbox_id" in line and line["state"] == "sent"}
    assert sent == {"amqp-to-supplier", "as2-to-buyer"}
    # info is one line per message and per delivery: no pika / paramiko connection chatter
    chatter = [line for line in lines if not line["logger"].startswith("edi_gateway")]
    assert chatter == [], chatter[:3]
    assert "Arrived:" in out
