"""``IntervalStore.write_dense_many`` stores what one ``write_dense`` per channel stores.

On PostgreSQL the channels of one call go through a single binary COPY (the stored
interval lengths looked up in one statement first); on SQLite through one insert. Both
stores are checked: the rows, versions, current flags, stale marks and reports of a
first write and of a restating second write equal those of the per-channel path, and a
refused channel refuses the whole call.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from kwhub.core.intervals import IntervalDataError
from kwhub.core.quality import Quality
from kwhub.hub.store import DenseDays
from kwhub.hub.store.tables import interval_day_table, stale_mark_table

T = interval_day_table.c
D0 = date(2025, 3, 28)  # the days cross a month: two partitions on PostgreSQL
N_DAYS = 6
M = int(Quality.MISSING)


def _arrays(seed: int, ruled: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    rng = np.random.default_rng(seed)
    v = np.round(rng.uniform(0, 50, (N_DAYS, 96)), 3)
    q = np.zeros((N_DAYS, 96), np.uint8)
    q[rng.random((N_DAYS, 96)) < 0.05] = M
    q[rng.random((N_DAYS, 96)) < 0.05] = int(Quality.ESTIMATED)
    if not ruled:
        return v, q, None, []
    r = np.where(rng.random((N_DAYS, 96)) < 0.1, rng.integers(1, 3, (N_DAYS, 96)), 0).astype(np.uint8)
    return v, q, r, ["spike", "flat"]


def _channels(prefix: str, seed: int) -> list[DenseDays]:
    days = np.arange(np.datetime64(D0), np.datetime64(D0) + N_DAYS)
    out = []
    for k in range(4):
        v, q, r, names = _arrays(seed + k, ruled=k % 2 == 1)
        out.append(DenseDays(f"{prefix}{k}", 15, days, v, q, r, names))
    return out


def _rows(db, prefix: str) -> list[tuple]:
    """Stored rows with the channel's prefix cut off (the content hash names the channel: left out)."""
    with db.read_connection() as conn:
        rows = conn.execute(select(T.channel_id, T.day, T.layer, T.version, T.n_values, T["values"], T.quality,
                                   T.rule_ids, T.rule_names, T.is_current)
                            .where(T.channel_id.like(f"{prefix}%")).order_by(T.channel_id, T.day, T.version)).all()
    return [(r[0][len(prefix):], *(bytes(x) if isinstance(x, memoryview) else x for x in r[1:])) for r in rows]


def _marks(db, prefix: str) -> list[tuple]:
    s = stale_mark_table.c
    with db.read_connection() as conn:
        rows = conn.execute(select(s.channel_id, s.day, s.layer, s.version)
                            .where(s.channel_id.like(f"{prefix}%")).order_by(s.channel_id, s.day)).all()
    return [(r[0][len(prefix):], *r[1:]) for r in rows]


def _report(rep) -> tuple:
    return rep.intervals, rep.new_days, rep.changed_days, rep.unchanged_days, sorted(d for _, d in rep.stale)


def _write_each(db, channels: list[DenseDays], source: str):
    from kwhub.hub.store.interval_store import WriteReport

    total = WriteReport()
    with db.write_transaction() as conn:
        for c in channels:
            total.add(db.intervals.write_dense(*c[:7], layer="validated", source=source, conn=conn))
    return total


def _restated(channels: list[DenseDays], prefix: str) -> list[DenseDays]:
    """A second write: channel 0 unchanged, 1 with two days changed, 2 with one day fewer and a
    value changed, 3 left out; a new channel 4."""
    out = [channels[0]._replace(channel_id=f"{prefix}0")]
    c1 = channels[1]
    v1 = c1.values.copy()
    v1[[1, 4], 7] += 1.5
    out.append(c1._replace(channel_id=f"{prefix}1", values=v1))
    c2 = channels[2]
    v2 = c2.values[1:].copy()
    v2[0, 0] = 99.0
    out.append(c2._replace(channel_id=f"{prefix}2", days=c2.days[1:], values=v2, quality=c2.quality[1:]))
    extra = _channels(prefix, 40)[0]
    out.append(extra._replace(channel_id=f"{prefix}4"))
    return out


def test_write_dense_many_stores_what_write_dense_stores(db) -> None:
    each = _channels("e", 1)
    many = [c._replace(channel_id="m" + c.channel_id[1:]) for c in each]
    rep_e = _write_each(db, each, "s")
    rep_m = db.intervals.write_dense_many(many, layer="validated", source="s")
    assert _report(rep_m) == _report(rep_e) == (4 * N_DAYS * 96, 4 * N_DAYS, 0, 0, [])
    assert _rows(db, "m") == _rows(db, "e") != []
    # the hashes are those of the stored content, per channel
    for c in many:
        blocks = db.intervals.read_blocks(c.channel_id, D0, D0 + timedelta(days=N_DAYS - 1), layer="validated")
        with db.read_connection() as conn:
            hashes = conn.execute(select(T.content_hash).where(T.channel_id == c.channel_id)
                                  .order_by(T.day)).scalars().all()
        assert [b.content_hash() for b in blocks] == hashes

    # a restating second write: new versions, retired ones, stale marks, unchanged days
    rep_e = _write_each(db, _restated(each, "e"), "t")
    rep_m = db.intervals.write_dense_many(_restated(many, "m"), layer="validated", source="t")
    assert _report(rep_m) == _report(rep_e)
    # unchanged: all of channel 0, four days of 1, four of the five days of 2
    assert (rep_m.new_days, rep_m.changed_days, rep_m.unchanged_days) == (N_DAYS, 3, N_DAYS + 4 + 4)
    assert _rows(db, "m") == _rows(db, "e")
    assert _marks(db, "m") == _marks(db, "e") != []
    with db.read_connection() as conn:
        current = conn.execute(select(func.count()).where(T.channel_id.like("m%"), T.is_current)).scalar_one()
    assert current == 5 * N_DAYS  # every channel-day once


def test_write_dense_many_refuses_the_whole_call(db) -> None:
    channels = _channels("r", 7)
    db.intervals.write_dense_many(channels[:1], source="first")
    before = db.intervals.count_rows()
    days = channels[0].days
    # a stored channel written with another interval length: refused, nothing of the call written
    hourly = DenseDays("r0", 60, days, np.zeros((N_DAYS, 24)), np.zeros((N_DAYS, 24), np.uint8))
    with pytest.raises(IntervalDataError, match=r"r0 is stored with 15-minute intervals"):
        db.intervals.write_dense_many([channels[1], channels[2], hourly], source="second")
    bad = channels[3]._replace(values=np.full((N_DAYS, 96), np.inf))
    with pytest.raises(IntervalDataError, match="not finite"):
        db.intervals.write_dense_many([channels[1], bad], source="third")
    with pytest.raises(IntervalDataError, match="r1 is given more than once"):
        db.intervals.write_dense_many([channels[1], channels[2], channels[1]], source="fourth")
    assert db.intervals.count_rows() == before
    assert _report(db.intervals.write_dense_many([], source="none")) == (0, 0, 0, 0, [])
    assert db.intervals.count_rows() == before
