"""The command line: data cannot act on the terminal, secrets are never echoed, exit codes
are consistent, errors are named, staleness and rows in flight are shown.

The end-to-end checks run the commands through the real entry point's error handling
(:func:`kwhub.hub.cli.errors.run_guarded`, where the error printing and exit codes live); the
rest use typer's runner. Configurations use SQLite; the staleness and in-flight checks run on both databases.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from kwhub.core.campus import DeliveryPrefs
from kwhub.core.intervals import ChannelSeries
from kwhub.hub.cli.main import app
from kwhub.hub.deliver.outbox import enqueue_invoice
from kwhub.hub.store import Database
from kwhub.hub.store.outbox_tables import outbox_table, utcnow
from tests.fixtures.outbox import RECEIVER_SECRET, JsonTestRenderer, issue_invoices
from tests.fixtures.settlement import SETTLE_TOML, set_value, write_period

EVIL = "[red]hall\x1b[2J\u202eA:smile:"
SHOWN = "[red]hall\\x1b[2J\\u202eA:smile:"


@dataclass
class Run:
    """What one ``kwhub`` run printed and returned."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def kwhub(capsys, monkeypatch):
    """Run ``kwhub ARGS`` in ``cwd`` through the real entry point's error handling
    (:func:`kwhub.hub.cli.errors.run_guarded`), in this process, on a wide terminal."""
    from kwhub.hub.cli.errors import run_guarded

    def run(cwd: Path, *args: str) -> Run:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["kwhub", *args])
        capsys.readouterr()
        try:
            run_guarded(app)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        out = capsys.readouterr()
        return Run(code, out.out, out.err)

    return run


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setattr(sys, "argv", ["kwhub"])


def flat(text_: str) -> str:
    return " ".join(text_.split())


def _write_evil(tmp_path: Path) -> None:
    (tmp_path / "kwhub.toml").write_text('[[sites]]\nid = "campus"\n')
    db = Database.open(work_dir=tmp_path)
    starts = 1_790_000_000 - 1_790_000_000 % 86_400 + 900 * np.arange(96, dtype=np.int64)
    db.intervals.write_series([ChannelSeries(EVIL, 15, starts, np.ones(96), np.zeros(96, np.uint8))])
    db.close()


def test_data_is_shown_not_interpreted(tmp_path, kwhub):
    _write_evil(tmp_path)
    res = kwhub(tmp_path, "readings", "--summary")
    assert res.returncode == 0, res.stderr
    assert SHOWN in res.stdout
    assert "\x1b" not in res.stdout and "\u202e" not in res.stdout and "😄" not in res.stdout
    res = kwhub(tmp_path, "readings", EVIL, "--start", datetime.fromtimestamp(1_790_000_000, UTC).date().isoformat())
    assert res.returncode == 0, res.stderr
    assert SHOWN in res.stdout and "\x1b" not in res.stdout
    res = kwhub(tmp_path, "invoices", "show", EVIL)
    assert res.returncode == 1
    assert SHOWN in res.stderr and "\x1b" not in res.stderr


CTRL_C_IN_SOURCE_TEXT = """
import sys

from kwhub.hub.cli.errors import EXIT_INTERRUPTED, run_guarded


def app(standalone_mode: bool = True) -> None:
    try:  # Ctrl-C landing while a dataclass or named tuple is built from source text (an import)
        exec("raise KeyboardInterrupt", {})
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)  # handled: the daemon's "stopped after ..." path


run_guarded(app)
"""


def test_a_handled_ctrl_c_exits_130_under_python_m(tmp_path):
    """CPython marks a Ctrl-C raised inside a string ``exec`` as unhandled even when it is
    caught; under ``python -m`` the process then ended killed by SIGINT (-2) instead of 130
    (seen as a rare failure of ``kwhub deliver`` stopped by Ctrl-C)."""
    import subprocess

    (tmp_path / "ctrl_c_app.py").write_text(CTRL_C_IN_SOURCE_TEXT)
    got = subprocess.run([sys.executable, "-m", "ctrl_c_app"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert got.returncode == 130, got.stderr


def test_errors_print_markup_literally_and_never_the_sql(capsys):
    from sqlalchemy.exc import IntegrityError

    from kwhub.hub.cli.errors import run_guarded

    def fails(exc: BaseException) -> typer.Typer:
        one = typer.Typer()

        @one.command()
        def boom() -> None:
            raise exc

        return one

    statement = 'INSERT INTO invoice (id, document) VALUES (?, ?)'
    params = ("inv-1", '{"lines": [{"amount": "19480.00"}]}')
    with pytest.raises(SystemExit) as stop:
        run_guarded(fails(IntegrityError(statement, params, Exception("UNIQUE constraint failed: invoice.id"))))
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert "UNIQUE constraint failed: invoice.id" in err
    assert "INSERT" not in err and "19480" not in err and "looks like a bug" not in err

    from kwhub.hub.cli.errors import UserError

    with pytest.raises(SystemExit) as stop:
        run_guarded(fails(UserError("no invoice '[bold]x[/bold]'")))
    assert stop.value.code == 1 and "[bold]x[/bold]" in capsys.readouterr().err


def test_an_unknown_type_is_a_configuration_error(tmp_path, capsys, kwhub):
    from kwhub.hub.cli.errors import run_guarded
    from kwhub.hub.registry import get_registry

    one = typer.Typer()

    @one.command()
    def lookup() -> None:
        get_registry().adapter("erp.nope")

    with pytest.raises(SystemExit) as stop:
        run_guarded(one)
    assert stop.value.code == 2 and "erp.nope" in capsys.readouterr().err
    # a delivery format no plugin renders: named with its key path when kwhub.toml loads
    (tmp_path / "kwhub.toml").write_text(
        '[[sites]]\nid = "campus"\n[[parties]]\nid = "t"\nname = "T"\n[parties.delivery]\nformats = ["ubl3"]\n'
        'transports = ["drop"]\n[[adapters]]\ntype = "erp.folder"\nid = "drop"\n[adapters.config]\nfolder = "o"\n')
    res = kwhub(tmp_path, "settle", "--period", "2026-10")
    assert res.returncode == 2
    assert "parties[0] (id=\"t\").delivery.formats: no plugin renders format 'ubl3'" in flat(res.stderr)
    assert "looks like a bug" not in res.stderr


def test_secrets_are_never_echoed(tmp_path, kwhub):
    (tmp_path / "kwhub.toml").write_text(
        '[[sites]]\nid = "campus"\n[[adapters]]\ntype = "erp.webhook"\nid = "w"\n[adapters.config]\n'
        'url = "http://user:hunter2@127.0.0.1:9/x"\nsecret = 123456789\n')
    res = kwhub(tmp_path, "adapters", "check")
    assert res.returncode == 2 and "123456789" not in res.stdout + res.stderr
    assert 'adapters[0] (id="w").config.secret' in flat(res.stderr) and "value not shown" in flat(res.stderr)
    text_ = (tmp_path / "kwhub.toml").read_text().replace("secret = 123456789", 'secret = "s3cret-value"')
    (tmp_path / "kwhub.toml").write_text(text_)
    for args in (("adapters", "check"), ("adapters", "check", "--json")):
        res = kwhub(tmp_path, *args)
        assert res.returncode == 1  # nothing listens on port 9
        assert "hunter2" not in res.stdout + res.stderr and "s3cret-value" not in res.stdout + res.stderr
        assert "127.0.0.1:9" in res.stdout


def test_host_key_checking_off_is_warned(tmp_path, kwhub):
    (tmp_path / "kwhub.toml").write_text(
        '[[sites]]\nid = "campus"\n[[adapters]]\ntype = "erp.sftp"\nid = "erp_sftp"\n[adapters.config]\n'
        'host = "127.0.0.1"\nport = 9\nusername = "u"\npassword = "p"\nhost_key_checking = false\n')
    res = kwhub(tmp_path, "adapters", "check")
    err = flat(res.stderr)
    assert 'warning:' in err and 'adapters[0] (id="erp_sftp").config.host_key_checking = false' in err
    assert "pose as the server" in err


def test_database_url_errors_are_named(tmp_path, kwhub):
    toml = tmp_path / "kwhub.toml"
    toml.write_text('[hub]\ndatabase = "not a url"\n[[sites]]\nid = "campus"\n')
    res = kwhub(tmp_path, "invoices", "list")
    assert res.returncode == 2 and "hub.database: database URL 'not a url' cannot be parsed" in flat(res.stderr)
    toml.write_text('[hub]\ndatabase = "mysql://u:pw123@localhost/db"\n[[sites]]\nid = "campus"\n')
    res = kwhub(tmp_path, "invoices", "list")
    assert res.returncode == 2 and "'mysql' databases are not supported" in flat(res.stderr)
    assert "pw123" not in res.stderr
    toml.write_text('[hub]\ndatabase = "postgresql://u:pw123@127.0.0.1:1/db"\n[[sites]]\nid = "campus"\n')
    res = kwhub(tmp_path, "invoices", "list")
    assert res.returncode == 4 and "cannot open the database" in flat(res.stderr) and "pw123" not in res.stderr
    assert "looks like a bug" not in res.stderr



def test_a_rewound_sequence_is_a_named_error_without_sql(tmp_path, kwhub):
    (tmp_path / "kwhub.toml").write_text(SETTLE_TOML)
    db = Database.open(work_dir=tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0})
    write_period(db, "2026-11", {"a.load": 100.0})
    db.close()
    assert kwhub(tmp_path, "settle", "--period", "2026-10").returncode == 0
    db = Database.open(work_dir=tmp_path)
    with db.write_transaction() as conn:
        conn.execute(text("UPDATE invoice_sequence SET next_number = 1"))
    db.close()
    res = kwhub(tmp_path, "settle", "--period", "2026-11")
    assert res.returncode == 1 and "invoice sequence of seller 'op' was rewound" in flat(res.stderr)
    assert "INSERT" not in res.stdout + res.stderr and '"lines"' not in res.stdout + res.stderr
    assert "looks like a bug" not in res.stderr


@pytest.fixture
def settled(db, tmp_path, monkeypatch):
    """``ppa-a`` settled for October through the CLI, on ``db`` (SQLite or PostgreSQL)."""
    (tmp_path / "kwhub.toml").write_text(f'[hub]\ndatabase = "{db.url}"\n' + SETTLE_TOML)
    write_period(db, "2026-10", {"a.load": 100.0})
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["settle", "--period", "2026-10", "--format", "json"])
    assert res.exit_code == 0, res.output
    return db


def _stale_views() -> tuple[bool, bool, str]:
    runner = CliRunner()
    listed = json.loads(runner.invoke(app, ["invoices", "list", "--format", "json"]).stdout)
    shown = json.loads(runner.invoke(app, ["invoices", "show", "OP-000001", "--format", "json"]).stdout)
    explained = runner.invoke(app, ["explain", "OP-000001", "--line", "1"]).stdout
    return listed[0]["stale"], shown["stale"], explained


def test_invoices_and_explain_show_a_run_stale_after_a_restatement(settled):
    assert _stale_views()[:2] == (False, False) and "current)" in _stale_views()[2]
    set_value(settled, "a.load", int(datetime(2026, 10, 15, 12, tzinfo=UTC).timestamp()), 999.0)
    listed, shown, explained = _stale_views()
    assert listed is True and shown is True and "STALE" in explained
    table = CliRunner().invoke(app, ["invoices", "list"]).stdout
    assert "STALE" in table
    # once the final version is settled, the stale original says which run corrects it
    res = CliRunner().invoke(app, ["settle", "--period", "2026-10", "--version", "final", "--format", "json"])
    assert res.exit_code == 0, res.output
    listed = {d["number"]: d for d in json.loads(CliRunner().invoke(app, ["invoices", "list", "--format",
                                                                           "json"]).stdout)}
    assert listed["OP-000001"]["stale"] is True and listed["OP-000001"]["corrected_by_run"] == "ppa-a:2026-10:final:1"
    assert listed["OP-000002"]["stale"] is False and listed["OP-000002"]["corrected_by_run"] is None
    assert "stale, corrected by ppa-a:2026-10:final:1" in CliRunner().invoke(app, ["invoices", "list"]).stdout


def test_invoices_and_explain_show_a_run_stale_after_its_inputs_were_deleted(settled):
    with settled.write_transaction() as conn:
        conn.execute(text("DELETE FROM interval_day WHERE channel_id = 'a.load' AND day = :d"),
                     {"d": date(2026, 10, 20)})
    listed, shown, explained = _stale_views()
    assert listed is True and shown is True and "STALE" in explained


def test_deliver_and_outbox_list_show_rows_in_flight(db, tmp_path, monkeypatch, outbox_invoices, erp_receiver):
    (tmp_path / "kwhub.toml").write_text(
        f'[hub]\ndatabase = "{db.url}"\n[[sites]]\nid = "campus"\n[[adapters]]\ntype = "erp.webhook"\nid = "erp"\n'
        f'[adapters.config]\nurl = "{erp_receiver.url}"\nsecret = "{RECEIVER_SECRET}"\n')
    invoices = outbox_invoices(2)
    with db.write_transaction() as conn:
        issue_invoices(conn, invoices)
        for inv in invoices:
            enqueue_invoice(conn, inv, [JsonTestRenderer("json")], DeliveryPrefs(formats=["json"], transports=["erp"]))
        # another relay has claimed the first row; its lease runs for another minute
        conn.execute(outbox_table.update().where(outbox_table.c.invoice_id == invoices[0].id).values(
            status="sending", attempts=1, last_attempt_at=utcnow(), next_attempt_at=utcnow() + timedelta(minutes=1)))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["deliver", "--once"])
    assert res.exit_code == 0, res.output
    assert "delivered 1" in res.stdout and "1 to deliver (1 in flight), 0 dead" in res.stdout and "0 pending" not in res.stdout
    res = runner.invoke(app, ["outbox", "list"])
    assert "1 to deliver (1 in flight), 0 dead, 1 delivered" in flat(res.stdout) and "sending (claimed)" in res.stdout
    res = runner.invoke(app, ["outbox", "list", "--format", "json"])
    rows = {r["invoice_id"]: r for r in json.loads(res.stdout)}
    assert rows[invoices[0].id]["flight"] == "claimed" and rows[invoices[1].id]["flight"] == ""


def test_db_commands(tmp_path, kwhub):
    from kwhub.hub.store import migration_head

    (tmp_path / "kwhub.toml").write_text('[[sites]]\nid = "campus"\n')
    res = kwhub(tmp_path, "db", "upgrade")
    assert res.returncode == 0 and f"database schema at {migration_head()}" in flat(res.stdout)
    res = kwhub(tmp_path, "db", "grant-app", "kwhub_app")
    assert res.returncode == 2 and "roles exist on PostgreSQL only" in flat(res.stderr)
    res = kwhub(tmp_path, "db", "maintain")
    assert res.returncode == 0 and "maintained interval_day in" in flat(res.stdout)
    res = kwhub(tmp_path, "db", "maintain", "--from", "2025-13-01")
    assert res.returncode == 2 and "--from '2025-13-01' is not a date" in flat(res.stderr)
