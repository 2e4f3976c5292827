"""``kwhub deliver`` and ``kwhub outbox list/retry`` on a kwhub.toml with a webhook transport."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kwhub.core.campus import DeliveryPrefs
from kwhub.hub.cli import outbox_cmds
from kwhub.hub.cli.errors import UserError
from kwhub.hub.deliver.outbox import enqueue_invoice
from kwhub.hub.store import Database
from tests.fixtures.outbox import RECEIVER_SECRET, JsonTestRenderer


@pytest.fixture
def cli_app() -> typer.Typer:
    app = typer.Typer()
    outbox_cmds.register(app)
    return app


def _config(tmp_path: Path, url: str | None) -> Path:
    adapters = ""
    if url is not None:
        adapters = f"""
[[adapters]]
type = "erp.webhook"
id = "erp"
[adapters.config]
url = "{url}"
secret = "{RECEIVER_SECRET}"
retry = {{ base_s = 30, max_attempts = 2 }}
"""
    cfg = tmp_path / "kwhub.toml"
    cfg.write_text(f'[hub]\ndatabase = "sqlite:///hub.db"\n\n[[sites]]\nid = "campus"\nname = "Campus"\n{adapters}')
    return cfg


def test_deliver_list_and_retry(tmp_path, cli_app, erp_receiver, outbox_invoices):
    cfg = _config(tmp_path, erp_receiver.url)
    db = Database.open(f"sqlite:///{tmp_path / 'hub.db'}")
    invoices = outbox_invoices(3)
    with db.write_transaction() as conn:
        for inv in invoices:
            enqueue_invoice(conn, inv, [JsonTestRenderer("json")], DeliveryPrefs(formats=["json"], transports=["erp"]))
    db.close()
    erp_receiver.script(400)  # the first invoice is refused
    runner = CliRunner()
    res = runner.invoke(cli_app, ["deliver", "--once", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert (summary["delivered"], summary["dead"]) == (2, 1)
    assert summary["outbox"] == {"pending": 0, "sending": 0, "delivered": 2, "dead": 1}

    res = runner.invoke(cli_app, ["outbox", "list", "--config", str(cfg), "--status", "dead", "--format", "json"])
    assert res.exit_code == 0, res.output
    (dead,) = json.loads(res.stdout)
    assert dead["invoice_id"] == invoices[0].id and dead["last_status"] == 400 and "scripted HTTP 400" in dead["response"]

    res = runner.invoke(cli_app, ["outbox", "retry", str(dead["id"]), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli_app, ["deliver", "--once", "--config", str(cfg)])
    assert res.exit_code == 0 and "delivered 1" in res.stdout
    assert erp_receiver.imported() == {f"{inv.id}:v1:json": 1 for inv in invoices}

    res = runner.invoke(cli_app, ["outbox", "list", "--config", str(cfg)])
    assert res.exit_code == 0 and "outbox (3 rows)" in res.stdout

    res = runner.invoke(cli_app, ["outbox", "retry", "999", "--config", str(cfg)])
    assert isinstance(res.exception, UserError) and "no outbox row with id 999" in str(res.exception)
    res = runner.invoke(cli_app, ["outbox", "list", "--config", str(cfg), "--status", "lost"])
    assert isinstance(res.exception, UserError) and "unknown outbox status" in str(res.exception)


def test_deliver_without_transports_is_a_user_error(tmp_path, cli_app):
    cfg = _config(tmp_path, None)
    res = CliRunner().invoke(cli_app, ["deliver", "--once", "--config", str(cfg)])
    assert isinstance(res.exception, UserError) and "no transport adapters" in str(res.exception)
