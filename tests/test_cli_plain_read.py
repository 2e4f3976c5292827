"""Read commands on the driver's connection (issue 18: start in a blink).

``kwhub invoices list|show`` read stored documents through :mod:`kwhub.hub.store.plain_read`
(the standard library's sqlite3 for a SQLite file, the psycopg connection of
:class:`~kwhub.hub.store.Database` for PostgreSQL). They print exactly what the SQLAlchemy
read functions give, never migrate, and refuse a schema that is not this kwhub's.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kwhub.hub.cli.main import app
from kwhub.hub.store import Database
from kwhub.hub.store.plain_read import COLUMNS, migration_chain
from tests.fixtures.db import temporary_pg_database
from tests.fixtures.settlement import write_period
from tests.test_settlement_cli import TOML


def test_the_columns_read_are_the_models_columns_and_the_head_is_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlmodel import SQLModel

    from kwhub.hub.store.db import MIGRATIONS_DIR, import_table_modules

    import_table_modules()
    tables = SQLModel.metadata.tables
    for name, columns in COLUMNS.items():
        if name == "alembic_version":
            continue
        assert name in tables, name
        assert set(columns) <= {c.name for c in tables[name].columns}, name
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(cfg)
    chain = migration_chain()
    assert chain is not None and chain[-1] == script.get_current_head()
    assert list(chain) == [s.revision for s in reversed(list(script.walk_revisions()))]


def _settled(tmp_path: Path, url: str | None) -> None:
    toml = TOML.replace('name = "settle test"', f'name = "settle test"\ndatabase = "{url}"' if url else
                        'name = "settle test"')
    (tmp_path / "kwhub.toml").write_text(toml)
    db = Database.open(url, work_dir=tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0})
    db.close()
    res = CliRunner().invoke(app, ["settle", "--period", "2026-10", "--format", "json"])
    assert res.exit_code == 0, res.output


def _expected(url: str) -> tuple[list[dict], dict]:
    """What the SQLAlchemy read functions give, in the commands' JSON."""
    from kwhub.hub.cli.settle_cmds import _invoice_json, _staleness
    from kwhub.hub.settle.invoices_read import get_invoice, list_invoices

    db = Database.open(url)
    try:
        docs = list_invoices(db)
        stale, later = _staleness(db, docs)
        listed = [_invoice_json(d, stale.get(d.run_id), later.get(d.run_id)) for d in docs]
        one = get_invoice(db, "OP-000001")
        shown = _invoice_json(one, stale.get(one.run_id), later.get(one.run_id))
    finally:
        db.close()
    return listed, shown


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_invoices_list_and_show_print_what_the_store_functions_give(tmp_path: Path, monkeypatch, backend) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KWHUB_DATABASE_URL", raising=False)
    runner = CliRunner()
    if backend == "postgresql":
        with temporary_pg_database() as url:
            _settled(tmp_path, url)
            listed, shown = _expected(url)
            res_list = runner.invoke(app, ["invoices", "list", "--format", "json"])
            res_show = runner.invoke(app, ["invoices", "show", "OP-000001", "--format", "json"])
            res_text = runner.invoke(app, ["invoices", "list"])
            res_missing = runner.invoke(app, ["invoices", "show", "NOPE"])
    else:
        _settled(tmp_path, None)
        listed, shown = _expected(f"sqlite:///{tmp_path / 'kwhub.db'}")
        res_list = runner.invoke(app, ["invoices", "list", "--format", "json"])
        res_show = runner.invoke(app, ["invoices", "show", "OP-000001", "--format", "json"])
        res_text = runner.invoke(app, ["invoices", "list"])
        res_missing = runner.invoke(app, ["invoices", "show", "NOPE"])
    assert res_list.exit_code == 0, res_list.output
    assert json.loads(res_list.output) == listed and [d["number"] for d in listed] == ["OP-000001"]
    assert res_show.exit_code == 0, res_show.output
    assert json.loads(res_show.output) == shown and shown["total"] == "18917.20"
    assert res_text.exit_code == 0 and "Invoices" in res_text.output and "USD" in res_text.output
    assert _said(res_missing) == (1, f"no invoice 'NOPE' {NO_INVOICE}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_runs_list_prints_what_the_review_gate_lists(tmp_path: Path, monkeypatch, backend) -> None:
    from kwhub.hub.settle.review import list_runs

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KWHUB_DATABASE_URL", raising=False)
    runner = CliRunner()

    def both(url: str) -> tuple[list[dict], list[dict], object, object]:
        db = Database.open(url)
        try:
            expected = json.loads(json.dumps(list_runs(db), default=str))
            held = json.loads(json.dumps(list_runs(db, status="held"), default=str))
        finally:
            db.close()
        return expected, held, runner.invoke(app, ["runs", "list", "--format", "json"]), \
            runner.invoke(app, ["runs", "list", "--status", "held", "--format", "json"])

    if backend == "postgresql":
        with temporary_pg_database() as url:
            _settled(tmp_path, url)
            expected, held, res, res_held = both(url)
            res_text = runner.invoke(app, ["runs", "list"])
    else:
        _settled(tmp_path, None)
        expected, held, res, res_held = both(f"sqlite:///{tmp_path / 'kwhub.db'}")
        res_text = runner.invoke(app, ["runs", "list"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert listed == expected and len(listed) == 1
    assert listed[0]["status"] == "issued" and listed[0]["stale"] is False
    assert listed[0]["document"]["total"] == "18917.20" and listed[0]["created_at"]
    assert res_held.exit_code == 0 and json.loads(res_held.output) == held == []
    assert res_text.exit_code == 0 and "Settlement runs" in res_text.output


NO_INVOICE = "(give an invoice id or number; `kwhub invoices list` shows them)"


def _said(res) -> tuple[int, str]:
    """(exit code, message) of a command that failed with a known error, as ``kwhub`` prints it."""
    from kwhub.hub.cli.errors import exit_code_of

    assert res.exception is not None and not isinstance(res.exception, SystemExit), res.output
    hint = getattr(res.exception, "hint", "")
    return exit_code_of(res.exception), " ".join(f"{res.exception} {hint}".split())


def _set_revision(path: Path, revision: str | None) -> None:
    conn = sqlite3.connect(path)
    if revision is None:
        conn.execute("DROP TABLE alembic_version")
    else:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("command", [["invoices", "list"], ["readings", "--summary"], ["runs", "list"]])
def test_a_read_command_refuses_an_older_or_newer_schema_and_migrates_nothing(tmp_path: Path, monkeypatch,
                                                                             command) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KWHUB_DATABASE_URL", raising=False)
    Database.open(work_dir=tmp_path).close()
    path = tmp_path / "kwhub.db"
    chain = migration_chain()
    assert chain is not None
    runner = CliRunner()
    for revision, words in ((chain[-2], "older than this kwhub's"), ("0099_future", "written by a newer kwhub"),
                            (None, "has no kwhub schema")):
        if revision is None:
            _set_revision(path, chain[-1])
        _set_revision(path, revision)
        code, said = _said(runner.invoke(app, command))
        assert code == 1 and words in said
        if revision is not None:
            found = sqlite3.connect(path).execute("SELECT version_num FROM alembic_version").fetchall()
            assert found == [(revision,)]  # not migrated
    assert "kwhub db upgrade" in said


def test_a_read_refuses_a_newer_postgresql_schema(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KWHUB_DATABASE_URL", raising=False)
    from sqlalchemy import text

    with temporary_pg_database() as url:
        (tmp_path / "kwhub.toml").write_text(f'[hub]\ndatabase = "{url}"\n[[sites]]\nid = "campus"\n')
        db = Database.open(url)
        with db.write_transaction() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
        db.close()
        for command in (["invoices", "list"], ["runs", "list"], ["readings", "--summary"]):
            code, said = _said(CliRunner().invoke(app, command))
            assert code == 1 and "written by a newer kwhub" in said and "0099_future" in said


PROBE = """
import sys
from kwhub.hub.cli.main import app
try:
    app(["invoices", "list", "--format", "json"], standalone_mode=False)
finally:
    print(sorted(m for m in ("sqlalchemy", "sqlmodel", "alembic", "numpy") if m in sys.modules), file=sys.stderr)
"""
RUNS_PROBE = PROBE.replace('"invoices", "list"', '"runs", "list"')


def test_invoices_list_on_a_sqlite_store_imports_neither_sqlalchemy_nor_alembic_nor_numpy(tmp_path: Path) -> None:
    Database.open(work_dir=tmp_path).close()
    res = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []
    assert res.stderr.strip().splitlines()[-1] == "[]"
    res = subprocess.run([sys.executable, "-c", RUNS_PROBE], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [] and res.stderr.strip().splitlines()[-1] == "[]"


def test_an_unreadable_sqlite_file_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KWHUB_DATABASE_URL", raising=False)
    (tmp_path / "kwhub.db").write_bytes(b"this is not a database" * 100)
    code, said = _said(CliRunner().invoke(app, ["invoices", "list"]))
    assert code == 4 and "cannot open the database" in said and "kwhub.db" in said


def _stored_readings(tmp_path: Path, url: str | None) -> None:
    """The sample meter file ingested (raw and validated layers) and two register reads."""
    import shutil

    import numpy as np

    from kwhub.core.intervals import PeriodSeries

    if url:
        (tmp_path / "kwhub.toml").write_text(f'[hub]\ndatabase = "{url}"\n[[sites]]\nid = "campus"\n'
                                             '[[channels]]\nid = "hall_a.load"\n'
                                             '[[channels]]\nid = "pv.net"\n')
    shutil.copy(Path(__file__).parent / "data" / "kwhub_long.csv", tmp_path / "meter.csv")
    res = CliRunner().invoke(app, ["ingest", "meter.csv", "--adapter", "meters.csv", "--format", "json"])
    assert res.exit_code == 0, res.output
    db = Database.open(url, work_dir=tmp_path)
    try:
        db.periods.write([PeriodSeries("meter.reg", "register", np.array([1_709_251_200, 1_709_337_600]),
                                       np.array([1_709_251_200, 1_709_337_600]), np.array([10.5, 20.25]),
                                       np.zeros(2, dtype=np.uint8))], source="test")
    finally:
        db.close()


def _same_as_the_store(url: str) -> None:
    from datetime import date

    from kwhub.hub.store.plain_read import (
        day_blocks,
        interval_channels,
        interval_totals,
        open_sqlite,
        period_totals,
        plain_sqlite_path,
        reader_of,
    )

    db = Database.open(url)
    plain = plain_sqlite_path(url)
    reader = open_sqlite(plain, url) if plain is not None else reader_of(db, url)
    try:
        for layer in ("raw", "validated"):
            store = [(s.channel_id, s.intervals, s.first_start, s.last_end, s.total_kwh)
                     for s in db.intervals.summary(layer=layer)]
            assert [tuple(t) for t in interval_totals(reader, layer)] == store and store
            assert interval_channels(reader, layer) == db.intervals.channels(layer)
            for ch in db.intervals.channels(layer):
                want = db.intervals.read_blocks(ch, date(2024, 2, 29), date(2024, 3, 2), layer=layer)
                got = day_blocks(reader, ch, date(2024, 2, 29), date(2024, 3, 2), layer)
                assert len(got) == len(want) > 0
                for a, b in zip(got, want, strict=True):
                    assert (a.channel_id, a.day, a.interval_minutes, a.version, a.layer, a.rule_names) == \
                           (b.channel_id, b.day, b.interval_minutes, b.version, b.layer, b.rule_names)
                    assert a.values.tobytes() == b.values.tobytes() and a.quality.tobytes() == b.quality.tobytes()
                    assert (a.rule_ids is None) == (b.rule_ids is None)
                    assert a.rule_ids is None or a.rule_ids.tobytes() == b.rule_ids.tobytes()
        want_periods = [(p.channel_id, p.kind, p.readings, p.first_start, p.last_end, p.total_kwh)
                        for p in db.periods.summary()]
        assert [tuple(p) for p in period_totals(reader)] == want_periods and want_periods
    finally:
        reader.close()
        db.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_readings_read_what_the_interval_and_period_stores_read(tmp_path: Path, monkeypatch, backend) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KWHUB_DATABASE_URL", raising=False)
    runner = CliRunner()
    if backend == "postgresql":
        with temporary_pg_database() as url:
            _stored_readings(tmp_path, url)
            _same_as_the_store(url)
            summary = runner.invoke(app, ["readings", "--summary", "--format", "json"])
            rows = runner.invoke(app, ["readings", "hall_a.load", "--start", "2024-03-01", "--format", "json"])
            unknown = runner.invoke(app, ["readings", "nope", "--start", "2024-03-01"])
    else:
        _stored_readings(tmp_path, None)
        _same_as_the_store(f"sqlite:///{tmp_path / 'kwhub.db'}")
        summary = runner.invoke(app, ["readings", "--summary", "--format", "json"])
        rows = runner.invoke(app, ["readings", "hall_a.load", "--start", "2024-03-01", "--format", "json"])
        unknown = runner.invoke(app, ["readings", "nope", "--start", "2024-03-01"])
    assert summary.exit_code == 0, summary.output
    data = json.loads(summary.output)
    assert [c["channel_id"] for c in data["channels"]] == ["hall_a.load", "pv.net"]
    assert data["period_readings"][0]["channel_id"] == "meter.reg" and data["period_readings"][0]["readings"] == 2
    assert rows.exit_code == 0, rows.output
    assert [r["kwh"] for r in json.loads(rows.output)["intervals"]] == [5012.5, 5020.0, 4998.25, 5003.75]
    code, said = _said(unknown)
    assert code == 1 and "unknown channel 'nope'" in said and "hall_a.load, meter.reg, pv.net" in said
