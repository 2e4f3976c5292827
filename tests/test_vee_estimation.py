"""Estimation methods on small hand-made arrays with exact expected values."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from kwhub.core.intervals import day_start_epoch
from kwhub.core.quality import Quality
from kwhub.core.vee import RegisterReads, VeeContext
from kwhub.core.vee import estimation as est
from tests.fixtures.vee import VEE_DAY, day_block, history_blocks, make_engine, vee_channel

NAN = np.nan


def test_runs_and_run_indices():
    mask = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    s, e = est.runs(mask)
    assert s.tolist() == [1, 5, 7] and e.tolist() == [3, 6, 10]
    assert est.run_indices(s, e).tolist() == [1, 2, 5, 7, 8, 9]
    assert est.run_indices(np.array([], dtype=np.int64), np.array([], dtype=np.int64)).size == 0


def test_three_slot_gap_is_interpolated_linearly_to_exact_values():
    v = np.array([4.0, 10.0, NAN, NAN, NAN, 18.0, 3.0])
    mask = np.isnan(v)
    out, method = est.estimate(v, ~mask, mask, np.full(v.size, NAN), max_linear_gap=4)
    assert out[2:5].tolist() == [12.0, 14.0, 16.0]
    assert method[2:5].tolist() == [est.LINEAR] * 3
    assert out[[0, 1, 5, 6]].tolist() == [4.0, 10.0, 18.0, 3.0]


def test_flat_fill_when_only_one_side_is_known():
    v = np.array([NAN, NAN, 5.0, 6.0, 7.0, NAN])
    mask = np.isnan(v)
    out, method = est.estimate(v, ~mask, mask, np.full(v.size, NAN), max_linear_gap=4)
    assert out.tolist() == [5.0, 5.0, 5.0, 6.0, 7.0, 7.0]
    assert method[[0, 1, 5]].tolist() == [est.FLAT] * 3


def test_nothing_known_means_nothing_estimated():
    v = np.full(5, NAN)
    out, method = est.estimate(v, np.zeros(5, bool), np.ones(5, bool), np.full(5, NAN))
    assert np.isnan(out).all() and (method == 0).all()


def test_spread_sums_to_the_total_in_proportion_to_weights():
    shares = est.spread(8.0, np.array([1.0, 2.0, 1.0]))
    assert shares.tolist() == [2.0, 4.0, 2.0]
    rng = np.random.default_rng(3)
    w = rng.random(37)
    total = 1234.567
    s = est.spread(total, w)
    assert math.fsum(s) == pytest.approx(total, abs=1e-9)
    np.testing.assert_allclose(s[:-1] / w[:-1], total / w.sum())
    assert est.spread(9.0, np.zeros(3)).tolist() == [3.0, 3.0, 3.0]  # no profile: flat


def test_proxy_profile_is_the_mean_of_the_same_slot_over_prior_days():
    vals = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, NAN], [0.0, 0.0]])
    usable = np.isfinite(vals)
    prof = est.proxy_profiles(vals, usable, np.array([3]), days=3, same_weekday=False)
    assert prof[3].tolist() == [3.0, 4.0]  # (1+3+5)/3, (2+6)/2
    assert np.isnan(prof[:3]).all()
    prof2 = est.proxy_profiles(vals, usable, np.array([3]), days=3, same_weekday=False, min_days=3)
    assert prof2[3, 0] == 3.0 and np.isnan(prof2[3, 1])


def test_proxy_profile_same_weekday_uses_only_days_seven_apart():
    vals = np.arange(15, dtype=float)[:, None] * np.ones((1, 2))  # row r holds r
    prof = est.proxy_profiles(vals, np.ones_like(vals, bool), np.array([14]), days=14, same_weekday=True)
    assert prof[14].tolist() == [3.5, 3.5]  # rows 7 and 0


def test_engine_long_gap_uses_proxy_day_mean_without_scaling():
    history = [[float(h) for h in range(24)], [float(h + 2) for h in range(24)], [float(h + 4) for h in range(24)]]
    v = [100.0] * 24
    v[6:14] = [NAN] * 8
    eng = make_engine("gap", estimation={"proxy_days": 3, "same_weekday": False, "scale_to_neighbours": False,
                                         "max_linear_gap": 4})
    out = eng.validate(vee_channel(), [day_block(v)], VeeContext(history=history_blocks(history)))
    b = out.validated[0]
    assert b.values[6:14].tolist() == [float(h + 2) for h in range(6, 14)]  # slot mean of the 3 days
    assert (b.quality[6:14] == Quality.ESTIMATED).all()
    est_ev = [e for e in out.events if e.action == "estimated"]
    assert est_ev[0].detail["methods"] == {"proxy_day": 8}


def test_engine_proxy_day_is_scaled_to_the_neighbours():
    history = [[10.0] * 24, [10.0] * 24]
    v = [20.0] * 24
    v[8:16] = [NAN] * 8
    eng = make_engine("gap", estimation={"proxy_days": 2, "same_weekday": False, "scale_window": 2})
    out = eng.validate(vee_channel(), [day_block(v)], VeeContext(history=history_blocks(history)))
    assert out.validated[0].values[8:16].tolist() == [20.0] * 8  # profile 10 x (40/20)


def test_long_gap_without_history_falls_back_to_linear():
    v = [0.0] * 24
    v[0], v[11] = 10.0, 32.0
    v[1:11] = [NAN] * 10
    out = make_engine("gap").validate(vee_channel(), [day_block(v)])
    np.testing.assert_allclose(out.validated[0].values[1:11], 10.0 + 2.0 * np.arange(1, 11))
    ev = [e for e in out.events if e.action == "estimated"][0]
    assert ev.detail["methods"] == {"linear_long": 10}


def test_register_difference_spread_sums_exactly_to_the_difference():
    day0 = day_start_epoch(VEE_DAY)
    v = [5.0] * 24
    v[4:7] = [NAN] * 3
    # reads at 02:00 and 10:00: 8 intervals between them, 5 known (25 kWh) -> 3 missing hold 40 - 25 = 15
    reads = RegisterReads(epochs=[day0 + 2 * 3600, day0 + 10 * 3600], readings=[1000.0, 1040.0])
    hist = [[1.0] * 24, [1.0] * 24]
    hist[0][4:7] = hist[1][4:7] = [1.0, 2.0, 2.0]
    eng = make_engine("gap", estimation={"proxy_days": 2, "same_weekday": False})
    out = eng.validate(vee_channel(), [day_block(v)], VeeContext(history=history_blocks(hist), register_reads=reads))
    b = out.validated[0]
    assert b.values[4:7].tolist() == [3.0, 6.0, 6.0]  # 15 in proportion 1:2:2
    assert b.values[2:10].sum() == 40.0
    ev = [e for e in out.events if e.action == "estimated"][0]
    assert ev.detail["methods"] == {"register_spread": 3}


def test_register_spread_skipped_when_known_intervals_exceed_the_difference():
    day0 = day_start_epoch(VEE_DAY)
    v = [5.0] * 24
    v[4] = NAN
    reads = RegisterReads(epochs=[day0 + 2 * 3600, day0 + 10 * 3600], readings=[0.0, 20.0])  # known = 35 > 20
    out = make_engine("gap").validate(vee_channel(), [day_block(v)], VeeContext(register_reads=reads))
    assert out.validated[0].values[4] == 5.0
    assert [e.detail["methods"] for e in out.events if e.action == "estimated"] == [{"linear": 1}]


def test_gap_across_midnight_is_one_gap():
    d1 = [float(h) for h in range(24)]
    d2 = [float(24 + h) for h in range(24)]
    d1[22:] = [NAN, NAN]
    d2[:2] = [NAN, NAN]
    blocks = [day_block(d1), day_block(d2, VEE_DAY + timedelta(days=1))]
    out = make_engine("gap").validate(vee_channel(), blocks)
    assert out.validated[0].values[22:].tolist() == [22.0, 23.0]
    assert out.validated[1].values[:2].tolist() == [24.0, 25.0]
    assert [e.count for e in out.events if e.action == "estimated"] == [2, 2]
