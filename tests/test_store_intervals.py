"""The interval store on SQLite and PostgreSQL: exact round trips, idempotent and atomic
writes, versioned restatements, dense matrices across DST, summaries.

Expectations are computed independently from the input arrays with plain numpy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from kwhub.core.intervals import ChannelSeries, DayBlock, IntervalDataError, split_by_day
from kwhub.core.quality import Quality
from kwhub.core.timeline import Span, billing_period, intervals_in_local_day
from kwhub.hub.store import Database

DAY = 86_400
M = int(Quality.MISSING)


def _epoch(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(datetime(y, m, d, h, mi, tzinfo=UTC).timestamp())


def _series(cid: str, start: int, n: int, minutes: int = 15, seed: int = 0,
            quality: np.ndarray | None = None) -> ChannelSeries:
    rng = np.random.default_rng(seed)
    values = rng.normal(500.0, 300.0, n)  # negative, fractional, large: exactness matters
    values[::17] = rng.uniform(-1e-9, 1e-9, len(values[::17]))
    q = quality if quality is not None else rng.choice([0, 1, 2, 3], n, p=[0.85, 0.05, 0.05, 0.05]).astype(np.uint8)
    return ChannelSeries(cid, minutes, start + minutes * 60 * np.arange(n, dtype=np.int64), values, q)


def _state(db: Database) -> list[tuple]:
    """Every stored day row and stale mark (for "nothing changed" checks)."""
    from sqlalchemy import select

    from kwhub.hub.store.tables import interval_day_table, stale_mark_table

    t = interval_day_table.c
    with db.read_connection() as conn:
        rows = conn.execute(select(t.channel_id, t.day, t.layer, t.version, t.content_hash, t.is_current)
                            .order_by(t.channel_id, t.day, t.layer, t.version)).all()
        marks = conn.execute(select(stale_mark_table.c.channel_id, stale_mark_table.c.day)).all()
    return [tuple(r) for r in rows] + [("mark",) + tuple(m) for m in marks]


def test_round_trip_is_exact(db: Database) -> None:
    start = _epoch(2024, 3, 9, 13, 45)  # mid-day start, partial first and last days
    a = _series("a", start, 96 * 3 + 7, seed=1)
    b = _series("b", start - 3600, 12 * 40, minutes=5, seed=2)
    rep = db.intervals.write_series([a, b], source="unit")
    assert rep.new_days == 4 + 3 and rep.changed_days == 0 and rep.intervals == len(a) + len(b)

    span = Span(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + 900 * len(a), UTC))
    back = db.intervals.read_series("a", span)
    assert back.interval_minutes == 15
    np.testing.assert_array_equal(back.starts, a.starts)
    assert back.values.tobytes() == a.values.tobytes()  # bit-exact
    np.testing.assert_array_equal(back.quality, a.quality)

    blocks = db.intervals.read_blocks("b", date(2024, 3, 8), date(2024, 3, 12))
    expected = {blk.day: blk for blk in split_by_day(b)}
    assert [blk.day for blk in blocks] == sorted(expected)
    for blk in blocks:
        exp = expected[blk.day]
        np.testing.assert_array_equal(blk.values, exp.values)
        np.testing.assert_array_equal(blk.quality, exp.quality)
        assert blk.version == 1 and blk.layer == "raw" and blk.interval_minutes == 5
        # the stored hash is the DayBlock hash of the stored content
        assert db.intervals.day_hashes(["b"], blk.day, blk.day, layer="raw")[("b", blk.day)] == (
            1, exp.content_hash())


def test_same_batch_again_shuffled_with_duplicates_changes_nothing(db: Database) -> None:
    a = _series("a", _epoch(2024, 6, 1), 96 * 5, seed=3)
    b = _series("b", _epoch(2024, 6, 2, 6), 96 * 2, seed=4)
    first = db.intervals.write_series([a, b])
    assert first.new_days == 5 + 3
    before = _state(db)

    rng = np.random.default_rng(7)
    parts = []
    for s in (a, b):
        idx = rng.permutation(len(s))
        dup = rng.choice(len(s), len(s) // 4)
        order = np.concatenate([idx, dup])
        parts.append(ChannelSeries(s.channel_id, 15, s.starts[order], s.values[order], s.quality[order]))
    # the same channel split over two series of one batch, in reverse order
    half = len(parts[0]) // 2
    p0 = parts[0]
    split = [ChannelSeries("a", 15, p0.starts[half:], p0.values[half:], p0.quality[half:]),
             parts[1],
             ChannelSeries("a", 15, p0.starts[:half], p0.values[:half], p0.quality[:half])]
    again = db.intervals.write_series(split)
    assert (again.new_days, again.changed_days, again.unchanged_days) == (0, 0, 8)
    assert again.stale == []
    assert _state(db) == before


def test_changed_value_makes_version_two_and_keeps_version_one(db: Database) -> None:
    start = _epoch(2024, 1, 10)
    a = _series("a", start, 96 * 2, seed=5)
    db.intervals.write_series([a])
    t0 = datetime.now(UTC) - timedelta(seconds=1)
    # restate one interval on the second day
    fix = ChannelSeries("a", 15, a.starts[100:101], np.array([123.25]), np.array([Quality.EDITED], np.uint8))
    rep = db.intervals.write_series([fix], source="restatement")
    assert (rep.new_days, rep.changed_days, rep.unchanged_days) == (0, 1, 0)
    assert rep.stale == [("a", date(2024, 1, 11))]

    hist = db.intervals.history("a", date(2024, 1, 11))
    assert [h.version for h in hist] == [1, 2]
    assert hist[0].values[4] == a.values[100] and hist[1].values[4] == 123.25
    assert hist[1].quality[4] == Quality.EDITED
    # the merge kept every other slot of the stored day
    np.testing.assert_array_equal(np.delete(hist[1].values, 4), np.delete(a.values[96:], 4))

    v1 = db.intervals.read_blocks("a", date(2024, 1, 10), date(2024, 1, 11), version=1)
    assert [b.day for b in v1] == [date(2024, 1, 10), date(2024, 1, 11)]
    assert v1[1].values[4] == a.values[100]
    cur = db.intervals.read_blocks("a", date(2024, 1, 10), date(2024, 1, 11))
    assert [b.version for b in cur] == [1, 2]
    assert cur[1].values[4] == 123.25

    marks = db.intervals.stale_marks()
    assert [(m.channel_id, m.day, m.version) for m in marks] == [("a", date(2024, 1, 11), 2)]
    assert marks[0].created_at >= t0
    assert db.intervals.stale_marks(since=datetime.now(UTC) + timedelta(hours=1)) == []
    # writing the restatement again is a no-op
    assert db.intervals.write_series([fix]).unchanged_days == 1
    assert len(db.intervals.history("a", date(2024, 1, 11))) == 2


def test_missing_and_nan_never_overwrite_stored_values(db: Database) -> None:
    start = _epoch(2024, 2, 1)
    a = _series("a", start, 96, quality=np.zeros(96, np.uint8), seed=6)
    db.intervals.write_series([a])
    gap = ChannelSeries("a", 15, a.starts[:10], np.r_[np.full(5, np.nan), np.arange(5.0)],
                        np.r_[np.zeros(5, np.uint8), np.full(5, M, np.uint8)])
    rep = db.intervals.write_series([gap])
    assert rep.unchanged_days == 1
    (blk,) = db.intervals.read_blocks("a", date(2024, 2, 1), date(2024, 2, 1))
    np.testing.assert_array_equal(blk.values, a.values)


def test_nan_with_valid_quality_is_stored_as_missing(db: Database) -> None:
    s = ChannelSeries("a", 60, _epoch(2024, 2, 1) + 3600 * np.arange(3), [1.0, np.nan, 3.0], [0, 0, 0])
    db.intervals.write_series([s])
    (blk,) = db.intervals.read_blocks("a", date(2024, 2, 1), date(2024, 2, 1))
    assert blk.quality[:3].tolist() == [0, M, 0]
    assert blk.values[0] == 1.0 and np.isnan(blk.values[1]) and blk.values[2] == 3.0
    assert (blk.quality[3:] == M).all()


def test_invalid_last_series_leaves_the_store_unchanged(db: Database) -> None:
    db.intervals.write_series([_series("a", _epoch(2024, 4, 1), 96, seed=8)])
    before = _state(db)
    good_a = _series("a", _epoch(2024, 4, 1), 96 * 3, seed=9)  # would change day 1, add days 2-3
    good_b = _series("b", _epoch(2024, 4, 1), 96, seed=10)
    bad = _series("c", _epoch(2024, 4, 1) + 60, 10, seed=11)  # not on the 15-minute grid
    with pytest.raises(IntervalDataError) as exc:
        db.intervals.write_series([good_a, good_b, bad], source="feed.csv")
    assert exc.value.field == "start" and exc.value.source == "feed.csv" and "c" in str(exc.value)
    assert _state(db) == before


def test_interval_length_must_match_the_stored_days(db: Database) -> None:
    db.intervals.write_series([_series("a", _epoch(2024, 5, 1), 96, seed=12)])
    before = _state(db)
    other = _series("b", _epoch(2024, 5, 1), 96, seed=13)
    five = _series("a", _epoch(2024, 5, 3), 288, minutes=5, seed=14)  # a different day, still wrong
    with pytest.raises(IntervalDataError) as exc:
        db.intervals.write_series([other, five])
    assert exc.value.field == "interval_minutes" and exc.value.source == "a"
    assert _state(db) == before
    with pytest.raises(IntervalDataError) as exc2:
        db.intervals.write_series([ChannelSeries("d", 7, [0], [1.0], [0])])
    assert exc2.value.field == "interval_minutes" and exc2.value.source == "d"


def test_non_finite_values_and_bad_quality_are_rejected(db: Database) -> None:
    base = _epoch(2024, 5, 1)
    with pytest.raises(IntervalDataError) as exc:
        db.intervals.write_series([ChannelSeries("a", 15, [base, base + 900], [1.0, np.inf], [0, 0])])
    assert exc.value.field == "value"
    with pytest.raises(IntervalDataError) as exc:
        db.intervals.write_series([ChannelSeries("a", 15, [base], [1.0], [9])])
    assert exc.value.field == "quality"
    assert db.intervals.count_rows() == 0


def test_read_matrix_across_a_dst_month(db: Database) -> None:
    tz = "America/New_York"
    per = billing_period("2024-11", tz)  # fall back on Nov 3: one 25-hour local day
    expected_n = sum(intervals_in_local_day(d, tz, 15) for d in per.local_days())
    assert expected_n == 30 * 96 + 4
    # data covers a little more than the month on both sides
    s0 = per.span.start_epoch - 86_400
    n_all = (per.span.end_epoch + 86_400 - s0) // 900
    a = _series("a", s0, n_all, seed=15)
    b_keep = np.arange(n_all) % 3 != 0  # channel b has gaps
    b = _series("b", s0, n_all, seed=16)
    b = ChannelSeries("b", 15, b.starts[b_keep], b.values[b_keep], b.quality[b_keep])
    db.intervals.write_series([a, b], layer="validated")

    m = db.intervals.read_matrix(["b", "nothing", "a"], per.span, 15)
    assert m.n_intervals == expected_n
    assert m.values.shape == (3, expected_n)
    assert m.start_epoch == per.span.start_epoch
    np.testing.assert_array_equal(m.starts()[[0, -1]], [per.span.start_epoch, per.span.end_epoch - 900])
    first = (per.span.start_epoch - s0) // 900
    np.testing.assert_array_equal(m.row("a"), a.values[first:first + expected_n])
    np.testing.assert_array_equal(m.quality[2], a.quality[first:first + expected_n])
    exp_b = np.full(n_all, np.nan)
    exp_b[b_keep] = b.values
    np.testing.assert_array_equal(m.row("b"), exp_b[first:first + expected_n])
    assert (m.quality[0][np.isnan(m.row("b"))] == M).all()
    assert np.isnan(m.row("nothing")).all() and (m.quality[1] == M).all()
    # hashes of every UTC day read, equal to the stored blocks' own hashes
    days = per.span.utc_days()
    assert set(m.day_hashes) == {(c, d) for c in ("a", "b") for d in days}
    blocks = db.intervals.read_blocks("a", days[0], days[-1], layer="validated")
    assert {b.day: b.content_hash() for b in blocks} == {d: h for (c, d), h in m.day_hashes.items() if c == "a"}
    # the raw layer holds nothing
    assert np.isnan(db.intervals.read_matrix(["a"], per.span, 15, layer="raw").values).all()


def test_read_matrix_sums_finer_intervals(db: Database) -> None:
    start = _epoch(2024, 7, 1)
    q = np.zeros(288 * 2, np.uint8)
    q[17] = M  # one missing 5-minute part makes its quarter-hour missing
    q[19] = int(Quality.ESTIMATED)
    five = _series("f", start, 288 * 2, minutes=5, quality=q, seed=17)
    db.intervals.write_series([five], layer="validated")
    span = Span(datetime.fromtimestamp(start + 3600, UTC), datetime.fromtimestamp(start + DAY + 7200, UTC))
    m = db.intervals.read_matrix(["f"], span, 15)
    vals = np.where(q == M, np.nan, five.values).reshape(-1, 3)
    exp = vals.sum(axis=1)[4:4 + m.n_intervals]
    np.testing.assert_allclose(m.values[0], exp, rtol=0, atol=1e-9)
    assert m.n_intervals == (DAY + 3600) // 900
    assert m.quality[0][1] == M and m.quality[0][2] == int(Quality.ESTIMATED) and np.isnan(m.values[0][1])
    fq = five.quality.reshape(-1, 3).max(axis=1)
    np.testing.assert_array_equal(m.quality[0], fq[4:4 + m.n_intervals])
    db.intervals.write_series([_series("g", start, 96, seed=18)], layer="validated")
    with pytest.raises(IntervalDataError, match="cannot be read as 5-minute"):
        db.intervals.read_matrix(["g"], span, 5)
    with pytest.raises(IntervalDataError):
        db.intervals.read_matrix(["f"], Span(span.start + timedelta(minutes=5), span.end), 15)


def test_write_blocks_replaces_content_with_canonical_rules(db: Database) -> None:
    start = _epoch(2024, 8, 1)
    raw = _series("a", start, 96 * 2, quality=np.zeros(192, np.uint8), seed=19)
    db.intervals.write_series([raw])
    blocks = list(split_by_day(raw))
    names = ("spike", "gap_fill", "unused_rule")
    for b in blocks:
        b.rule_ids = np.zeros(96, np.uint8)
        b.rule_names = names
    blocks[0].values[3] = 42.0
    blocks[0].quality[3] = Quality.ESTIMATED
    blocks[0].rule_ids[3] = 2
    blocks[1].quality[7] = Quality.SUSPECT
    blocks[1].rule_ids[7] = 1
    rep = db.intervals.write_blocks(blocks, layer="validated", source="vee")
    assert rep.new_days == 2
    stored = db.intervals.read_blocks("a", date(2024, 8, 1), date(2024, 8, 2), layer="validated")
    assert stored[0].rule_names == ("gap_fill",) and stored[0].rule_ids[3] == 1
    assert stored[1].rule_names == ("spike",) and stored[1].rule_ids[7] == 1
    assert stored[0].values[3] == 42.0 and stored[1].quality[7] == Quality.SUSPECT
    # same meaning written again with another name list: unchanged
    for b in blocks:
        b.rule_names = ("x", "spike", "gap_fill")
        b.rule_ids = np.where(b.rule_ids > 0, b.rule_ids + 1, 0).astype(np.uint8)
    assert db.intervals.write_blocks(blocks, layer="validated").unchanged_days == 2
    # replacing (not merging): a block that drops the estimate makes a new version
    plain = DayBlock("a", date(2024, 8, 1), 15, raw.values[:96].copy(), np.zeros(96, np.uint8))
    rep = db.intervals.write_blocks([plain], layer="validated")
    assert rep.changed_days == 1 and rep.stale == [("a", date(2024, 8, 1))]
    now = db.intervals.read_blocks("a", date(2024, 8, 1), date(2024, 8, 1), layer="validated")[0]
    assert now.version == 2 and now.rule_ids is None and now.values[3] == raw.values[3]
    # the raw layer is untouched
    assert [b.version for b in db.intervals.read_blocks("a", date(2024, 8, 1), date(2024, 8, 2))] == [1, 1]


def test_write_blocks_inside_a_caller_transaction_rolls_back(db: Database) -> None:
    blk = DayBlock("a", date(2024, 9, 1), 60, np.arange(24.0), np.zeros(24, np.uint8))
    with pytest.raises(RuntimeError):
        with db.write_transaction() as conn:
            db.intervals.write_blocks([blk], conn=conn)
            raise RuntimeError("later step failed")
    assert db.intervals.count_rows() == 0
    with pytest.raises(IntervalDataError) as exc:
        db.intervals.write_blocks([DayBlock("a", date(2024, 9, 1), 60, np.arange(23.0), np.zeros(23, np.uint8))])
    assert exc.value.field == "values"


def test_summary_totals(db: Database) -> None:
    start = _epoch(2024, 10, 5, 2)
    q = np.zeros(96 * 3, np.uint8)
    q[10:20] = M
    a = _series("a", start, 96 * 3, quality=q, seed=20)
    b = _series("b", start + 7200, 24 * 2, minutes=60, seed=21)
    db.intervals.write_series([a, b])
    # a restatement: the summary follows the current version
    fix = ChannelSeries("a", 15, a.starts[50:52], [1000.0, 2000.0], [0, 0])
    db.intervals.write_series([fix])
    vals = a.values.copy()
    vals[50:52] = [1000.0, 2000.0]
    ok = q != M
    summ = {s.channel_id: s for s in db.intervals.summary()}
    assert set(summ) == {"a", "b"}
    assert summ["a"].intervals == int(ok.sum())
    assert summ["a"].total_kwh == pytest.approx(float(vals[ok].sum()), rel=1e-12)
    assert summ["a"].first_start == datetime.fromtimestamp(start, UTC)
    assert summ["a"].last_end == datetime.fromtimestamp(int(a.starts[-1]) + 900, UTC)
    assert summ["b"].intervals == 48
    assert summ["b"].total_kwh == pytest.approx(float(b.values.sum()), rel=1e-12)
    assert summ["b"].last_end == datetime.fromtimestamp(start + 7200 + 48 * 3600, UTC)
    assert db.intervals.summary(layer="validated") == []


def test_merge_matches_a_plain_model(sqlite_db: Database) -> None:
    """Random overlapping writes: the store equals a dict where non-missing new values win."""
    from itertools import count

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base = _epoch(2024, 12, 30, 22)
    n_slots = 4 * 6  # six hours of quarter-hours across a UTC midnight
    write = st.lists(st.tuples(st.integers(0, n_slots - 1), st.integers(-5, 5), st.sampled_from([0, 1, 3, M])),
                     min_size=1, max_size=30)
    ids = count()

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(write, min_size=1, max_size=4))
    def check(batches: list[list[tuple[int, int, int]]]) -> None:
        cid = f"h{next(ids)}"
        model: dict[int, tuple[float, int]] = {}
        stored: set[int] = set()
        restated = 0
        for batch in batches:
            slots = np.array([b[0] for b in batch])
            vals = np.array([float(b[1]) for b in batch])
            qual = np.array([b[2] for b in batch], np.uint8)
            before = dict(model)
            for s, v, q in batch:
                if q != M:
                    model[s] = (v, q)
            rep = sqlite_db.intervals.write_series([ChannelSeries(cid, 15, base + 900 * slots, vals, qual)])
            touched = {(base + 900 * int(s)) // DAY for s in slots}
            new = touched - stored
            def day_slots(d: int) -> list[int]:
                return [s for s in range(n_slots) if (base + 900 * s) // DAY == d]

            given_slots = {b[0] for b in batch if b[2] != M}
            differs = {d for d in touched & stored if any(model.get(s) != before.get(s) for s in day_slots(d))}
            # late values only for slots that were missing fill the day in place (no new
            # version), unless the batch gives the whole day, which always counts as a restatement
            filled = {d for d in differs
                      if not all(s in given_slots for s in day_slots(d))
                      and all(before.get(s) is None or before[s] == model[s] for s in day_slots(d))}
            changed = differs - filled
            assert (rep.new_days, rep.changed_days, rep.filled_days, rep.unchanged_days) == (
                len(new), len(changed), len(filled), len(touched) - len(new) - len(differs))
            stored |= touched
            restated += len(differs)
        span = Span(datetime.fromtimestamp(base, UTC), datetime.fromtimestamp(base + 900 * n_slots, UTC))
        m = sqlite_db.intervals.read_matrix([cid], span, 15, layer="raw")
        exp_v = np.full(n_slots, np.nan)
        exp_q = np.full(n_slots, M, np.uint8)
        for s, (v, q) in model.items():
            exp_v[s], exp_q[s] = v, q
        np.testing.assert_array_equal(m.values[0], exp_v)
        np.testing.assert_array_equal(m.quality[0], exp_q)
        assert len([m for m in sqlite_db.intervals.stale_marks() if m.channel_id == cid]) == restated

    check()
