"""Every built-in VEE rule on hand-made hourly days, with exact expectations."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from kwhub.core.campus import Asset
from kwhub.core.intervals import ChannelSeries, day_start_epoch
from kwhub.core.quality import Quality
from kwhub.core.vee import RegisterReads, VeeContext
from tests.fixtures.vee import VEE_DAY, day_block, history_blocks, make_engine, vee_channel

NAN = np.nan
DAY0 = day_start_epoch(VEE_DAY)


def flagged(outcome, rule_id):
    return sum(e.count for e in outcome.events if e.rule_id == rule_id and e.action == "flagged")


def suspect_slots(block):
    return np.flatnonzero(block.quality == Quality.SUSPECT).tolist()


def test_all_builtin_rules_are_registered(vee_rules):
    assert {"gap", "interval_mismatch", "duplicate", "negative", "zero", "spike", "high_low", "sum_check", "unit",
            "prolonged_estimation", "stuck"} <= set(vee_rules)
    for cls in vee_rules.values():
        assert cls.__doc__ and cls.Config.model_config.get("extra") == "forbid"


# ------------------------------------------------------------------ gap


def test_gap_flags_and_estimates_and_keeps_raw():
    v = [10.0] * 24
    v[3] = NAN
    raw = day_block(v)
    before = raw.values.copy(), raw.quality.copy()
    out = make_engine("gap").validate(vee_channel(), [raw])
    b = out.validated[0]
    assert b.layer == "validated" and b.values[3] == 10.0 and b.quality[3] == Quality.ESTIMATED
    assert b.rule_names == ("gap",) and b.rule_ids[3] == 1 and b.rule_ids.sum() == 1
    np.testing.assert_array_equal(raw.values, before[0])
    np.testing.assert_array_equal(raw.quality, before[1])
    assert raw.layer == "raw" and np.isnan(raw.values[3])


def test_gap_respects_now_intervals_not_yet_due_stay_missing():
    v = [10.0] * 12 + [NAN] * 12
    v[5] = NAN
    ctx = VeeContext(now_epoch=DAY0 + 12 * 3600)
    out = make_engine("gap").validate(vee_channel(), [day_block(v)], ctx)
    b = out.validated[0]
    assert b.quality[5] == Quality.ESTIMATED
    assert (b.quality[12:] == Quality.MISSING).all() and np.isnan(b.values[12:]).all()
    assert flagged(out, "gap") == 1


def test_gap_report_only():
    v = [10.0] * 24
    v[3] = NAN
    out = make_engine("gap", gap={"estimate": False}).validate(vee_channel(), [day_block(v)])
    assert out.validated[0].quality[3] == Quality.MISSING and flagged(out, "gap") == 1


# ------------------------------------------------------------------ interval mismatch


def test_finer_values_are_summed_to_the_channel_interval_and_marked_edited():
    q = np.arange(96, dtype=float)  # 15-min values on an hourly channel
    q[9] = NAN  # one missing quarter: hour 2 is missing, then estimated
    blk = day_block(q, minutes=15)
    out = make_engine("interval_mismatch", "gap").validate(vee_channel(), [blk])
    b = out.validated[0]
    expected = np.arange(96, dtype=float).reshape(24, 4).sum(axis=1)
    assert b.values[0] == expected[0] and b.values[5] == expected[5]
    assert b.quality[0] == Quality.EDITED and b.rule_names[b.rule_ids[0] - 1] == "interval_mismatch"
    assert b.quality[2] == Quality.ESTIMATED and b.values[2] == (expected[1] + expected[3]) / 2
    ev = [e for e in out.events if e.rule_id == "interval_mismatch"][0]
    assert ev.action == "edited" and ev.count == 23 and ev.detail["received_minutes"] == 15


def test_coarser_values_are_split_evenly():
    hourly = day_block([8.0] * 24, minutes=60)
    out = make_engine("interval_mismatch").validate(vee_channel(minutes=15), [hourly])
    b = out.validated[0]
    assert b.values.size == 96 and (b.values == 2.0).all() and (b.quality == Quality.EDITED).all()


def test_mismatch_reject_marks_missing_for_estimation():
    out = make_engine("interval_mismatch", "gap", interval_mismatch={"action": "reject"}).validate(
        vee_channel(), [day_block(np.ones(96), minutes=15)],
        VeeContext(history=history_blocks([[3.0] * 24])))
    b = out.validated[0]
    assert (b.quality == Quality.ESTIMATED).all() and (b.values == 3.0).all()


def test_mismatch_without_the_rule_is_an_error():
    from kwhub.core.intervals import IntervalDataError

    with pytest.raises(IntervalDataError, match="15 min"):
        make_engine("gap").validate(vee_channel(), [day_block(np.ones(96), minutes=15)])


# ------------------------------------------------------------------ duplicates


def test_conflicting_duplicates_are_flagged_identical_repeats_are_not():
    starts = DAY0 + 3600 * np.array([1, 2, 5, 5, 7, 7])
    values = np.array([1.0, 2.0, 5.0, 5.5, 7.0, 7.0])
    incoming = ChannelSeries("m1", 60, starts, values, np.zeros(6, np.uint8))
    out = make_engine("duplicate").validate(vee_channel(), [day_block([1.0] * 24)], VeeContext(incoming=[incoming]))
    assert suspect_slots(out.validated[0]) == [5]
    ev = [e for e in out.events if e.rule_id == "duplicate"][0]
    assert ev.count == 1 and ev.detail["identical_repeats"] == 1


# ------------------------------------------------------------------ negative


def test_negative_flagged_or_estimated():
    v = [4.0] * 24
    v[3] = -1.0
    out = make_engine("negative").validate(vee_channel(), [day_block(v)])
    assert suspect_slots(out.validated[0]) == [3] and out.validated[0].values[3] == -1.0
    out = make_engine("negative", negative={"action": "estimate"}).validate(vee_channel(), [day_block(v)])
    b = out.validated[0]
    assert b.values[3] == 4.0 and b.quality[3] == Quality.ESTIMATED and b.rule_names == ("negative",)


# ------------------------------------------------------------------ zero


def _zeros_day(n=4):
    v = [5.0] * 24
    v[10:10 + n] = [0.0] * n
    return v


def test_zero_run_flagged():
    out = make_engine("zero").validate(vee_channel(), [day_block(_zeros_day())])
    assert suspect_slots(out.validated[0]) == [10, 11, 12, 13]
    out = make_engine("zero").validate(vee_channel(), [day_block(_zeros_day(3))])
    assert suspect_slots(out.validated[0]) == []  # shorter than min_run=4


def test_zero_excused_by_availability_channel():
    avail = [1.0] * 24
    avail[10:14] = [0.0] * 4
    ctx = VeeContext(availability=[day_block(avail, cid="gt1.avail")])
    out = make_engine("zero").validate(vee_channel(role="generation"), [day_block(_zeros_day())], ctx)
    assert suspect_slots(out.validated[0]) == []
    avail[12:14] = [1.0, 1.0]  # out for only half of the zero run
    ctx = VeeContext(availability=[day_block(avail, cid="gt1.avail")])
    out = make_engine("zero").validate(vee_channel(role="generation"), [day_block(_zeros_day())], ctx)
    assert suspect_slots(out.validated[0]) == [12, 13]
    ev = [e for e in out.events if e.rule_id == "zero"][0]
    assert ev.detail["excused"] == 2


def test_zero_excused_by_outage_span_and_skipped_for_solar():
    ctx = VeeContext(outages=[(DAY0 + 10 * 3600, DAY0 + 14 * 3600)])
    assert suspect_slots(make_engine("zero").validate(vee_channel(), [day_block(_zeros_day())], ctx).validated[0]) == []
    solar = VeeContext(asset=Asset(id="pv", kind="solar", capacity_kw=100))
    out = make_engine("zero").validate(vee_channel(role="generation"), [day_block(_zeros_day())], solar)
    assert suspect_slots(out.validated[0]) == []


# ------------------------------------------------------------------ spike


def test_spike_highest_vs_third_highest():
    v = [10.0] * 24
    v[7] = 40.0  # 4x the third-highest (10)
    out = make_engine("spike", spike={"ratio": 3.0}).validate(vee_channel(), [day_block(v)])
    assert suspect_slots(out.validated[0]) == [7]
    ev = [e for e in out.events if e.rule_id == "spike"][0]
    assert ev.detail["ratio"] == 4.0 and ev.detail["third_highest"] == 10.0
    v[7] = 25.0  # 2.5x: below the limit
    assert suspect_slots(make_engine("spike").validate(vee_channel(), [day_block(v)]).validated[0]) == []


def test_spike_double_spike_and_estimate_action():
    v = [10.0] * 24
    v[7], v[15] = 50.0, 45.0
    out = make_engine("spike", spike={"action": "estimate"}).validate(vee_channel(), [day_block(v)])
    b = out.validated[0]
    assert b.values[7] == 10.0 and b.values[15] == 10.0
    assert b.quality[7] == b.quality[15] == Quality.ESTIMATED
    assert [(e.action, e.count) for e in out.events] == [("flagged", 2), ("estimated", 2)]


# ------------------------------------------------------------------ stuck meter


def test_stuck_meter_flat_line():
    v = [float(h % 5 + 1) for h in range(24)]
    v[4:10] = [7.5] * 6
    out = make_engine("stuck").validate(vee_channel(), [day_block(v)])
    assert suspect_slots(out.validated[0]) == list(range(4, 10))
    v[9] = 3.0  # only 5 in a row
    assert suspect_slots(make_engine("stuck").validate(vee_channel(), [day_block(v)]).validated[0]) == []
    v[4:12] = [7.5] * 8
    out = make_engine("stuck", stuck={"min_run": 9}).validate(vee_channel(), [day_block(v)])
    assert suspect_slots(out.validated[0]) == []
    # dispatch-driven channels (a battery at its power limit) are not checked by default
    out = make_engine("stuck").validate(vee_channel(role="battery_discharge"), [day_block(v)])
    assert suspect_slots(out.validated[0]) == []


# ------------------------------------------------------------------ high / low


def test_high_low_against_percentile_band_of_history():
    hist = [[10.0] * 24 for _ in range(5)]  # band: [10 x 0.5, 10 x 1.5] = [5, 15]
    v = [10.0] * 24
    v[2], v[3], v[4], v[5] = 16.0, 4.0, 14.0, 6.0
    eng = make_engine("high_low", high_low={"low_factor": 0.5})
    out = eng.validate(vee_channel(), [day_block(v)], VeeContext(history=history_blocks(hist)))
    assert suspect_slots(out.validated[0]) == [2, 3]
    ev = [e for e in out.events if e.rule_id == "high_low"][0]
    assert ev.detail["high"] == 15.0 and ev.detail["low"] == 5.0
    # the default low factor (0.25) lets 4 kWh pass
    out = make_engine("high_low").validate(vee_channel(), [day_block(v)], VeeContext(history=history_blocks(hist)))
    assert suspect_slots(out.validated[0]) == [2]
    # a low value while the asset was out is excused
    avail = [1.0] * 24
    avail[3] = 0.0
    ctx = VeeContext(history=history_blocks(hist), availability=[day_block(avail, cid="a.avail")])
    out = eng.validate(vee_channel(role="generation"), [day_block(v)], ctx)
    assert suspect_slots(out.validated[0]) == [2]
    assert [e.detail["excused"] for e in out.events] == [1]
    # not enough history: nothing to compare with
    out = eng.validate(vee_channel(), [day_block(v)], VeeContext(history=history_blocks(hist[:2])))
    assert suspect_slots(out.validated[0]) == []


def test_high_low_day_basis():
    hist = [[10.0] * 24 for _ in range(4)]
    out = make_engine("high_low", high_low={"basis": "day"}).validate(
        vee_channel(), [day_block([16.0] * 24)], VeeContext(history=history_blocks(hist)))
    assert len(suspect_slots(out.validated[0])) == 24


# ------------------------------------------------------------------ sum check


def test_sum_check_channels_vs_check_meter_with_tolerance():
    a = np.full(24, 100.0)
    b = np.full(24, 50.0)
    check = a + b
    check[3] = 150.0 * 1.05  # 5% off: flagged (tolerance 2%)
    check[4] = 150.0 * 1.01  # 1% off: within tolerance
    related = {"a": [day_block(a, cid="a")], "b": [day_block(b, cid="b")]}
    eng = make_engine("sum_check", sum_check={"checks": {"chk": ["a", "b"]}, "tolerance_pct": 2.0})
    ch = vee_channel("chk", role="check")
    assert eng.related_channels(ch) == {"a", "b"}
    out = eng.validate(ch, [day_block(check, cid="chk")], VeeContext(related=related))
    assert suspect_slots(out.validated[0]) == [3]
    ev = [e for e in out.events if e.rule_id == "sum_check"][0]
    assert ev.detail["check:chk"]["max_diff_kwh"] == pytest.approx(7.5)
    # validated from a member's side, the same interval is flagged
    out = eng.validate(vee_channel("a"), [day_block(a, cid="a")],
                       VeeContext(related={"chk": [day_block(check, cid="chk")], "b": related["b"]}))
    assert suspect_slots(out.validated[0]) == [3]


def test_sum_check_subtracting_member():
    net = np.full(24, 70.0)
    gen, aux = np.full(24, 100.0), np.full(24, 30.0)
    aux[9] = 10.0
    eng = make_engine("sum_check", sum_check={"checks": {"net": ["gen", "-aux"]}, "tolerance_kwh": 1.0,
                                              "tolerance_pct": 0.0})
    ctx = VeeContext(related={"gen": [day_block(gen, cid="gen")], "aux": [day_block(aux, cid="aux")]})
    out = eng.validate(vee_channel("net"), [day_block(net, cid="net")], ctx)
    assert suspect_slots(out.validated[0]) == [9]


def test_sum_check_intervals_vs_register_reads():
    v = [5.0] * 24
    reads = RegisterReads(epochs=[DAY0, DAY0 + 6 * 3600, DAY0 + 12 * 3600], readings=[0.0, 30.0, 70.0])
    out = make_engine("sum_check").validate(vee_channel(), [day_block(v)], VeeContext(register_reads=reads))
    # window 0-6h sums to 30 (ok); 6-12h sums to 30 but the register moved 40: flagged
    assert suspect_slots(out.validated[0]) == list(range(6, 12))
    ev = [e for e in out.events if e.rule_id == "sum_check"][0]
    assert ev.detail["register_windows"] == 1 and ev.detail["max_register_diff_kwh"] == 10.0
    reads = RegisterReads(epochs=[DAY0, DAY0 + 6 * 3600], readings=[0.0, 30.4])  # within 0.5 kWh
    out = make_engine("sum_check").validate(vee_channel(), [day_block(v)], VeeContext(register_reads=reads))
    assert suspect_slots(out.validated[0]) == []


# ------------------------------------------------------------------ unit / multiplier


def test_unit_daily_total_implausible_vs_capacity_probable_x1000():
    ctx = VeeContext(asset=Asset(id="g", kind="gas_turbine", capacity_kw=10.0))
    v = [8000.0] * 24  # 8 MWh per hour on a 10 kW unit: Wh recorded as kWh
    out = make_engine("unit").validate(vee_channel(role="generation"), [day_block(v)], ctx)
    assert len(suspect_slots(out.validated[0])) == 24
    ev = [e for e in out.events if e.rule_id == "unit"][0]
    assert "x1000" in ev.detail["probable"] and ev.detail["limit_kwh"] == 300.0
    out = make_engine("unit", unit={"fix_x1000": True}).validate(vee_channel(role="generation"), [day_block(v)], ctx)
    b = out.validated[0]
    assert (b.values == 8.0).all() and (b.quality == Quality.EDITED).all() and b.rule_names == ("unit",)
    assert [(e.action, e.count) for e in out.events] == [("edited", 24)]


def test_unit_interval_over_capacity_and_plausible_day():
    v = [8.0] * 24
    v[5] = 20.0  # > 10 kW x 1 h x 1.25
    out = make_engine("unit", unit={"capacity_kw": 10.0}).validate(vee_channel(), [day_block(v)])
    assert suspect_slots(out.validated[0]) == [5]
    out = make_engine("unit").validate(vee_channel(), [day_block(v)])  # no capacity known: not checked
    assert suspect_slots(out.validated[0]) == []


# ------------------------------------------------------------------ prolonged estimation


def test_prolonged_estimation_flags_long_runs_of_estimates():
    v = [10.0] * 24
    v[4:14] = [NAN] * 10
    eng = make_engine("gap", "prolonged_estimation", estimation={"max_estimated_run": 6})
    out = eng.validate(vee_channel(), [day_block(v)])
    assert flagged(out, "prolonged_estimation") == 10
    b = out.validated[0]
    assert (b.quality[4:14] == Quality.ESTIMATED).all()  # estimates are kept
    v = [10.0] * 24
    v[4:9] = [NAN] * 5
    assert flagged(eng.validate(vee_channel(), [day_block(v)]), "prolonged_estimation") == 0


def test_prolonged_estimation_continues_from_history_and_meter_estimates():
    hist_q = np.zeros(24, np.uint8)
    hist_q[20:] = Quality.ESTIMATED
    hist = day_block([1.0] * 24, VEE_DAY - timedelta(days=1), quality=hist_q, layer="validated")
    q = np.zeros(24, np.uint8)
    q[:3] = Quality.ESTIMATED  # estimated by the meter: 4 + 3 = 7 in a row
    eng = make_engine("prolonged_estimation", prolonged_estimation={"max_intervals": 6})
    out = eng.validate(vee_channel(), [day_block([1.0] * 24, quality=q)], VeeContext(history=[hist]))
    assert flagged(out, "prolonged_estimation") == 3
