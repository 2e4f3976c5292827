"""The fast VEE paths give exactly what the plain ones give.

* ``window_percentiles`` (high/low bands) equals ``np.nanpercentile`` window by window;
* ``VeeEngine.validate_dense`` (the bulk path of ``validate_days``) equals ``validate``;
* ``validate_days`` reads channels in bulk where it can and per channel where it must
  (a channel the campus does not know), with the same stored result.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from kwhub.core.intervals import ChannelSeries, split_by_day
from kwhub.core.quality import Quality
from kwhub.core.vee import VeeConfig, VeeContext, VeeEngine
from kwhub.core.vee.engine import DenseDays
from kwhub.core.vee.rules import window_percentiles
from kwhub.hub.demo.simulator.campus import FaultSpec, simulate
from kwhub.hub.ingest.vee import validate_days
from kwhub.hub.registry import load_plugins


@pytest.mark.parametrize("seed", range(6))
def test_window_percentiles_equal_nanpercentile(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n_rows, cols, h = int(rng.integers(1, 50)), int(rng.choice([1, 4, 24, 96])), int(rng.integers(1, 20))
        hist = np.round(rng.random((n_rows, cols)) * rng.choice([1, 100, 5000]), int(rng.integers(0, 3)))
        hist[rng.random(hist.shape) < rng.random() * 0.6] = np.nan
        if rng.random() < 0.3:
            hist[rng.random(hist.shape) < 0.3] = 0.0
        pcts = [float(rng.choice([99, 95, 50, 100, 99.9])), float(rng.choice([1, 0, 5, 25]))]
        rows = np.array([r for r in range(n_rows) if np.isfinite(hist[max(0, r - h):r]).any()], dtype=np.intp)
        if not rows.size:
            continue
        got = window_percentiles(hist, rows, h, pcts)
        for j, r in enumerate(rows):
            expected = np.nanpercentile(hist[max(0, r - h):r].ravel(), pcts)
            assert np.array_equal(got[:, j], expected), (r, pcts)


def _outcome_key(out):
    blocks = [(b.day, [None if v != v else v for v in b.values.tolist()], b.quality.tolist(),
               [b.rule_names[i - 1] if i else "" for i in (b.rule_ids if b.rule_ids is not None else [0] * 96)])
              for b in out.validated]
    return blocks, [e.as_dict() for e in out.events]


def test_validate_dense_equals_validate():
    start, days = date(2026, 3, 2), 40
    sim = simulate(start, days, 15, seed=5, faults=FaultSpec.default(start, days))
    engine = VeeEngine(load_plugins(use_entry_points=False).vee_rules, VeeConfig())
    now = int(sim.starts[-1]) - 6 * 3600
    for cid, series in sim.series.items():
        channel = sim.campus.channel(cid)
        blocks = list(split_by_day(series))
        hist, target = blocks[:12], blocks[12:]
        plain = engine.validate(channel, target, VeeContext(history=hist, now_epoch=now))
        dense = engine.validate_dense(
            channel, [b.day for b in target], np.array([b.values for b in target]),
            np.array([b.quality for b in target]),
            VeeContext(history_dense=DenseDays(hist[0].day, np.array([b.values for b in hist]),
                                               np.array([b.quality for b in hist])), now_epoch=now),
            compact=True)
        assert _outcome_key(plain) == _outcome_key(dense)
        for b in dense.validated:  # compact: untouched days carry no rule ids
            assert (b.rule_ids is None) == (not b.rule_names)


def test_validate_days_bulk_and_per_channel_paths(db):
    start = date(2026, 5, 4)
    sim = simulate(start, 8, 15, seed=9, faults=FaultSpec.default(start, 8))
    s = sim.series["hall_a.load"]
    extra = ChannelSeries(channel_id="stray.meter", interval_minutes=15, starts=s.starts[10:-20],
                          values=s.values[10:-20] * 2, quality=s.quality[10:-20])
    db.intervals.write_series([*sim.series.values(), extra], layer="raw", source="sim")
    days = {cid: {b.day for b in split_by_day(x)} for cid, x in [*sim.series.items(), ("stray.meter", extra)]}
    summary = validate_days(db, sim.campus, days, run_label="paths")
    assert summary.channels == len(days)
    stray = db.intervals.read_blocks("stray.meter", min(days["stray.meter"]), max(days["stray.meter"]),
                                     layer="validated")
    hall = db.intervals.read_blocks("hall_a.load", min(days["stray.meter"]), max(days["stray.meter"]),
                                    layer="validated")
    assert [b.day for b in stray] == sorted(days["stray.meter"])
    for a, b in zip(stray, hall, strict=True):
        ok = a.quality == Quality.VALID
        assert np.allclose(a.values[ok], 2 * b.values[ok])
    # validating again (history now from the validated layer) changes nothing
    again = validate_days(db, sim.campus, days, run_label="paths-2")
    assert again.write is not None and again.write.new_days == 0 and again.write.changed_days == 0


def test_channel_outside_the_campus_uses_its_stored_interval(db):
    day = date(2026, 6, 1)
    base = int((day - date(1970, 1, 1)).days) * 86400
    series = ChannelSeries(channel_id="solo.meter", interval_minutes=60,
                           starts=base + 3600 * np.arange(48, dtype=np.int64), values=np.ones(48),
                           quality=np.zeros(48, dtype=np.uint8))
    db.intervals.write_series([series], layer="raw", source="t")
    sim = simulate(day, 1, 15, seed=1)
    out = validate_days(db, sim.campus, {"solo.meter": {day, day + timedelta(days=1)}})
    assert out.channel_days == 2
    blocks = db.intervals.read_blocks("solo.meter", day, day + timedelta(days=1), layer="validated")
    assert [b.interval_minutes for b in blocks] == [60, 60]
