"""Database opening, pragmas, write locking, migrations and reference data (SQLite + PostgreSQL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from kwhub.core.campus import Campus, Channel, Contract, Party, Site
from kwhub.hub.store import Database, migration_head, sync_reference_data
from kwhub.hub.store.db import default_url, normalise_url
from kwhub.hub.store.tables import CORE_TABLES, AuditLog, ChannelRow, ContractRow, PartyRow, SiteRow
from tests.fixtures.db import temporary_pg_database


def _campus(interval: int = 15) -> Campus:
    return Campus(
        sites=[Site(id="s1", name="Campus One", timezone="America/Chicago")],
        channels=[Channel(id="hall_a.load", role="tenant_load", party="tenant_a", interval_minutes=interval),
                  Channel(id="pv.net", role="generation", interval_minutes=interval)],
        parties=[Party(id="tenant_a", name="Tenant A", roles=["tenant"]), Party(id="ipp", name="IPP")],
        contracts=[Contract(id="ppa-a", seller="ipp", buyer="tenant_a")],
    )


def test_migrations_create_every_table_at_head(db: Database) -> None:
    names = set(db.table_names())
    assert set(CORE_TABLES) <= names
    assert "alembic_version" in names
    with db.engine.connect() as conn:
        versions = [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    assert versions == [migration_head()]
    assert db.current_revision() == migration_head()


def test_revision_chain_is_linear() -> None:
    from alembic.script import ScriptDirectory

    from kwhub.hub.store.db import _alembic_config

    script = ScriptDirectory.from_config(_alembic_config())
    chain = [rev.revision for rev in script.walk_revisions()][::-1]
    assert chain[:4] == ["0001_core", "0002_settlement", "0003_outbox", "0004_interval_day_key"]
    assert len(script.get_heads()) == 1


def test_downgrade_to_base_and_upgrade_again(sqlite_db: Database) -> None:
    sqlite_db.downgrade("base")
    left = set(sqlite_db.table_names())
    assert not (set(CORE_TABLES) & left)
    assert sqlite_db.current_revision() is None
    sqlite_db.migrate()
    assert set(CORE_TABLES) <= set(sqlite_db.table_names())
    assert sqlite_db.current_revision() == migration_head()


def test_fresh_postgres_database_migrates_from_scratch() -> None:
    with temporary_pg_database("kwhub_mig") as url:
        fresh = Database.open(url)
        try:
            assert fresh.dialect == "postgresql"
            assert fresh.current_revision() == migration_head()
            assert set(CORE_TABLES) <= set(fresh.table_names())
            # opening again is a no-op at head
            again = Database.open(url)
            assert again.current_revision() == migration_head()
            again.close()
        finally:
            fresh.close()


def test_sqlite_default_file_wal_busy_timeout_foreign_keys(tmp_path: Path) -> None:
    db = Database.open(work_dir=tmp_path)
    try:
        assert db.dialect == "sqlite"
        assert (tmp_path / "kwhub.db").exists()
        assert db.url == default_url(tmp_path)
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.close()
    # WAL is a property of the file: a plain sqlite3 connection sees it too
    raw = sqlite3.connect(tmp_path / "kwhub.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_env_url_is_used_when_no_url_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere" / "hub.sqlite"
    monkeypatch.setenv("KWHUB_DATABASE_URL", f"sqlite:///{target}")
    db = Database.open(work_dir=tmp_path)
    try:
        assert target.exists()
        assert not (tmp_path / "kwhub.db").exists()
    finally:
        db.close()


def test_url_normalisation_and_rejection() -> None:
    assert normalise_url("postgresql://h/db") == "postgresql+psycopg://h/db"
    assert normalise_url("postgres://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError, match="unsupported database URL"):
        Database.open("mysql://localhost/x")


def test_write_transaction_holds_the_sqlite_write_lock_from_the_start(sqlite_db: Database) -> None:
    path = sqlite_db.engine.url.database
    other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    try:
        with sqlite_db.write_transaction():
            # nothing written yet, but BEGIN IMMEDIATE already holds the lock
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            # readers are not blocked (WAL)
            assert other.execute("SELECT count(*) FROM interval_day").fetchone()[0] == 0
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        # a read connection does not take the write lock
        with sqlite_db.read_connection() as conn:
            conn.execute(text("SELECT 1"))
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_write_transaction_rolls_back_everything_on_error(db: Database) -> None:
    audit = AuditLog.__table__  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="boom"):
        with db.write_transaction() as conn:
            conn.execute(audit.insert(), [{"actor": "t", "action": "a", "object_type": "x", "object_id": "1",
                                           "detail": {}, "at": AuditLog().at}])
            raise RuntimeError("boom")
    with db.session() as s:
        assert s.exec(select(AuditLog)).all() == []
    with db.write_transaction() as conn:
        conn.execute(audit.insert(), [{"actor": "t", "action": "a", "object_type": "x", "object_id": "1",
                                       "detail": {"k": [1, 2]}, "at": AuditLog().at}])
    with db.session() as s:
        rows = s.exec(select(AuditLog)).all()
    assert [(r.actor, r.detail) for r in rows] == [("t", {"k": [1, 2]})]


def test_sync_reference_data_upserts(db: Database) -> None:
    campus = _campus()
    with db.session(write=True) as s:
        counts = sync_reference_data(s, campus)
        s.commit()
    assert counts == {"added": 6, "updated": 0, "unchanged": 0}
    with db.session() as s:
        ch = s.get(ChannelRow, "hall_a.load")
        assert ch is not None and ch.role == "tenant_load" and ch.party_id == "tenant_a"
        assert ch.spec["interval_minutes"] == 15
        assert s.get(SiteRow, "s1").timezone == "America/Chicago"  # type: ignore[union-attr]
        assert s.get(ContractRow, "ppa-a").buyer == "tenant_a"  # type: ignore[union-attr]
        assert len(s.exec(select(PartyRow)).all()) == 2
    with db.session(write=True) as s:
        again = sync_reference_data(s, campus)
        s.commit()
    assert again == {"added": 0, "updated": 0, "unchanged": 6}
    with db.session(write=True) as s:
        changed = sync_reference_data(s, _campus(interval=5))
        s.commit()
    assert changed == {"added": 0, "updated": 2, "unchanged": 4}
    with db.session() as s:
        assert s.get(ChannelRow, "pv.net").interval_minutes == 5  # type: ignore[union-attr]


def test_write_session_takes_the_lock_when_it_begins(sqlite_db: Database) -> None:
    other = sqlite3.connect(sqlite_db.engine.url.database, timeout=0.05, isolation_level=None)
    try:
        with sqlite_db.session(write=True) as s:
            s.exec(select(SiteRow)).all()  # a read, yet the write lock is held
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with sqlite_db.session() as s:
            s.exec(select(SiteRow)).all()
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_concurrent_writers_wait_for_each_other(db: Database) -> None:
    """Two writers restating the same day at once: both succeed, versions 1..3, no lock error."""
    import threading

    import numpy as np

    from kwhub.core.intervals import ChannelSeries

    start = 1_700_006_400  # 2023-11-15 00:00 UTC
    starts = start + 900 * np.arange(96)
    db.intervals.write_series([ChannelSeries("a", 15, starts, np.zeros(96), np.zeros(96))])
    holding = threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with db.write_transaction() as conn:
                holding.set()
                db.intervals.write_series([ChannelSeries("a", 15, starts, np.ones(96), np.zeros(96))], conn=conn)
                threading.Event().wait(0.3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=slow_writer)
    t.start()
    holding.wait(5)
    db.intervals.write_series([ChannelSeries("a", 15, starts, np.full(96, 2.0), np.zeros(96))])
    t.join(10)
    assert errors == []
    from datetime import date

    hist = db.intervals.history("a", date(2023, 11, 15))
    assert [h.version for h in hist] == [1, 2, 3]
    assert [float(h.values[0]) for h in hist] == [0.0, 1.0, 2.0]


def test_audit_entries_follow_the_transaction(db: Database) -> None:
    from kwhub.hub.store import audit_entries, record_audit

    with db.write_transaction() as conn:
        record_audit(conn, "issue", actor="ops", object_type="invoice", object_id="INV-1", detail={"total": "10.00"})
        record_audit(conn, "sync", actor="ops", object_type="config")
    with pytest.raises(RuntimeError):
        with db.write_transaction() as conn:
            record_audit(conn, "void", actor="ops", object_type="invoice", object_id="INV-1")
            raise RuntimeError("rolled back")
    with db.session(write=True) as s:
        record_audit(s, "send", actor="relay", object_type="invoice", object_id="INV-1")
        s.commit()
    inv = audit_entries(db, "invoice", "INV-1")
    assert [(e.action, e.actor) for e in inv] == [("issue", "ops"), ("send", "relay")]
    assert inv[0].detail == {"total": "10.00"} and inv[0].at.tzinfo is not None
    assert len(audit_entries(db)) == 3


def test_core_tables_mirror_the_migration(db: Database) -> None:
    """Autogenerate finds nothing to change for the core tables: models == migration 0001."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    def table_of(diff: tuple) -> str:
        kind = diff[0]
        if kind.endswith("_table"):
            return diff[1].name
        if kind.endswith(("_index", "_constraint")):
            return diff[1].table.name
        return diff[2]  # add_column / remove_column / modify_*: (kind, schema, table, ...)

    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, SQLModel.metadata)
    flat = [d for entry in diffs for d in (entry if isinstance(entry, list) else [entry])]
    ours = [d for d in flat if table_of(d) in CORE_TABLES]
    assert ours == []


def test_interval_day_key_migration_keeps_the_data(db: Database) -> None:
    """0003 -> 0004 (a table rebuild on SQLite) keeps every row; the new key refuses a duplicate."""
    import numpy as np
    from sqlalchemy import inspect
    from sqlalchemy.exc import IntegrityError

    from kwhub.core.intervals import ChannelSeries

    db.downgrade("0003_outbox")
    starts = 1_700_006_400 + 900 * np.arange(3 * 96, dtype=np.int64)
    series = ChannelSeries("m1", 15, starts, np.arange(starts.size, dtype=np.float64), np.zeros(starts.size, np.uint8))
    db.intervals.write_series([series], source="before")
    before = db.intervals.read_series("m1", _span_of(starts))
    db.migrate()
    assert db.current_revision() == migration_head()  # 0004 and the migrations after it
    after = db.intervals.read_series("m1", _span_of(starts))
    assert np.array_equal(before.values, after.values) and np.array_equal(before.starts, after.starts)
    with db.engine.connect() as conn:
        insp = inspect(conn)
        uniques = {u["name"]: u["column_names"] for u in insp.get_unique_constraints("interval_day")}
        indexes = {i["name"] for i in insp.get_indexes("interval_day")}
    assert uniques.get("uq_interval_day_key") == ["channel_id", "layer", "day", "version"]
    assert "ix_interval_day_lookup" not in indexes
    with pytest.raises(IntegrityError), db.write_transaction() as conn:
        conn.execute(text("INSERT INTO interval_day (channel_id, day, layer, version, interval_minutes, n_values, "
                          "\"values\", quality, rule_names, content_hash, source, created_at, is_current) "
                          "SELECT channel_id, day, layer, version, interval_minutes, n_values, \"values\", quality, "
                          "rule_names, content_hash, source, created_at, is_current FROM interval_day LIMIT 1"))


def _span_of(starts):  # noqa: ANN001, ANN202
    from datetime import UTC, datetime

    from kwhub.core.timeline import Span

    return Span(datetime.fromtimestamp(int(starts[0]), UTC), datetime.fromtimestamp(int(starts[-1]) + 900, UTC))
