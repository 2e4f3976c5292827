"""The interval store's fast paths behave exactly like the general ones.

Writes skip the current-row lookup for channels without any stored row, read value blobs
only for days a merge needs, insert first versions with the constant columns as SQL
literals (SQLite) and go straight to the DBAPI cursor; reads copy day blobs straight into
the matrix. These tests pin the cases where a shortcut could change the result.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
from sqlalchemy import select

from kwhub.core.intervals import ChannelSeries, DayBlock
from kwhub.core.quality import Quality
from kwhub.core.timeline import Span
from kwhub.hub.store import Database
from kwhub.hub.store.tables import interval_day_table, utcnow

DAY = 86_400
M = int(Quality.MISSING)
T = interval_day_table.c
D0 = date(2024, 5, 1)
E0 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp())


def _rows(db: Database, cid: str) -> list[tuple]:
    with db.read_connection() as conn:
        return [tuple(r) for r in conn.execute(
            select(T.day, T.version, T.is_current, T.n_values, T.rule_names, T.source, T.layer)
            .where(T.channel_id == cid).order_by(T.layer, T.day, T.version)).all()]


def _full_days(cid: str, first: int, n_days: int, seed: int, **kw: object) -> ChannelSeries:
    n = n_days * 96
    starts = E0 + first * DAY + 900 * np.arange(n, dtype=np.int64)
    values = np.random.default_rng(seed).uniform(0, 10, n)
    return ChannelSeries(cid, 15, starts, values, np.zeros(n, np.uint8), **kw)  # type: ignore[arg-type]


def test_first_write_of_new_channels_and_rewrite(db: Database) -> None:
    batch = [_full_days("a", 0, 3, 1), _full_days("b", 1, 2, 2)]
    rep = db.intervals.write_series(batch, source="x")
    assert (rep.new_days, rep.changed_days, rep.unchanged_days) == (5, 0, 0)
    assert _rows(db, "a") == [(D0 + timedelta(days=i), 1, True, 96, "[]", "x", "raw") for i in range(3)]
    rep = db.intervals.write_series(batch, source="x")
    assert (rep.new_days, rep.changed_days, rep.unchanged_days) == (0, 0, 5)
    # a new range of an existing channel: looked up, nothing found, all new
    rep = db.intervals.write_series([_full_days("a", 10, 2, 3)], source="x")
    assert (rep.new_days, rep.changed_days, rep.unchanged_days) == (2, 0, 0)


def test_created_at_is_stored_as_sqlalchemy_writes_it(db: Database) -> None:
    before = utcnow().replace(microsecond=0)
    db.intervals.write_series([_full_days("a", 0, 1, 1)])
    with db.read_connection() as conn:
        created = conn.execute(select(T.created_at)).scalar_one()
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    assert before <= created <= utcnow()
    if db.dialect == "sqlite":
        with db.read_connection() as conn:
            raw = conn.exec_driver_sql("SELECT created_at, day, is_current, layer FROM interval_day").one()
        assert raw[0] == created.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        assert tuple(raw[1:]) == ("2024-05-01", 1, "raw")


def test_partial_and_full_days_merge_against_stored_days(db: Database) -> None:
    db.intervals.write_series([_full_days("a", 0, 3, 1)])
    before = db.intervals.read_matrix(["a"], Span(datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 4, tzinfo=UTC)),
                                      15, layer="raw").values[0]
    # day 0 fully replaced, day 1 half replaced (from noon), day 2 untouched, day 3 new
    starts = E0 + DAY // 2 * 0 + 900 * np.arange(96 + 48, dtype=np.int64)
    starts = np.concatenate([starts[:96], E0 + DAY + DAY // 2 + 900 * np.arange(48), E0 + 3 * DAY + 900 * np.arange(10)])
    values = np.arange(len(starts), dtype=np.float64) + 1000.0
    rep = db.intervals.write_series([ChannelSeries("a", 15, starts, values, np.ones(len(starts), np.uint8))])
    assert (rep.new_days, rep.changed_days, rep.unchanged_days) == (1, 2, 0)
    assert sorted(rep.stale) == [("a", D0), ("a", D0 + timedelta(days=1))]
    m = db.intervals.read_matrix(["a"], Span(datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 5, tzinfo=UTC)),
                                 15, layer="raw")
    v, q = m.values[0], m.quality[0]
    np.testing.assert_array_equal(v[:96], values[:96])
    np.testing.assert_array_equal(v[96:144], before[96:144])  # kept from the stored day
    np.testing.assert_array_equal(v[144:192], values[96:144])
    np.testing.assert_array_equal(v[192:288], before[192:288])
    np.testing.assert_array_equal(v[288:298], values[144:])
    assert np.isnan(v[298:]).all() and (q[298:] == M).all()
    assert (q[:96] == 1).all() and (q[96:144] == 0).all() and (q[144:192] == 1).all()
    assert [r[:4] for r in _rows(db, "a")] == [
        (D0, 1, False, 96), (D0, 2, True, 96), (D0 + timedelta(days=1), 1, False, 96),
        (D0 + timedelta(days=1), 2, True, 96), (D0 + timedelta(days=2), 1, True, 96),
        (D0 + timedelta(days=3), 1, True, 10)]


def test_merge_rule_names_follow_batch_then_stored_days_in_day_order(db: Database) -> None:
    def day_block(day: date, ids: list[int], names: tuple[str, ...]) -> DayBlock:
        rule_ids = np.array((ids * 96)[:96], dtype=np.uint8)
        return DayBlock(channel_id="a", day=day, interval_minutes=15, values=np.arange(96.0),
                        quality=np.zeros(96, np.uint8), rule_ids=rule_ids, rule_names=names, layer="raw")

    d1 = D0 + timedelta(days=1)
    db.intervals.write_blocks([day_block(D0, [1, 2], ("y", "x"))], layer="raw")
    db.intervals.write_blocks([day_block(d1, [1, 2], ("x", "y"))], layer="raw")
    assert [json.loads(r[4]) for r in _rows(db, "a")] == [["y", "x"], ["x", "y"]]
    # day 0 fully given again (no rules), day 1 only its first slot: its kept slots keep
    # rules x and y, renumbered in the order the stored days bring them (y first)
    starts = np.concatenate([E0 + 900 * np.arange(96), [E0 + DAY]]).astype(np.int64)
    rep = db.intervals.write_series([ChannelSeries("a", 15, starts, np.arange(97.0), np.zeros(97, np.uint8))])
    assert (rep.changed_days, rep.unchanged_days) == (2, 0)
    blocks = db.intervals.read_blocks("a", D0, d1, layer="raw")
    assert blocks[0].rule_ids is None or not blocks[0].rule_ids.any()
    assert blocks[1].rule_names == ("y", "x") and blocks[1].version == 2
    assert int(blocks[1].rule_ids[0]) == 0 and int(blocks[1].rule_ids[1]) == 1 and int(blocks[1].rule_ids[2]) == 2


def test_sparse_days_and_mixed_new_and_changed_rows(db: Database) -> None:
    far = [0, 40, 400]  # far apart: looked up by an IN list, not a range
    batch = [ChannelSeries("a", 15, np.concatenate([E0 + d * DAY + 900 * np.arange(96) for d in far]).astype(np.int64),
                           np.ones(288), np.zeros(288, np.uint8))]
    db.intervals.write_series(batch)
    again = [ChannelSeries("a", 15, np.concatenate([E0 + d * DAY + 900 * np.arange(96) for d in [0, 1, 40, 401]])
                           .astype(np.int64), np.full(384, 2.0), np.zeros(384, np.uint8))]
    rep = db.intervals.write_series(again)
    assert (rep.new_days, rep.changed_days, rep.unchanged_days) == (2, 2, 0)
    rows = _rows(db, "a")
    assert [(r[0] - D0).days for r in rows if r[2]] == [0, 1, 40, 400, 401]
    assert [(r[0] - D0).days for r in rows if not r[2]] == [0, 40]
    assert {r[1] for r in rows if r[2] and (r[0] - D0).days in (0, 40)} == {2}


def test_write_on_a_caller_connection_is_one_transaction(db: Database) -> None:
    with db.engine.connect() as conn:
        db.intervals.write_series([_full_days("a", 0, 2, 1)], conn=conn)
        conn.rollback()
    assert db.intervals.count_rows() == 0
    with db.write_transaction() as conn:
        db.intervals.write_series([_full_days("a", 0, 2, 1)], conn=conn)
        db.intervals.write_series([_full_days("a", 1, 2, 2)], conn=conn)
    assert db.intervals.count_rows() == 4


def test_read_matrix_gaps_missing_channels_and_partial_span(db: Database) -> None:
    db.intervals.write_series([_full_days("a", 0, 1, 1), _full_days("a", 2, 1, 2), _full_days("c", 1, 1, 3)])
    span = Span(datetime(2024, 5, 1, 6, tzinfo=UTC), datetime(2024, 5, 3, 12, tzinfo=UTC))
    m = db.intervals.read_matrix(["c", "b", "a"], span, 15, layer="raw")
    a = _full_days("a", 0, 1, 1).values
    a2 = _full_days("a", 2, 1, 2).values
    c = _full_days("c", 1, 1, 3).values
    assert m.values.shape == (3, 54 * 4)
    np.testing.assert_array_equal(m.values[2, :72], a[24:])
    assert np.isnan(m.values[2, 72:168]).all() and (m.quality[2, 72:168] == M).all()
    np.testing.assert_array_equal(m.values[2, 168:], a2[:48])
    assert np.isnan(m.values[1]).all() and (m.quality[1] == M).all()
    np.testing.assert_array_equal(m.values[0, 72:168], c)
    assert set(m.day_hashes) == {("a", D0), ("a", D0 + timedelta(days=2)), ("c", D0 + timedelta(days=1))}
    hourly = db.intervals.read_matrix(["a"], span, 60, layer="raw")
    np.testing.assert_allclose(hourly.values[0, :18], a[24:].reshape(18, 4).sum(axis=1))


def test_binary_copy_types_match_the_postgresql_table(db: Database) -> None:
    """The PostgreSQL bulk insert sends binary COPY rows typed as ``COPY_TYPES``: they must be the table's types."""
    from sqlalchemy import text

    from kwhub.hub.store.day_sql import COPY_TYPES, INSERT_COLUMNS

    if db.dialect != "postgresql":
        assert db.dialect == "sqlite"  # SQLite takes executemany; nothing to match
        return
    with db.engine.connect() as conn:
        types = dict(conn.execute(text("SELECT column_name, udt_name FROM information_schema.columns "
                                       "WHERE table_name = 'interval_day'")).all())
    assert [types[c] for c in INSERT_COLUMNS] == list(COPY_TYPES)


def test_joined_read_falls_back_to_day_by_day_for_two_current_versions(sqlite_db: Database, monkeypatch) -> None:  # noqa: ANN001
    """A day with two current versions (a broken store) is not read from the joined row: the
    channel is read day by day, as the row-per-day read does."""
    import sqlite3

    from kwhub.hub.store.matrix_read import DayGrid

    db = sqlite_db
    db.intervals.write_series([_full_days("a", 0, 3, 1), _full_days("b", 0, 3, 2)])
    db.intervals.write_series([_full_days("a", 1, 1, 3)])  # version 2 of a's day 1
    con = sqlite3.connect(db.url.removeprefix("sqlite:///"))
    with con:
        con.execute("UPDATE interval_day SET is_current = 1 WHERE channel_id = 'a'")
    con.close()
    took: dict[str, bool] = {}
    place_joined = DayGrid.place_joined

    def spy(self, ci, cid, row, hashes):  # noqa: ANN001, ANN202
        took[cid] = place_joined(self, ci, cid, row, hashes)
        return took[cid]

    monkeypatch.setattr(DayGrid, "place_joined", spy)
    span = Span(datetime(2024, 5, 1, 6, tzinfo=UTC), datetime(2024, 5, 3, 12, tzinfo=UTC))
    reads = {}
    for joined in (True, False):
        db.intervals.joined_reads = joined
        reads[joined] = db.intervals.read_matrix(["a", "b"], span, 15, layer="raw")
    assert took == {"a": False, "b": True}
    np.testing.assert_array_equal(reads[True].values, reads[False].values)
    np.testing.assert_array_equal(reads[True].quality, reads[False].quality)
    assert dict(reads[True].day_hashes) == dict(reads[False].day_hashes)


def _plain_sqlite_read(path: str, ids: list[str], first_day: int, n_int: int, off: int) -> tuple[np.ndarray, np.ndarray]:
    """The expected 15-minute matrix from the current rows, with sqlite3 and numpy alone."""
    import sqlite3

    values = np.full((len(ids), n_int), np.nan)
    quality = np.full((len(ids), n_int), M, dtype=np.uint8)
    con = sqlite3.connect(path)
    try:
        for i, cid in enumerate(ids):
            for day, v, q in con.execute('SELECT day, "values", quality FROM interval_day WHERE channel_id = ? '
                                         "AND layer = 'raw' AND is_current = 1", (cid,)):
                g0 = (date.fromisoformat(day) - D0).days * 96 - off - first_day * 96
                for k, (x, y) in enumerate(zip(np.frombuffer(v, "<f8"), np.frombuffer(q, np.uint8), strict=True)):
                    if 0 <= g0 + k < n_int:
                        values[i, g0 + k], quality[i, g0 + k] = x, y
    finally:
        con.close()
    return values, quality


def _joined_equals_day_by_day(db: Database, ids: list[str], span: Span) -> dict[bool, tuple]:
    """The raw layer of ``ids`` over ``span`` read at 15 and 60 minutes, joined and day by day
    (``{joined: (15-minute matrix, 60-minute matrix)}``); both reads give the same matrices and hashes."""
    reads = {}
    for joined in (True, False):
        db.intervals.joined_reads = joined
        reads[joined] = (db.intervals.read_matrix(ids, span, 15, layer="raw"),
                         db.intervals.read_matrix(ids, span, 60, layer="raw"))
    for fast, slow in zip(reads[True], reads[False], strict=True):
        np.testing.assert_array_equal(fast.values, slow.values)
        np.testing.assert_array_equal(fast.quality, slow.quality)
        assert dict(fast.day_hashes) == dict(slow.day_hashes)
    return reads


def test_joined_read_equals_the_day_by_day_read_and_a_plain_sqlite_read(sqlite_db: Database, monkeypatch) -> None:  # noqa: ANN001
    """SQLite reads each channel's days as one joined row; channels with gaps, restated days,
    finer intervals or partly missing days give the same matrix and hashes as the row-per-day read
    (a channel with gaps between its days is copied run by run from its joined row)."""
    db = sqlite_db
    half = _full_days("d", 0, 2, 7)
    keep = np.ones(len(half), bool)
    keep[100:150] = False  # part of a day never arrived
    fine_starts = E0 + 300 * np.arange(3 * 288, dtype=np.int64)
    db.intervals.write_series([
        _full_days("a", 0, 5, 1), _full_days("b", 0, 2, 2), _full_days("b", 3, 1, 3),
        ChannelSeries("c", 5, fine_starts, np.arange(3 * 288, dtype=float), np.zeros(3 * 288, np.uint8)),
        ChannelSeries("d", 15, half.starts[keep], half.values[keep], half.quality[keep]),
        _full_days("e", 0, 3, 4)])
    db.intervals.write_series([_full_days("e", 1, 1, 5)])  # day 1 of e restated (version 2)
    span = Span(datetime(2024, 5, 1, 6, tzinfo=UTC), datetime(2024, 5, 5, 12, tzinfo=UTC))
    ids = ["a", "b", "c", "d", "e", "f"]
    from kwhub.hub.store.matrix_read import DayGrid

    took: dict[str, bool] = {}
    place_joined = DayGrid.place_joined

    def spy(self, ci, cid, row, hashes):  # noqa: ANN001, ANN202
        took[cid] = place_joined(self, ci, cid, row, hashes)
        return took[cid]

    monkeypatch.setattr(DayGrid, "place_joined", spy)
    reads = _joined_equals_day_by_day(db, ids, span)
    assert took == {"a": True, "b": True, "c": True, "d": True, "e": True}  # b has a gap: copied in two runs
    m = reads[True][0]
    path = db.url.removeprefix("sqlite:///")
    values, quality = _plain_sqlite_read(path, ["a", "b", "d", "e", "f"], 0, m.values.shape[1], 24)
    rows = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(m.values[rows], values)
    np.testing.assert_array_equal(m.quality[rows], quality)
    np.testing.assert_array_equal(m.values[2, :48], np.arange(3 * 288, dtype=float).reshape(-1, 3).sum(axis=1)[24:72])


def test_joined_read_equals_the_day_by_day_read_on_both_stores(db: Database, monkeypatch) -> None:  # noqa: ANN001
    """Both stores read each channel's days as one joined row (PostgreSQL: one row per channel of an
    array parameter): gaps, a restated day, finer intervals, partly missing days and a channel without
    days give the same matrix and hashes as the row-per-day read; a channel the joined row cannot
    place is read row by row; the joined read notes the versions it saw."""
    from kwhub.hub.store.matrix_read import DayGrid

    half = _full_days("d", 0, 2, 7)
    keep = np.ones(len(half), bool)
    keep[100:150] = False
    fine_starts = E0 + 300 * np.arange(3 * 288, dtype=np.int64)
    db.intervals.write_series([
        _full_days("a", 0, 5, 1), _full_days("b", 0, 2, 2), _full_days("b", 3, 1, 3),
        ChannelSeries("c", 5, fine_starts, np.arange(3 * 288, dtype=float), np.zeros(3 * 288, np.uint8)),
        ChannelSeries("d", 15, half.starts[keep], half.values[keep], half.quality[keep]),
        _full_days("e", 0, 3, 4), _full_days("g", 0, 3, 6)])
    db.intervals.write_series([_full_days("e", 1, 1, 5)])  # version 2 of e's day 1
    place_joined = DayGrid.place_joined
    took: dict[str, bool] = {}

    def refuse_g(self, ci, cid, row, hashes):  # noqa: ANN001, ANN202
        took[cid] = cid != "g" and place_joined(self, ci, cid, row, hashes)
        return took[cid]

    monkeypatch.setattr(DayGrid, "place_joined", refuse_g)
    span = Span(datetime(2024, 5, 1, 6, tzinfo=UTC), datetime(2024, 5, 5, 12, tzinfo=UTC))
    ids = ["a", "b", "c", "d", "e", "f", "g"]
    reads = _joined_equals_day_by_day(db, ids, span)
    assert took == {"a": True, "b": True, "c": True, "d": True, "e": True, "g": False}  # f: no days
    assert not np.isnan(reads[True][0].values[ids.index("g")][:48]).any()  # g read row by row
    assert reads[True][0].day_hashes.restated_channels() is None  # g's versions were not seen
    db.intervals.joined_reads = True
    monkeypatch.setattr(DayGrid, "place_joined", place_joined)
    assert db.intervals.read_matrix(ids, span, 15, layer="raw").day_hashes.restated_channels() == {"e"}


def test_maintain_after_a_load_keeps_every_read_equal(db: Database) -> None:
    """The maintenance step after a large load (PostgreSQL: VACUUM (ANALYZE) of the month partitions
    the days fall in; SQLite: ANALYZE of the interval table) runs on both stores and changes no read."""
    first = date(2024, 5, 30)  # the days run from May into June: two month partitions on PostgreSQL
    series = [_full_days(f"c{k}", 29, 4, k) for k in range(5)]
    db.intervals.write_series(series, layer="raw")
    db.intervals.write_series([_full_days("c1", 30, 1, 99)], layer="raw")  # a restated day
    span = Span(datetime(2024, 5, 30, 6, tzinfo=UTC), datetime(2024, 6, 2, 18, tzinfo=UTC))
    ids = [f"c{k}" for k in range(6)]  # c5: no days
    before = db.intervals.read_matrix(ids, span, 15, layer="raw")
    report = db.intervals.maintain(first, first + timedelta(days=3))
    assert report.skipped == [] and report.seconds >= 0
    after = db.intervals.read_matrix(ids, span, 15, layer="raw")
    np.testing.assert_array_equal(before.values, after.values)
    np.testing.assert_array_equal(before.quality, after.quality)
    assert dict(before.day_hashes) == dict(after.day_hashes)
    assert after.day_hashes.restated_channels() == {"c1"}
    with db.read_connection() as conn:
        if db.dialect == "postgresql":
            assert report.tables == ["interval_day_2024_05", "interval_day_2024_06"]
            seen = dict(conn.exec_driver_sql(
                "SELECT relname, last_vacuum IS NOT NULL AND last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE relname IN ('interval_day_2024_05', 'interval_day_2024_06')").all())
            assert seen == {"interval_day_2024_05": True, "interval_day_2024_06": True}
        else:
            assert report.tables == ["interval_day"]
            assert conn.exec_driver_sql("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'interval_day'").scalar() > 0
    assert db.intervals.maintain().tables  # every day: the same tables


def test_postgresql_joined_row_out_of_day_order_is_placed_in_order() -> None:
    """A PostgreSQL joined row whose days come out of day order (the aggregates have no ORDER BY)
    is put in day order before it is copied: the same matrix and digests as the row in order; a day
    given twice is refused (the channel is then read row by row)."""
    from kwhub.core.intervals import DayHashes
    from kwhub.hub.store.matrix_read import DayGrid

    days = np.array([19874, 19875, 19877, 19878], dtype=np.int64)  # a gap after the second day
    rng = np.random.default_rng(3)
    vals = rng.uniform(0, 9, (4, 96))
    qual = rng.integers(0, 3, (4, 96)).astype(np.uint8)
    digests = ["h0", "h1", "h2", "h3"]

    def row(order: list[int]) -> tuple:
        return ("a", len(order), 15, 15, vals[order].tobytes(), qual[order].tobytes(), ",".join(digests[i] for i in order),
                days[order].astype(">i4").tobytes(), 1)

    def placed(r: tuple) -> tuple[bool, DayGrid, DayHashes]:
        grid, hashes = DayGrid(1, 5 * 96, 5, 96, 19874, 0, 15), DayHashes()
        done = grid.place_joined(0, "a", r, hashes)
        grid.mark_missing()
        return done, grid, hashes

    ok, want, want_h = placed(row([0, 1, 2, 3]))
    assert ok
    ok, got, got_h = placed(row([2, 0, 3, 1]))
    assert ok
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(got.quality, want.quality)
    np.testing.assert_array_equal(want.values[0, 2 * 96:3 * 96], np.nan)  # the gap
    np.testing.assert_array_equal(want.values[0, 3 * 96:], vals[2:].ravel())
    assert dict(got_h) == dict(want_h)
    assert not placed(row([0, 1, 1, 2]))[0]
