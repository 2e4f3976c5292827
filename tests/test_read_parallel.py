"""SQLite's parallel matrix read: the parts read on their own connections and threads give
what one connection gives, and all parts see one snapshot of the database.

``read_matrix`` reads large SQLite matrices in parts at once (``READ_PARALLEL_MIN_VALUES``),
each part on its own connection, all on one snapshot (``Database.snapshot_connections``).
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

import kwhub.hub.store.matrix_read as matrix_read
from kwhub.core.intervals import ChannelSeries, day_start_epoch
from kwhub.core.timeline import Span
from kwhub.hub.settle.inputs import InputTable
from kwhub.hub.store import Database

D0 = date(2025, 3, 1)


def _series(cid: str, minutes: int, days: list[int], rng: np.random.Generator, scale: float = 1.0) -> ChannelSeries:
    step = minutes * 60
    starts = np.concatenate([day_start_epoch(D0 + timedelta(days=d)) + step * np.arange(86_400 // step)
                             for d in days]).astype(np.int64)
    starts = starts[rng.random(starts.size) > 0.03]  # a few missing intervals inside stored days
    values = np.round(rng.uniform(0, 50, starts.size) * scale, 3)
    quality = rng.choice(np.array([0, 0, 1, 3], dtype=np.uint8), starts.size)
    return ChannelSeries(cid, minutes, starts, values, quality)


def _store(db: Database) -> list[str]:
    """Seven channels: 15-minute ones with gaps, a 5-minute one, a restated one, one empty."""
    rng = np.random.default_rng(11)
    plan = {"a": (15, list(range(10))), "b": (15, [0, 1, 4, 5, 9]), "c": (15, [2]), "fine": (5, [1, 2, 3, 7]),
            "d": (15, list(range(10))), "e": (15, [3, 4, 5, 6])}
    db.intervals.write_series([_series(c, m, days, rng) for c, (m, days) in plan.items()], layer="raw", source="t")
    # a restatement: days 3-5 of "d" get new values (version 2)
    db.intervals.write_series([_series("d", 15, [3, 4, 5], rng, scale=2.0)], layer="raw", source="t2")
    return ["fine", "b", "none", "a", "c", "d", "e"]


def _read(db: Database, ids: list[str], span: Span, parallel: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(matrix_read, "READ_PARALLEL_MIN_VALUES", 1 if parallel else 10**15)
    return db.intervals.read_matrix(ids, span, 15, layer="raw")


def test_parallel_read_equals_one_connection(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _store(sqlite_db)
    versions = {b.day: b.version for b in sqlite_db.intervals.read_blocks("d", D0, D0 + timedelta(days=9), layer="raw")}
    assert versions[D0 + timedelta(days=4)] == 2  # the restatement is there to be read
    base = day_start_epoch(D0)
    # whole days, and spans that start and end inside a UTC day (partial edge days)
    for a, b in ((0, 10 * 96), (37, 9 * 96 + 5), (96 * 3 + 1, 96 * 6 - 1), (95, 97)):
        span = Span(datetime.fromtimestamp(base + a * 900, UTC), datetime.fromtimestamp(base + b * 900, UTC))
        one = _read(sqlite_db, ids, span, False, monkeypatch)
        calls: list[int] = []
        real = matrix_read._read_sqlite

        def counted(*args: Any, real: Any = real, calls: list[int] = calls) -> None:
            calls.append(len(args[2]))
            real(*args)

        monkeypatch.setattr(matrix_read, "_read_sqlite", counted)
        par = _read(sqlite_db, ids, span, True, monkeypatch)
        monkeypatch.setattr(matrix_read, "_read_sqlite", real)
        assert sorted(calls) == [3, 4]  # two parts, on two connections
        assert np.array_equal(one.quality, par.quality)
        assert np.array_equal(one.values, par.values, equal_nan=True)
        assert dict(one.day_hashes) == dict(par.day_hashes)
        # what a settlement records of the read: the same input table
        t_one, t_par = InputTable(ids, [("raw", one.day_hashes, {})]), InputTable(ids, [("raw", par.day_hashes, {})])
        assert bytes(t_one.buffer) == bytes(t_par.buffer) and t_one.hashes == t_par.hashes
        assert np.array_equal(t_one.key, t_par.key)
        assert np.isnan(par.values[ids.index("none")]).all()


def test_a_write_between_the_parts_is_invisible(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second part starts reading only after a restatement (and new days) of channels in
    both parts has committed: neither part sees it."""
    ids = _store(sqlite_db)
    span = Span(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC))
    before = _read(sqlite_db, ids, span, False, monkeypatch)
    first_done = threading.Event()
    real = matrix_read._read_sqlite
    rng = np.random.default_rng(5)

    def gated(cur: Any, sql: Any, part: list[str], *rest: Any) -> None:
        if "fine" in part:  # the first part: read, then write, then let the other part go
            real(cur, sql, part, *rest)
            sqlite_db.intervals.write_series([_series("a", 15, [1, 2, 12], rng, 3.0),
                                              _series("e", 15, [4, 8], rng, 3.0)], layer="raw", source="late")
            first_done.set()
        else:
            assert first_done.wait(30)
            real(cur, sql, part, *rest)

    monkeypatch.setattr(matrix_read, "_read_sqlite", gated)
    during = _read(sqlite_db, ids, span, True, monkeypatch)
    monkeypatch.setattr(matrix_read, "_read_sqlite", real)
    assert first_done.is_set()
    assert np.array_equal(before.values, during.values, equal_nan=True)
    assert np.array_equal(before.quality, during.quality)
    assert dict(before.day_hashes) == dict(during.day_hashes)
    after = _read(sqlite_db, ids, span, True, monkeypatch)  # a new read sees the write
    assert not np.array_equal(before.values, after.values, equal_nan=True)
    assert dict(before.day_hashes) != dict(after.day_hashes)


def _scratch(db: Database) -> sqlite3.Connection:
    path = db.engine.url.database
    assert path
    raw = sqlite3.connect(path, isolation_level=None, timeout=30)
    raw.execute("CREATE TABLE IF NOT EXISTS scratch (x INTEGER)")
    return raw


def test_snapshot_connections_start_again_after_a_commit_in_between(sqlite_db: Database) -> None:
    raw = _scratch(sqlite_db)
    n_begins = 0

    def commit_on_second_begin(conn: Any) -> None:  # a writer commits while the snapshots start
        nonlocal n_begins
        n_begins += 1
        if n_begins == 2:  # the first connection's snapshot, after the count was noted
            raw.execute("INSERT INTO scratch VALUES (1)")

    from sqlalchemy import event
    event.listen(sqlite_db.engine, "begin", commit_on_second_begin)
    try:
        with sqlite_db.snapshot_connections(2) as conns:
            assert len(conns) == 2
            counts = [c.exec_driver_sql("SELECT count(*) FROM scratch").scalar() for c in conns]
            raw.execute("INSERT INTO scratch VALUES (2)")  # after the snapshot: seen by neither
            again = [c.exec_driver_sql("SELECT count(*) FROM scratch").scalar() for c in conns]
    finally:
        event.remove(sqlite_db.engine, "begin", commit_on_second_begin)
    assert n_begins == 6  # noted, two snapshots, started again: noted, two snapshots
    assert counts == again == [1, 1]
    raw.close()


def test_snapshot_connections_fall_back_to_one_connection(sqlite_db: Database) -> None:
    raw = _scratch(sqlite_db)

    def commit_on_every_begin(conn: Any) -> None:
        raw.execute("INSERT INTO scratch VALUES (1)")

    from sqlalchemy import event
    event.listen(sqlite_db.engine, "begin", commit_on_every_begin)
    try:
        with sqlite_db.snapshot_connections(2) as conns:
            assert len(conns) == 1
            assert conns[0].in_transaction()
    finally:
        event.remove(sqlite_db.engine, "begin", commit_on_every_begin)
    raw.close()
