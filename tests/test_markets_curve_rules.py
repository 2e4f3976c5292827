"""Curve rules: any curve the builder emits passes; any rule-breaking curve is refused (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kwhub.core.markets.bid_builder import (
    GuardrailError,
    build_energy_offers,
    check_guardrails,
    curve_points,
)
from kwhub.core.markets.curve_rules import (
    CAISO_DA,
    ERCOT_DA,
    ERCOT_RT,
    CurveRuleError,
    check_bid,
    check_curve,
    require_valid,
)
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve
from kwhub.core.markets.optimizer import OptimizerError, optimize_dispatch
from kwhub.core.markets.surplus import BatteryUnit, GenUnit, ReserveRule, compute_surplus

H0 = datetime(2026, 10, 15, 5, tzinfo=UTC)  # 00:00 CDT
H1 = datetime(2026, 10, 15, 6, tzinfo=UTC)

blocks = st.lists(st.tuples(st.floats(-400, 6000, allow_nan=False), st.floats(0.0, 300.0, allow_nan=False)),
                  min_size=1, max_size=30)


def _curve(points: list[tuple[str, str]]) -> OfferCurve:
    return OfferCurve(start=H0, end=H1, points=tuple(CurvePoint(mw=D(m), price=D(p)) for m, p in points))


@settings(max_examples=300, deadline=None)
@given(blocks, st.sampled_from([ERCOT_DA, ERCOT_RT, CAISO_DA]))
def test_any_curve_the_builder_emits_passes(raw, rules):
    pts, notes = curve_points(sorted(raw, key=lambda b: b[0]), rules)
    if not pts or pts[-1].mw < rules.min_mw:
        return  # such an interval is not offered (the builder notes it)
    assert check_curve(OfferCurve(start=H0, end=H1, points=tuple(pts)), rules) == []
    # it never offers more than the blocks hold, nor a block over the cap
    assert pts[-1].mw <= D(repr(sum(m for p, m in raw if p <= float(rules.cap)))) + D("0.0000001")


valid_curves = st.lists(st.tuples(st.integers(1, 50), st.integers(0, 40)), min_size=2, max_size=9).map(
    lambda steps: [(str(sum(s[0] for s in steps[:i + 1])) + ".0", f"{10 + sum(s[1] for s in steps[:i + 1])}.00")
                   for i in range(len(steps))])


def _strictly(points):  # noqa: ANN001, ANN202
    """Make prices strictly rising so that only the mutation under test can break a rule."""
    return [(m, f"{10 + 3 * i}.00") for i, (m, _) in enumerate(points)]


MUTATIONS = {
    "cap": lambda p: p[:-1] + [(p[-1][0], "5000.01")],
    "floor": lambda p: [(p[0][0], "-250.01")] + p[1:],
    "points": lambda p: [(f"{i + 1}.0", f"{i + 1}.00") for i in range(11)],
    "monotonic_mw": lambda p: [(p[1][0], p[0][1]), (p[0][0], p[1][1])] + p[2:],
    "monotonic_price": lambda p: [(p[0][0], p[1][1]), (p[1][0], p[0][1])] + p[2:],
    "equal_prices": lambda p: [(f"{i + 1}.0", "20.00") for i in range(3)],
    "equal_mw": lambda p: [("5.0", f"{i + 1}.00") for i in range(3)],
    "price_decimals": lambda p: [(p[0][0], "10.001")] + p[1:],
    "mw_decimals": lambda p: [("1.25", p[0][1])] + p[1:],
    "negative_mw": lambda p: [("-1.0", "1.00")] + [(m, f"{2 + i}.00") for i, (m, _) in enumerate(p)],
    "min_mw": lambda p: [("0.5", "10.00")],
}


@settings(max_examples=40, deadline=None)
@given(valid_curves, st.sampled_from(sorted(MUTATIONS)))
def test_any_rule_breaking_curve_is_refused_with_the_rule_named(points, rule):
    base = _strictly(points)
    assert check_curve(_curve(base), ERCOT_DA) == []
    broken = MUTATIONS[rule](base)
    found = check_curve(_curve(broken), ERCOT_DA)
    assert rule in {v.rule for v in found}, (rule, broken, found)


def test_a_bid_is_refused_as_a_whole_with_every_rule_and_hour_named():
    day = date(2026, 10, 15)
    good = OfferCurve(start=H1, end=datetime(2026, 10, 15, 7, tzinfo=UTC), points=(CurvePoint(mw=D("5.0"), price=D("20.00")),))
    bad = _curve([("5.0", "6000.00")])
    misaligned = OfferCurve(start=datetime(2026, 10, 15, 7, 30, tzinfo=UTC), end=datetime(2026, 10, 15, 8, 30, tzinfo=UTC),
                            points=(CurvePoint(mw=D("5.0"), price=D("20.00")),))
    bid = Bid(bid_id="B1", iso="ERCOT", market="DA", resource="RN", trading_date=day, curves=(bad, good, misaligned, good))
    found = check_bid(bid, ERCOT_DA, "America/Chicago")
    assert {(v.rule, v.where) for v in found} >= {("cap", "2026-10-15 HE01"), ("duplicate_interval", "2026-10-15 HE02")}
    assert any(v.rule == "interval" for v in found)
    with pytest.raises(CurveRuleError) as err:
        require_valid([bid], {}, "America/Chicago")
    assert "rule cap" in str(err.value) and "HE01" in str(err.value)


def test_a_curve_on_the_missing_spring_hour_is_refused():
    # 8 March 2026: 02:00-03:00 CST does not exist; 07:00 UTC is 01:00 CST, 08:00 UTC is 03:00 CDT
    day = date(2026, 3, 8)
    grid = DayGrid(day, "America/Chicago", 60)
    assert len(grid) == 23 and 3 not in grid.hour_ending.tolist()
    ok = OfferCurve(start=datetime(2026, 3, 8, 8, tzinfo=UTC), end=datetime(2026, 3, 8, 9, tzinfo=UTC),
                    points=(CurvePoint(mw=D("5.0"), price=D("20.00")),))
    assert check_bid(Bid(bid_id="B", iso="ERCOT", market="DA", resource="RN", trading_date=day, curves=(ok,)),
                     ERCOT_DA, "America/Chicago") == []
    assert grid.label(2) == "2026-03-08 HE04"


def _units(n: int = 3) -> list[GenUnit]:
    return [GenUnit(id=f"g{i}", capacity_mw=40.0, heat_rate_mmbtu_per_mwh=8.0 + i, vom_per_mwh=4.0) for i in range(n)]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0, 90), min_size=24, max_size=24), st.floats(10, 120), st.floats(1.5, 8.0),
       st.sampled_from(["fixed", "largest_unit"]))
def test_any_bid_built_from_the_optimizer_passes_the_rules_and_the_guardrails(load, price, gas, mode):
    units = _units()
    battery = BatteryUnit(id="b", power_mw=10, energy_mwh=40, soc_start_mwh=20)
    s = compute_surplus(units, np.ones((3, 24)), np.zeros(24), np.array(load), ReserveRule(mode=mode, mw=5.0),
                        battery=battery)
    try:
        plan = optimize_dispatch(units, s, np.full(24, price), np.full(24, gas), battery=battery,
                                 product_prices={"reg_up": np.full(24, 3.0)})
    except OptimizerError:
        assert (s.unit_available_mw.sum(axis=0) - s.reserve_mw < s.load_mw - 10.0).any()  # really infeasible
        return
    # load is served in every hour, and the reserve stays unused
    served = plan.unit_load.sum(axis=0) + plan.solar_load + plan.battery_discharge_load + plan.grid_import - plan.battery_charge
    assert np.allclose(served, s.load_mw, atol=1e-6)
    used = plan.unit_load.sum(axis=0) + plan.unit_export.sum(axis=0) + plan.unit_products.sum(axis=(0, 1))
    assert (used <= s.unit_available_mw.sum(axis=0) - s.reserve_mw + 1e-6).all()
    built = build_energy_offers(date(2026, 10, 15), "America/Chicago", "ERCOT", "RN", plan, s, units,
                                np.full(24, gas), ERCOT_DA, bid_id="RN")
    grid = DayGrid(date(2026, 10, 15), "America/Chicago", 60)
    for bid in built.bids:
        assert check_bid(bid, ERCOT_DA, "America/Chicago") == []
        check_guardrails(bid, s, grid)
        for c in bid.curves:
            i = int(np.searchsorted(grid.starts, int(c.start.timestamp())))
            assert c.max_mw <= D(repr(float(s.surplus_mw[i])))


def test_a_bid_over_the_surplus_is_refused_by_the_guardrail():
    units = _units(1)
    s = compute_surplus(units, np.ones((1, 24)), np.zeros(24), np.full(24, 10.0), ReserveRule(mode="fixed", mw=5.0))
    grid = DayGrid(date(2026, 10, 15), "America/Chicago", 60)
    # surplus = 40 - 10 - 5 = 25 MW; an offer of 26 MW would need tenant load or the reserve
    bid = Bid(bid_id="RN", iso="ERCOT", market="DA", resource="RN", trading_date=date(2026, 10, 15),
              curves=(OfferCurve(start=H0, end=H1, points=(CurvePoint(mw=D("26.0"), price=D("30.00")),)),))
    with pytest.raises(GuardrailError, match="surplus is 25.0 MW"):
        check_guardrails(bid, s, grid)


def test_load_that_cannot_be_served_on_site_offers_nothing():
    units = _units(1)
    s = compute_surplus(units, np.ones((1, 24)), np.zeros(24), np.full(24, 39.0), ReserveRule(mode="fixed", mw=5.0))
    assert s.surplus_mw.max() == 0.0
    with pytest.raises(OptimizerError, match="cannot be served on site"):
        optimize_dispatch(units, s, np.full(24, 50.0), np.full(24, 3.0))


def test_the_optimizer_picks_the_cheaper_unit_for_load_and_offers_by_marginal_cost():
    # two units: 9 MMBtu/MWh and 11 MMBtu/MWh at $3/MMBtu + $4 VOM = $31 and $37 per MWh
    units = [GenUnit(id="cheap", capacity_mw=50, heat_rate_mmbtu_per_mwh=9, vom_per_mwh=4),
             GenUnit(id="dear", capacity_mw=50, heat_rate_mmbtu_per_mwh=11, vom_per_mwh=4)]
    s = compute_surplus(units, np.ones((2, 24)), np.zeros(24), np.full(24, 30.0), ReserveRule(mode="fixed", mw=10.0))
    plan = optimize_dispatch(units, s, np.full(24, 20.0), np.full(24, 3.0))  # price below both costs: no export
    assert np.allclose(plan.unit_load[0], 30.0) and np.allclose(plan.unit_load[1], 0.0)
    assert np.allclose(plan.export_mw, 0.0)
    built = build_energy_offers(date(2026, 10, 15), "America/Chicago", "ERCOT", "RN", plan, s, units,
                                np.full(24, 3.0), ERCOT_DA, bid_id="RN")
    # headroom: cheap 20 MW at $31.00, dear 50 MW at $37.00, less the 10 MW reserve from the dear unit
    assert built.bids[0].curves[0].points == (CurvePoint(mw=D("20.0"), price=D("31.00")),
                                              CurvePoint(mw=D("60.0"), price=D("37.00")))
