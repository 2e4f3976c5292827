"""``read_matrix`` against a plain reconstruction from ``read_blocks``.

The matrix read copies runs of consecutive stored days straight into each channel's row
and clips them to the span; these tests build the same matrix the slow way (one block at a
time, interval by interval) for sparse days, finer stored intervals and spans that start
and end inside a UTC day, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from kwhub.core.intervals import ChannelSeries, DayHashes, day_start_epoch
from kwhub.core.quality import Quality
from kwhub.core.timeline import Span
from kwhub.hub.store import Database

D0 = date(2025, 3, 1)
MISSING = int(Quality.MISSING)


def _store(db: Database, rng: np.random.Generator) -> dict[str, int]:
    """Three 15-minute channels and one 5-minute channel on scattered days, with gaps."""
    minutes = {"a": 15, "b": 15, "c": 15, "fine": 5}
    day_sets = {"a": range(0, 12), "b": [0, 1, 2, 5, 6, 9, 11], "c": [3], "fine": [1, 2, 3, 7, 8]}
    batch = []
    for cid, days in day_sets.items():
        step = minutes[cid] * 60
        starts = np.concatenate([day_start_epoch(D0 + timedelta(days=d)) + step * np.arange(86_400 // step)
                                 for d in days]).astype(np.int64)
        keep = rng.random(starts.size) > 0.03  # a few missing intervals inside stored days
        starts = starts[keep]
        values = np.round(rng.uniform(0, 50, starts.size), 3)
        quality = rng.choice(np.array([0, 0, 0, 1, 3], dtype=np.uint8), starts.size)
        batch.append(ChannelSeries(cid, minutes[cid], starts, values, quality))
    db.intervals.write_series(batch, layer="raw", source="t")
    return minutes


def _reference(db: Database, ids: list[str], span: Span, minutes: int) -> tuple[np.ndarray, np.ndarray]:
    step = minutes * 60
    n = (span.end_epoch - span.start_epoch) // step
    values = np.full((len(ids), n), np.nan)
    quality = np.full((len(ids), n), MISSING, dtype=np.uint8)
    first = datetime.fromtimestamp(span.start_epoch, UTC).date()
    last = datetime.fromtimestamp(span.end_epoch - 1, UTC).date()
    for i, cid in enumerate(ids):
        for block in db.intervals.read_blocks(cid, first, last, layer="raw"):
            f = minutes // block.interval_minutes
            v = block.values.reshape(-1, f).sum(axis=1)
            q = block.quality.reshape(-1, f).max(axis=1)
            v[q == MISSING] = np.nan
            t0 = day_start_epoch(block.day)
            for k in range(len(v)):
                col = (t0 + k * step - span.start_epoch) // step
                if 0 <= col < n:
                    values[i, col] = v[k]
                    quality[i, col] = q[k]
    return values, quality


@pytest.mark.parametrize("minutes", [15, 60])
def test_read_matrix_equals_a_block_by_block_reconstruction(db: Database, minutes: int) -> None:
    rng = np.random.default_rng(7)
    _store(db, rng)
    ids = ["fine", "b", "missing_channel", "a", "c"]
    step = minutes * 60
    base = day_start_epoch(D0)
    for _ in range(6):
        a = int(rng.integers(-30, 6 * 86_400 // step))
        b = a + int(rng.integers(1, 9 * 86_400 // step))
        span = Span(datetime.fromtimestamp(base + a * step, UTC), datetime.fromtimestamp(base + b * step, UTC))
        m = db.intervals.read_matrix(ids, span, minutes, layer="raw")
        ref_v, ref_q = _reference(db, ids, span, minutes)
        assert m.values.shape == ref_v.shape == (len(ids), b - a)
        assert np.array_equal(m.quality, ref_q)
        assert np.allclose(m.values, ref_v, equal_nan=True, rtol=0, atol=1e-9)
        assert np.isfinite(m.values).any()  # the spans hit stored data
        assert m.values.flags.c_contiguous and m.quality.flags.c_contiguous


def test_day_hashes_of_a_read_behave_as_a_mapping(db: Database) -> None:
    _store(db, np.random.default_rng(3))
    span = Span(datetime(2025, 3, 2, 12, tzinfo=UTC), datetime(2025, 3, 7, tzinfo=UTC))
    m = db.intervals.read_matrix(["a", "b", "missing_channel"], span, 15, layer="raw")
    hashes = m.day_hashes
    assert isinstance(hashes, DayHashes)
    # the span ends at 7 March 00:00: its last UTC day is 6 March
    expected = {("a", D0 + timedelta(days=d)) for d in range(1, 6)} | {
        ("b", D0 + timedelta(days=d)) for d in (1, 2, 5)}
    assert set(hashes) == expected and len(hashes) == len(expected)
    stored = {b.day: b.content_hash() for b in db.intervals.read_blocks("b", D0, D0 + timedelta(days=12))}
    for d in (1, 2, 5):
        day = D0 + timedelta(days=d)
        assert hashes[("b", day)] == stored[day]
    assert ("b", D0 + timedelta(days=3)) not in hashes
    assert hashes.get(("missing_channel", D0)) is None
    have = hashes.has_days(["b", "missing_channel"], np.array([(D0 + timedelta(days=d) - date(1970, 1, 1)).days
                                                               for d in (1, 3, 5)]))
    assert have.tolist() == [[True, False, True], [False, False, False]]
