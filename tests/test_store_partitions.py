"""Migration 0013: ``interval_day`` partitioned by month on PostgreSQL, partitions on demand, COPY in and out.

On SQLite the migration changes nothing.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from kwhub.core.intervals import ChannelSeries, day_start_epoch
from kwhub.core.timeline import Span
from kwhub.hub.store import Database, migration_head
from kwhub.hub.store.pg_intervals import month_partitions


def _series(channel: str, first: date, last: date, seed: int) -> ChannelSeries:
    starts = np.arange(day_start_epoch(first), day_start_epoch(last + timedelta(days=1)), 900, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return ChannelSeries(channel, 15, starts, rng.uniform(0, 500, starts.size), np.zeros(starts.size, np.uint8))


def _span(first: date, last: date) -> Span:
    return Span(datetime(first.year, first.month, first.day, tzinfo=UTC),
                datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1))


def _where(conn, channel: str) -> dict[str, int]:  # noqa: ANN001
    """Rows of ``channel`` per partition."""
    rows = conn.execute(text("SELECT tableoid::regclass::text, count(*) FROM interval_day WHERE channel_id = :c "
                             "GROUP BY 1"), {"c": channel})
    return {name: int(n) for name, n in rows}


@pytest.fixture
def pg(pg_url):  # noqa: ANN001, ANN201 - the session's PostgreSQL database, emptied
    from tests.fixtures.db import _reset_pg

    _reset_pg(pg_url)
    db = Database.open(pg_url)
    try:
        yield db
    finally:
        db.close()


pg_only = pytest.mark.postgres


@pg_only
def test_months_get_partitions_on_demand_and_read_back(pg):
    with pg.engine.connect() as conn:
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'interval_day'")).scalar_one()
        assert kind == "p"
        start = set(month_partitions(conn.connection.driver_connection.cursor()))
    first, last = date(2031, 1, 30), date(2031, 3, 2)
    a, b = _series("m1", first, last, 1), _series("m2", first, last, 2)
    rep = pg.intervals.write_series([a, b], layer="validated")
    assert rep.new_days == 2 * 32
    with pg.engine.connect() as conn:
        made = set(month_partitions(conn.connection.driver_connection.cursor())) - start
        assert made == {"interval_day_2031_01", "interval_day_2031_02", "interval_day_2031_03"}
        assert _where(conn, "m1") == {"interval_day_2031_01": 2, "interval_day_2031_02": 28,
                                      "interval_day_2031_03": 2}
    # the dense read (binary COPY out) gives back exactly what was written
    m = pg.intervals.read_matrix(["m2", "m1"], _span(first, last), 15, layer="validated")
    assert np.array_equal(m.values[0], b.values) and np.array_equal(m.values[1], a.values)
    assert (m.quality == 0).all()
    # a restatement inside an existing month: a new version, no new partition
    restated = _series("m1", date(2031, 2, 10), date(2031, 2, 10), 3)
    rep = pg.intervals.write_series([restated], layer="validated")
    assert rep.changed_days == 1
    with pg.engine.connect() as conn:
        assert set(month_partitions(conn.connection.driver_connection.cursor())) - start == made
    m = pg.intervals.read_matrix(["m1"], _span(date(2031, 2, 10), date(2031, 2, 10)), 15, layer="validated")
    assert np.array_equal(m.values[0], restated.values)


@pg_only
def test_a_transaction_asks_for_its_months_once_and_a_rolled_back_one_takes_its_partitions_along(pg):
    """Writes of one channel at a time in one transaction ask for the partitions and for COPY
    once (what the first write learned holds for the transaction); after a rollback the
    partitions it created are gone and the next transaction creates them again."""
    import kwhub.hub.store.pg_intervals as pgi

    asked: list[str] = []
    real_ensure, real_copy = pgi.ensure_partitions, pgi.copy_in_allowed

    class Recording:  # the cursor, each statement noted
        def __init__(self, cur):  # noqa: ANN001
            self.cur = cur

        def execute(self, sql, *args):  # noqa: ANN001, ANN202
            asked.append(str(sql))
            return self.cur.execute(sql, *args)

        def fetchone(self):  # noqa: ANN202
            return self.cur.fetchone()

    def counting(cur, first, last, memo=None):  # noqa: ANN001, ANN202
        return real_ensure(Recording(cur), first, last, memo)

    def copy_counting(cur, memo=None):  # noqa: ANN001, ANN202
        if memo is None or "copy" not in memo:
            asked.append("copy_in_allowed")
        return real_copy(cur, memo)

    import kwhub.hub.store.day_sql as day_sql
    import kwhub.hub.store.interval_store as interval_store

    first, last = date(2034, 1, 30), date(2034, 2, 2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(interval_store, "ensure_partitions", counting)
        mp.setattr(day_sql, "copy_in_allowed", copy_counting)

        class Rollback(Exception):
            pass

        with pytest.raises(Rollback), pg.write_transaction() as conn:
            for k in range(3):
                pg.intervals.write_series([_series(f"r{k}", first, last, k)], layer="raw", conn=conn)
            assert "interval_day_2034_02" in month_partitions(conn.connection.driver_connection.cursor())
            raise Rollback
        assert sum("kwhub_interval_partitions(%s" in q for q in asked) == 1
        assert asked.count("copy_in_allowed") == 1
        with pg.engine.connect() as conn:
            names = month_partitions(conn.connection.driver_connection.cursor())
            assert "interval_day_2034_01" not in names and "interval_day_2034_02" not in names
        asked.clear()
        with pg.write_transaction() as conn:
            for k in range(3):
                pg.intervals.write_series([_series(f"r{k}", first, last, k)], layer="raw", conn=conn)
        assert sum("kwhub_interval_partitions(%s" in q for q in asked) == 1
    with pg.engine.connect() as conn:
        assert _where(conn, "r2") == {"interval_day_2034_01": 2, "interval_day_2034_02": 2}
        assert int(conn.execute(text("SELECT count(*) FROM interval_day_default")).scalar_one()) == 0


@pg_only
def test_a_row_written_around_the_store_lands_in_the_default_and_moves(pg):
    with pg.write_transaction() as conn:  # e.g. a hand-written repair: its month has no partition yet
        conn.execute(text("INSERT INTO interval_day (channel_id, day, layer, version, interval_minutes, n_values, "
                          "\"values\", quality, rule_names, content_hash, source, created_at, is_current) VALUES "
                          "('legacy', '2033-05-04', 'raw', 1, 15, 0, '\\x', '\\x', '[]', 'x', '', now(), true)"))
    with pg.engine.connect() as conn:
        assert _where(conn, "legacy") == {"interval_day_default": 1}
    pg.intervals.write_series([_series("m3", date(2033, 5, 1), date(2033, 5, 1), 4)], layer="raw")
    with pg.engine.connect() as conn:
        assert _where(conn, "legacy") == {"interval_day_2033_05": 1}  # moved when its month got a partition
        assert _where(conn, "m3") == {"interval_day_2033_05": 1}
        assert int(conn.execute(text("SELECT count(*) FROM interval_day_default")).scalar_one()) == 0


@pg_only
def test_migration_keeps_the_data_both_ways(pg):
    first, last = date(2032, 6, 29), date(2032, 7, 2)
    pg.downgrade("0011_service")
    with pg.engine.connect() as conn:
        assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'interval_day'")).scalar_one() == "r"
    s = _series("m4", first, last, 5)
    pg.intervals.write_series([s], layer="raw")  # a plain table: nothing to partition
    pg.migrate()
    with pg.engine.connect() as conn:
        assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'interval_day'")).scalar_one() == "p"
        assert _where(conn, "m4") == {"interval_day_2032_06": 2, "interval_day_2032_07": 2}
        ids = [r[0] for r in conn.execute(text("SELECT id FROM interval_day WHERE channel_id = 'm4' ORDER BY id"))]
    m = pg.intervals.read_matrix(["m4"], _span(first, last), 15, layer="raw")
    assert np.array_equal(m.values[0], s.values)
    # the id sequence goes on after the copied rows; the unique key still refuses a duplicate version
    pg.intervals.write_series([_series("m5", first, first, 6)], layer="raw")
    with pg.engine.connect() as conn:
        new_id = conn.execute(text("SELECT id FROM interval_day WHERE channel_id = 'm5'")).scalar_one()
    assert new_id > max(ids)
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), pg.write_transaction() as conn:
        conn.execute(text("INSERT INTO interval_day (channel_id, day, layer, version, interval_minutes, n_values, "
                          "\"values\", quality, rule_names, content_hash, source, created_at, is_current) "
                          "SELECT channel_id, day, layer, version, interval_minutes, n_values, \"values\", quality, "
                          "rule_names, content_hash, source, created_at, is_current FROM interval_day LIMIT 1"))
    pg.downgrade("0011_service")
    with pg.engine.connect() as conn:
        assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'interval_day'")).scalar_one() == "r"
        assert int(conn.execute(text("SELECT count(*) FROM interval_day")).scalar_one()) == 5
    assert np.array_equal(pg.intervals.read_matrix(["m4"], _span(first, last), 15, layer="raw").values[0], s.values)
    pg.migrate()


@pg_only
def test_the_application_role_can_write_a_new_month(pg, pg_url):
    """Creating a partition needs the table's owner: the function runs as the owner (SECURITY DEFINER)."""
    role = f"kwhub_app_{secrets.token_hex(4)}"
    with pg.engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"))
        conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"))  # as db grant-app
    app = Database.open(make_url(pg_url).set(username=role).render_as_string(hide_password=False))
    try:
        with app.engine.begin() as conn:
            made = conn.execute(text("SELECT kwhub_interval_partitions('2034-02-11', '2034-03-01')")).scalar_one()
        assert made == 2
        # the store writes as the application role: INSERT (row-level security refuses it COPY FROM)
        s = _series("app1", date(2034, 4, 30), date(2034, 5, 1), 11)
        rep = app.intervals.write_series([s], layer="raw")
        assert rep.new_days == 2
        got = app.intervals.read_matrix(["app1"], _span(date(2034, 4, 30), date(2034, 5, 1)), 15, layer="raw")
        assert np.array_equal(got.values[0], s.values)
        with pg.engine.connect() as conn:
            owners = {r[0] for r in conn.execute(text(
                "SELECT tableowner FROM pg_tables WHERE tablename IN ('interval_day_2034_02', 'interval_day_2034_03', "
                "'interval_day_2034_04', 'interval_day_2034_05')"))}
        assert owners == {make_url(pg_url).username}
    finally:
        app.close()
        with pg.engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))


def test_sqlite_schema_unchanged(tmp_path):
    """0013 is a no-op on SQLite: the interval_day table is the same at 0011_service and at head."""
    db = Database.open(work_dir=tmp_path)
    try:
        def schema() -> str:
            with db.engine.connect() as conn:
                return "\n".join(r[0] for r in conn.execute(text(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = 'interval_day' AND sql IS NOT NULL ORDER BY name")))
        at_head = schema()
        db.downgrade("0011_service")
        assert schema() == at_head
        db.migrate()
        assert schema() == at_head and db.current_revision() == migration_head()
    finally:
        db.close()

