"""The fast ingest/VEE write paths store exactly what the plain ones store.

* ``IntervalStore.write_dense`` writes the same rows (bytes, rule names, content hashes)
  as ``write_blocks`` for the equivalent day blocks, hashes equal ``DayBlock.content_hash``;
* the vectorised per-day rule renumbering equals the straightforward one;
* ``validate_days`` (dense write, raw hashes reused for untouched days, direct event insert)
  stores the same validated rows and events as writing its blocks with ``write_blocks``.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from kwhub.core.intervals import DayBlock, split_by_day
from kwhub.core.quality import Quality
from kwhub.hub.demo.simulator.campus import FaultSpec, simulate
from kwhub.hub.ingest.vee import _jsonable, read_events, validate_days
from kwhub.hub.store.day_batches import canonical_rules
from kwhub.hub.store.tables import interval_day_table

T = interval_day_table.c
T_VALUES = interval_day_table.c["values"]
D0 = date(2024, 5, 1)
M = int(Quality.MISSING)


def _stored(db, cid: str, layer: str) -> list[tuple]:
    with db.read_connection() as conn:
        rows = conn.execute(
            select(T.day, T.version, T.n_values, T_VALUES, T.quality, T.rule_ids, T.rule_names, T.content_hash,
                   T.is_current).where(T.channel_id == cid, T.layer == layer).order_by(T.day, T.version)).all()
    return [tuple(bytes(x) if isinstance(x, memoryview) else x for x in r) for r in rows]


def _blocks(cid: str, n_days: int, seed: int, names: tuple[str, ...] = ("spike", "gap", "flat")) -> list[DayBlock]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_days):
        v = np.round(rng.uniform(0, 10, 96), 3)
        q = np.zeros(96, np.uint8)
        q[rng.random(96) < 0.05] = M
        v[rng.random(96) < 0.03] = np.nan  # NaN without MISSING: canonicalised to MISSING
        q[rng.random(96) < 0.05] = int(Quality.ESTIMATED)
        rule_ids = None
        day_names: tuple[str, ...] = ()
        kind = i % 4
        if kind == 1:  # ids into this day's own (shuffled) names, some unused
            day_names = tuple(rng.permutation(names).tolist())
            rule_ids = np.where(rng.random(96) < 0.2, rng.integers(1, len(day_names) + 1, 96), 0).astype(np.uint8)
        elif kind == 2:  # rule ids all zero
            day_names, rule_ids = names[:1], np.zeros(96, np.uint8)
        out.append(DayBlock(cid, D0 + timedelta(days=i), 15, v, q, rule_ids, day_names, "validated"))
    return out


def _dense_args(blocks: list[DayBlock]):
    """The blocks as dense arrays, rule ids renumbered into first-seen names (as validate_days does)."""
    names: list[str] = []
    rule_ids = np.zeros((len(blocks), 96), np.uint8)
    for i, b in enumerate(blocks):
        if b.rule_ids is None:
            continue
        lut = np.zeros(256, np.uint8)
        for k, n in enumerate(b.rule_names, start=1):
            if n not in names:
                names.append(n)
            lut[k] = names.index(n) + 1
        rule_ids[i] = lut[b.rule_ids]
    days = np.array([b.day for b in blocks], dtype="datetime64[D]")
    return days, np.stack([b.values for b in blocks]), np.stack([b.quality for b in blocks]), rule_ids, names


def test_write_dense_stores_what_write_blocks_stores(db) -> None:
    blocks = _blocks("a", 12, 1)
    rep_b = db.intervals.write_blocks(blocks, layer="validated", source="s")
    blocks_b = [DayBlock("b", b.day, 15, b.values, b.quality, b.rule_ids, b.rule_names, "validated") for b in blocks]
    days, v, q, r, names = _dense_args(blocks_b)
    rep_d = db.intervals.write_dense("b", 15, days, v, q, r, names, layer="validated", source="s")
    assert (rep_b.new_days, rep_b.intervals) == (rep_d.new_days, rep_d.intervals) == (12, 12 * 96)
    a, b = _stored(db, "a", "validated"), _stored(db, "b", "validated")
    assert [x[:7] + x[8:] for x in a] == [x[:7] + x[8:] for x in b]
    # hashes: the content hash of the stored block, by channel
    for cid, rows in (("a", a), ("b", b)):
        stored = db.intervals.read_blocks(cid, D0, D0 + timedelta(days=11), layer="validated")
        assert [s.content_hash() for s in stored] == [row[7] for row in rows]
    # same content again: nothing new, through either path
    rep = db.intervals.write_dense("a", 15, days, v, q, r, names, layer="validated", source="s")
    assert (rep.new_days, rep.changed_days, rep.unchanged_days) == (0, 0, 12)
    # epoch-day numbers, dates and unsorted days with duplicates (the last row wins)
    ep = (days - np.datetime64("1970-01-01", "D")).astype(np.int64)
    order = np.r_[np.arange(12)[::-1], 3]
    v2 = v.copy()
    v2[3] += 1  # the first (overridden) copy of day 3 differs
    vv = np.concatenate([v2[order[:-1]], v[3:4]])
    rep = db.intervals.write_dense("a", 15, ep[order], vv, q[order], r[order], names, layer="validated")
    assert rep.unchanged_days == 12
    rep = db.intervals.write_dense("a", 15, days.tolist(), v, q, None, (), layer="raw")
    assert rep.new_days == 12


def test_write_dense_rejects_bad_input(db) -> None:
    from kwhub.core.intervals import IntervalDataError

    days = np.array(["2024-05-01"], dtype="datetime64[D]")
    with pytest.raises(IntervalDataError):
        db.intervals.write_dense("a", 15, days, np.zeros((1, 95)), np.zeros((1, 95), np.uint8))
    with pytest.raises(IntervalDataError):
        db.intervals.write_dense("a", 15, days, np.full((1, 96), np.inf), np.zeros((1, 96), np.uint8))
    with pytest.raises(IntervalDataError):
        db.intervals.write_dense("a", 15, days, np.zeros((1, 96)), np.full((1, 96), 250, np.uint8))
    with pytest.raises(IntervalDataError):
        db.intervals.write_dense("a", 15, days, np.zeros((1, 96)), np.zeros((1, 96), np.uint8),
                                 np.full((1, 96), 2, np.uint8), ["x"])
    assert db.intervals.count_rows() == 0


def _canonical_reference(rule_ids, names):
    n_days = rule_ids.shape[0]
    used = np.zeros((n_days, len(names) + 1), dtype=bool)
    used[np.repeat(np.arange(n_days), rule_ids.shape[1]), rule_ids.ravel()] = True
    used[:, 0] = False
    lut = np.cumsum(used, axis=1).astype(np.uint8)
    new_ids = np.take_along_axis(lut, rule_ids.astype(np.intp), axis=1)
    new_ids[rule_ids == 0] = 0
    return new_ids, [tuple(names[j - 1] for j in np.flatnonzero(row).tolist()) for row in used]


@pytest.mark.parametrize("seed", range(8))
def test_canonical_rules_equals_reference(seed) -> None:
    rng = np.random.default_rng(seed)
    names = [f"r{i}" for i in range(int(rng.integers(1, 9)))]
    ids = rng.integers(0, len(names) + 1, (int(rng.integers(1, 40)), 96)).astype(np.uint8)
    ids[rng.random(ids.shape) < rng.random()] = 0
    ids[rng.random(len(ids)) < 0.4] = 0
    if seed == 0:
        ids[:] = 0
    got_ids, got_names = canonical_rules(ids.copy(), names)
    ref_ids, ref_names = _canonical_reference(ids, names)
    assert np.array_equal(got_ids, ref_ids)
    assert got_names == ref_names


@pytest.mark.parametrize("batch_bytes", [None, 1], ids=["batched", "channel-per-write"])
def test_validate_days_stores_what_write_blocks_would(db, tmp_path, monkeypatch, batch_bytes) -> None:
    if batch_bytes is not None:  # PostgreSQL: every channel its own write_dense_many (SQLite: no effect)
        monkeypatch.setattr("kwhub.hub.ingest.vee_write.BATCH_BYTES", batch_bytes)
    start, n_days = date(2026, 10, 5), 8
    sim = simulate(start, n_days, 15, seed=7, faults=FaultSpec.default(start, n_days))
    db.intervals.write_series(list(sim.series.values()), layer="raw", source="sim")
    days = {cid: {b.day for b in split_by_day(s)} for cid, s in sim.series.items()}
    summary = validate_days(db, sim.campus, days, run_label="t")
    assert summary.write is not None and summary.write.new_days == sum(len(d) for d in days.values())
    # the same blocks through write_blocks into a second database give the same rows
    from kwhub.hub.store import Database

    other = Database.open(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        other.intervals.write_series(list(sim.series.values()), layer="raw", source="sim")
        for cid in sorted(days):
            first, last = min(days[cid]), max(days[cid])
            got = db.intervals.read_blocks(cid, first, last, layer="validated")
            other.intervals.write_blocks(got, layer="validated", source="vee:t")
            a = [x[:8] for x in _stored(db, cid, "validated")]
            b = [x[:8] for x in _stored(other, cid, "validated")]
            assert a == b, cid
            assert [g.content_hash() for g in got] == [x[7] for x in a]
            # days no rule touched carry the raw day's hash (same content)
            raw = {x[0]: x for x in _stored(db, cid, "raw")}
            for x in a:
                if x[5] is None and x[3] == raw[x[0]][3] and x[4] == raw[x[0]][4]:
                    assert x[7] == raw[x[0]][7]
    finally:
        other.close()
    events = read_events(db)
    assert len(events) == len(summary.events)
    for stored, e in zip(sorted(events, key=lambda r: (r["day"], r["channel_id"], r["rule_id"], r["action"], r["count"])),
                         sorted(summary.events, key=lambda e: (e.day, e.channel_id, e.rule_id, e.action, e.count)),
                         strict=True):
        assert (stored["channel_id"], stored["day"], stored["rule_id"], stored["action"], stored["count"]) == (
            e.channel_id, e.day, e.rule_id, e.action, e.count)
        assert stored["detail"] == _jsonable(e.detail)



def test_a_failed_run_keeps_no_validated_day_written_before_it(db, monkeypatch) -> None:
    """The validated days written batch by batch (PostgreSQL) or channel by channel go with a
    run that fails at its last step."""
    import kwhub.hub.ingest.vee as vee

    monkeypatch.setattr("kwhub.hub.ingest.vee_write.BATCH_BYTES", 1)

    def fail(*_a, **_k):
        raise RuntimeError("events refused")

    monkeypatch.setattr(vee, "_insert_events", fail)
    start, n_days = date(2026, 10, 5), 3
    sim = simulate(start, n_days, 15, seed=7, faults=FaultSpec.default(start, n_days))
    db.intervals.write_series(list(sim.series.values()), layer="raw", source="sim")
    days = {cid: {b.day for b in split_by_day(s)} for cid, s in sim.series.items()}
    raw = db.intervals.count_rows()
    with pytest.raises(RuntimeError, match="events refused"):
        validate_days(db, sim.campus, days, run_label="t")
    assert db.intervals.count_rows() == raw
    assert read_events(db) == []
