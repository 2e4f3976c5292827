"""Hand-computed scenarios for every built-in price component.

Unless stated otherwise the period is 2026-09-01..2026-09-02 in America/New_York (no DST
change): 2 days x 96 quarter-hours = 192 intervals; 250 kWh per interval is
192 x 250 = 48,000 kWh = 48.000 MWh and a demand of 250 x 60/15 = 1,000 kW.
Money: USD, 2 places, half-up; unit prices 6 places; quantities 3 places.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from kwhub.core.campus import ComponentSpec
from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import Invoice, PartyRef, check_totals, compute_totals
from kwhub.core.pricing import (
    Charge,
    PeriodHistory,
    PriceComponent,
    PricingContext,
    PricingError,
    build_components,
    charges_to_lines,
    price_contract,
    summarize_period,
)
from kwhub.core.pricing.base import EscalatingConfig, contract_year_of
from kwhub.core.pricing.components import (
    AvailabilityGuarantee,
    Capacity,
    Demand,
    FixedEnergy,
    FixedFee,
    GridPassThrough,
    PercentageSurcharge,
    TakeOrPay,
    allocate_by_shares,
    builtin_components,
)
from tests.fixtures.pricing import contract, make_ctx, period

D = Decimal
SEP = period(date(2026, 9, 1), date(2026, 9, 2))


def only(charges: list[Charge]) -> Charge:
    assert len(charges) == 1, charges
    return charges[0]


# --------------------------------------------------------------------------- fixed energy


def test_fixed_energy_single_line():
    ctx = make_ctx(SEP, 250.0)
    ch = only(FixedEnergy("energy", {"price_per_mwh": "45.50"}).compute(ctx))
    # 192 x 250 kWh = 48,000 kWh = 48.000 MWh; 48.000 x 45.50 = 2,184.00
    assert ctx.n_intervals == 192
    assert ch.quantity == D("48.000") and ch.unit == "MWh"
    assert ch.unit_price == D("45.50")
    assert ch.amount == D("2184.00")
    assert ch.charge_type == "energy"
    assert ch.determinants["energy_kwh"] == "48000.0"
    assert ch.determinants["intervals"] == "192"
    assert ch.determinants["span"].startswith("2026-09-01T04:00:00+00:00/")


def test_fixed_energy_per_source_prices_and_skips_empty_sources():
    n = 192
    by_source = {"gt1": np.full(n, 150.0), "pv": np.full(n, 100.0), "re1": np.zeros(n)}
    ctx = make_ctx(SEP, 250.0, energy_by_source=by_source)
    comp = FixedEnergy("energy", {"price_per_mwh": 52.25, "per_source": True, "source_prices": {"pv": 30}})
    lines = {c.source_asset: c for c in comp.compute(ctx)}
    # re1 delivered nothing: no line
    assert set(lines) == {"gt1", "pv"}
    # gt1: 192 x 150 = 28,800 kWh = 28.800 MWh x 52.25 = 1,504.80
    assert lines["gt1"].quantity == D("28.800") and lines["gt1"].amount == D("1504.80")
    # pv: 192 x 100 = 19,200 kWh = 19.200 MWh x 30 = 576.00
    assert lines["pv"].quantity == D("19.200") and lines["pv"].amount == D("576.00")
    assert lines["pv"].unit_price == D("30")


def test_fixed_energy_restricted_to_sources():
    n = 192
    ctx = make_ctx(SEP, 250.0, energy_by_source={"gt1": np.full(n, 150.0), "pv": np.full(n, 100.0)})
    ch = only(FixedEnergy("e", {"price_per_mwh": 10, "sources": ["pv"]}).compute(ctx))
    # only pv: 19.200 MWh x 10 = 192.00
    assert ch.amount == D("192.00")
    with pytest.raises(PricingError, match="wind"):
        FixedEnergy("e", {"price_per_mwh": 10, "sources": ["wind"]}).compute(ctx)


def test_escalation_compound_and_simple():
    ctx = make_ctx(SEP, 250.0, contract_kw={"start": "2024-09"})
    # 2026-09 is 24 months after 2024-09 -> contract year 24 // 12 + 1 = 3
    assert ctx.contract_year == 3
    comp = FixedEnergy("e", {"price_per_mwh": "45.50", "escalation_pct_per_year": "2.5"})
    ch = only(comp.compute(ctx))
    # 45.50 x 1.025^2 = 45.50 x 1.050625 = 47.8034375 -> 47.803438 (6 places, half-up)
    # 48.000 x 47.803438 = 2,294.565024 -> 2,294.57
    assert ch.unit_price == D("47.803438")
    assert ch.amount == D("2294.57")
    assert ch.determinants["escalation_factor"] == "1.050625"
    assert ch.determinants["contract_year"] == "3"
    simple = only(FixedEnergy("e", {"price_per_mwh": "45.50", "escalation_pct_per_year": "2.5",
                                    "escalation": "simple"}).compute(ctx))
    # 45.50 x (1 + 0.025 x 2) = 47.775; 48.000 x 47.775 = 2,293.20
    assert simple.amount == D("2293.20")


def test_contract_year_boundaries():
    ct = contract(start="2025-03")
    assert contract_year_of(ct, period("2025-03")) == 1
    assert contract_year_of(ct, period("2026-02")) == 1  # month 11 after start
    assert contract_year_of(ct, period("2026-03")) == 2
    with pytest.raises(PricingError, match="before the contract start"):
        contract_year_of(ct, period("2025-01"))


# --------------------------------------------------------------------------- demand


def test_demand_peak_and_window():
    kwh = np.full(192, 250.0)
    kwh[12] = 300.0  # 2026-09-01 03:00-03:15 local: 300 x 4 = 1,200 kW (outside the window)
    ctx = make_ctx(SEP, kwh)
    ch = only(Demand("d", {"price_per_kw_month": "12.00"}).compute(ctx))
    # billing demand = peak = 1,200 kW; 1,200 x 12.00 = 14,400.00
    assert ch.quantity == D("1200.000") and ch.unit == "kW"
    assert ch.amount == D("14400.00")
    assert ch.determinants["peak_interval_start"] == "2026-09-01T07:00:00+00:00"
    assert ch.determinants["billing_basis"] == "peak"
    window = {"day_types": ["weekday"], "hours": [[14, 19]]}
    ch = only(Demand("d", {"price_per_kw_month": "12.00", "window": window}).compute(ctx))
    # inside weekday 14:00-19:00 the peak is 1,000 kW: 1,000 x 12 = 12,000.00
    # window = 2 weekdays x 5 h x 4 = 40 intervals
    assert ch.quantity == D("1000.000") and ch.amount == D("12000.00")
    assert ch.determinants["window_intervals"] == "40"


def _month_ctx(label: str, peak_kw: float, history: dict[str, PeriodHistory]) -> PricingContext:
    per = period(label)
    ctx = make_ctx(per, 500.0, history=history)  # base 500 kWh = 2,000 kW
    ctx.energy_kwh[100] = peak_kw * 15 / 60
    ctx.demand_kw = ctx.energy_kwh * 4
    return ctx


def test_demand_ratchet_across_three_months():
    comp = Demand("demand", {"price_per_kw_month": "10", "ratchet_pct": 80, "ratchet_months": 11})
    history: dict[str, PeriodHistory] = {}
    amounts, bases = [], []
    for label, peak in (("2026-06", 5000.0), ("2026-07", 4200.0), ("2026-08", 3000.0)):
        ctx = _month_ctx(label, peak, dict(history))
        ch = only(comp.compute(ctx))
        amounts.append(ch.amount)
        bases.append(ch.determinants["billing_basis"])
        history[label] = summarize_period(ctx, [ch])
    # June: no history -> billing demand = peak 5,000 kW x $10 = 50,000.00
    # July: ratchet 80% x 5,000 = 4,000 < peak 4,200 -> 4,200 x 10 = 42,000.00
    # August: peak 3,000 < ratchet 80% x max(5,000, 4,200) = 4,000 -> 4,000 x 10 = 40,000.00
    assert amounts == [D("50000.00"), D("42000.00"), D("40000.00")]
    assert bases == ["peak", "peak", "ratchet"]
    assert ch.determinants["ratchet_reference_period"] == "2026-06"
    assert ch.determinants["peak_kw"] == "3000.0"
    assert history["2026-08"].billing_demand_kw == 4000.0
    assert history["2026-08"].peak_kw == 3000.0


def test_demand_ratchet_window_expires_and_peak_basis():
    # a 10,000 kW billing demand 12 months back is outside an 11-month ratchet window
    hist = {"2025-08": PeriodHistory(10000.0, 10000.0, 0.0), "2026-07": PeriodHistory(4000.0, 2500.0, 0.0)}
    ctx = _month_ctx("2026-08", 3000.0, hist)
    ch = only(Demand("d", {"price_per_kw_month": 10, "ratchet_pct": 80}).compute(ctx))
    # 80% x 4,000 (July billing demand) = 3,200 > 3,000 peak -> 32,000.00
    assert ch.amount == D("32000.00")
    ch = only(Demand("d", {"price_per_kw_month": 10, "ratchet_pct": 80, "ratchet_basis": "peak"}).compute(ctx))
    # peak basis: 80% x 2,500 = 2,000 < 3,000 -> 30,000.00
    assert ch.amount == D("30000.00")
    ch = only(Demand("d", {"price_per_kw_month": 10, "minimum_kw": 3500}).compute(ctx))
    assert ch.amount == D("35000.00") and ch.determinants["billing_basis"] == "minimum"


# --------------------------------------------------------------------------- capacity / fees


def test_capacity_full_and_prorated():
    ctx = make_ctx(period("2026-09"), 0.0)
    ch = only(Capacity("cap", {"contracted_kw": 20000, "price_per_kw_month": "8.50"}).compute(ctx))
    # 20,000 kW x 8.50 = 170,000.00
    assert ch.amount == D("170000.00") and ch.charge_type == "capacity"
    short = make_ctx(period(date(2026, 9, 1), date(2026, 9, 10)), 0.0)
    ch = only(Capacity("cap", {"contracted_kw": 20000, "price_per_kw_month": "8.50",
                               "proration": "days"}).compute(short))
    # 10 of 30 days: 8.50 x 10/30 = 2.8333... -> 2.833333; 20,000 x 2.833333 = 56,666.66
    assert ch.unit_price == D("2.833333") and ch.amount == D("56666.66")
    assert ch.determinants["days"] == "10" and ch.determinants["month_days"] == "30"


def test_fixed_fee_share_of_buyer():
    ctx = make_ctx(SEP, 0.0)
    comp = FixedFee("substation", {"total_amount": "10000", "shares": {"tenant_a": "0.5", "tenant_b": "0.3",
                                                                       "tenant_c": "0.2"}})
    ch = only(comp.compute(ctx))
    # tenant_a: 10,000.00 x 0.5 = 5,000.00, billed 1 month x 5,000.00
    assert (ch.quantity, ch.unit, ch.amount) == (D("1"), "month", D("5000.00"))
    assert ch.charge_type == "fee"
    assert ch.determinants["total_amount"] == "10000.00" and ch.determinants["share"] == "0.5"


def test_fixed_fee_parts_sum_to_total_with_ctx_shares():
    third = "0.333333333333"
    shares = {"tenant_a": third, "tenant_b": third, "tenant_c": third}
    got = {}
    for buyer in shares:
        ctx = make_ctx(SEP, 0.0, contract_kw={"buyer": buyer}, fees_shares=shares)
        got[buyer] = only(FixedFee("om", {"total_amount": 100}).compute(ctx)).amount
    # 100.00 / 3 = 33.33 each + 1 cent left: the tie goes to the first party id (tenant_a)
    assert got == {"tenant_a": D("33.34"), "tenant_b": D("33.33"), "tenant_c": D("33.33")}
    assert sum(got.values()) == D("100.00")
    assert allocate_by_shares(D("-0.05"), {"a": D("0.5"), "b": D("0.5")}, 2) == {"a": D("-0.03"), "b": D("-0.02")}


def test_fixed_fee_errors():
    ctx = make_ctx(SEP, 0.0)
    with pytest.raises(PricingError, match="not 1"):
        FixedFee("f", {"total_amount": 10, "shares": {"tenant_a": "0.5", "tenant_b": "0.4"}}).compute(ctx)
    with pytest.raises(PricingError, match="tenant_a"):
        FixedFee("f", {"total_amount": 10, "shares": {"tenant_b": "1"}}).compute(ctx)



def test_fixed_fee_split_is_kept_per_exact_shares():
    """The split is made once for every contract sharing the fee, and only for shares written alike:
    0.5 and 0.50 are equal, but the determinant states each as written; a float share reads as its repr."""
    a = make_ctx(SEP, 0.0, contract_kw={"buyer": "tenant_a"})
    b = make_ctx(SEP, 0.0, contract_kw={"buyer": "tenant_b"})
    first = FixedFee("f", {"total_amount": "0.05", "shares": {"tenant_a": "0.5", "tenant_b": "0.5"}})
    again = FixedFee("f", {"total_amount": "0.05", "shares": {"tenant_a": "0.50", "tenant_b": "0.50"}})
    parts = [only(c.compute(x)) for c in (first, again) for x in (a, b)]
    assert [p.amount for p in parts] == [D("0.03"), D("0.02"), D("0.03"), D("0.02")]
    assert [p.determinants["share"] for p in parts] == ["0.5", "0.5", "0.50", "0.50"]
    floats = make_ctx(SEP, 0.0, contract_kw={"buyer": "tenant_a"}, fees_shares={"tenant_a": 0.1, "tenant_b": 0.9})
    ch = only(FixedFee("f", {"total_amount": 10}).compute(floats))
    assert ch.amount == D("1.00") and ch.determinants["share"] == "0.1"
    with pytest.raises(PricingError, match="not 1"):  # a refusal is not kept: it is raised every time
        FixedFee("f", {"total_amount": 10, "shares": {"tenant_a": "0.5", "tenant_b": "0.4"}}).compute(a)

def test_take_or_pay_shortfall_and_met():
    ctx = make_ctx(SEP, 250.0)
    ch = only(TakeOrPay("top", {"minimum_mwh": 60, "price_per_mwh": 40}).compute(ctx))
    # minimum 60 MWh - delivered 48.000 MWh = 12.000 MWh x 40 = 480.00
    assert ch.quantity == D("12.000") and ch.amount == D("480.00") and ch.charge_type == "take_or_pay"
    per_day = only(TakeOrPay("top", {"minimum_mwh_per_day": 30, "price_per_mwh": 40}).compute(ctx))
    # 30 MWh/day x 2 days = 60 MWh -> same 480.00
    assert per_day.amount == D("480.00") and per_day.determinants["minimum_mwh"] == "60"
    assert TakeOrPay("top", {"minimum_mwh": 48, "price_per_mwh": 40}).compute(ctx) == []
    with pytest.raises(PricingError, match="exactly one"):
        TakeOrPay("top", {"price_per_mwh": 40})


def test_availability_guarantee_credit_and_cap():
    avail = np.ones(192)
    avail[:12] = 0.0  # 12 of 192 intervals down: 180/192 = 0.9375 -> 93.750 %
    ctx = make_ctx(SEP, 250.0, availability={"gt1": avail})
    ch = only(AvailabilityGuarantee("ag", {"asset": "gt1", "guaranteed_pct": 95, "ld_per_point": 8000}).compute(ctx))
    # 95 - 93.750 = 1.250 points x -8,000 = -10,000.00 (credit)
    assert ch.quantity == D("1.250") and ch.unit_price == D("-8000") and ch.amount == D("-10000.00")
    assert ch.charge_type == "availability_credit" and ch.source_asset == "gt1"
    assert ch.determinants["measured_pct"] == "93.750"
    capped = only(AvailabilityGuarantee("ag", {"asset": "gt1", "guaranteed_pct": 95, "ld_per_point": 8000,
                                               "cap_amount": 7500}).compute(ctx))
    # capped at 7,500: 1 x -7,500.00; the uncapped figure stays a determinant
    assert capped.amount == D("-7500.00") and capped.determinants["uncapped_amount"] == "-10000.000"
    met = AvailabilityGuarantee("ag", {"asset": "gt1", "guaranteed_pct": 93.75, "ld_per_point": 8000})
    assert met.compute(ctx) == []
    with pytest.raises(PricingError, match="gt2"):
        AvailabilityGuarantee("ag", {"asset": "gt2", "guaranteed_pct": 95, "ld_per_point": 1}).compute(ctx)


def test_grid_pass_through():
    ctx = make_ctx(SEP, 250.0, grid_import_cost=D("1234.567"), grid_import_kwh=20000.0)
    ch = only(GridPassThrough("grid", {}).compute(ctx))
    # 1 x 1,234.567 -> 1,234.57 (half-up)
    assert ch.amount == D("1234.57") and ch.charge_type == "pass_through"
    assert ch.determinants["avg_price_per_mwh"] == "61.728350"  # 1,234.567 / 20 MWh
    marked = only(GridPassThrough("grid", {"markup_pct": 10}).compute(ctx))
    # 1,234.567 x 1.10 = 1,358.0237 -> 1,358.02
    assert marked.amount == D("1358.02")
    per_mwh = only(GridPassThrough("grid", {"unit": "MWh"}).compute(ctx))
    # 20.000 MWh x 61.728350 = 1,234.567 -> 1,234.57
    assert (per_mwh.quantity, per_mwh.amount) == (D("20.000"), D("1234.57"))
    assert GridPassThrough("grid", {}).compute(make_ctx(SEP, 250.0)) == []


# --------------------------------------------------------------------------- contract level


def _contract_with(components: list[dict]) -> object:
    return contract(components=[ComponentSpec(**c) for c in components], tax_percent=D("5"))


def test_price_contract_runs_surcharge_after_energy_and_lines_total():
    ct = _contract_with([
        {"kind": "percentage_surcharge", "id": "franchise", "percent": 3, "description": "Franchise fee 3%"},
        {"kind": "fixed_energy", "price_per_mwh": "45.50"},
        {"kind": "demand", "price_per_kw_month": 12},
    ])
    comps = build_components(ct)
    assert [c.component_id for c in comps] == ["franchise", "fixed_energy", "demand"]
    per = SEP
    ctx = make_ctx(per, 250.0)
    ctx.contract = ct
    charges = price_contract(comps, ctx)
    assert [c.component_id for c in charges] == ["fixed_energy", "demand", "franchise"]
    fee = charges[-1]
    # 3% of the energy line 2,184.00 only (demand 12,000.00 is not energy) = 65.52
    assert fee.quantity == D("2184.000") and fee.unit_price == D("0.03") and fee.amount == D("65.52")
    lines = charges_to_lines(charges, ctx.money, per, tax_percent=ct.tax_percent)
    assert [ln.number for ln in lines] == [1, 2, 3]
    assert lines[0].period_start == date(2026, 9, 1) and lines[0].period_end == date(2026, 9, 2)
    assert lines[1].determinants["billing_demand_kw"] == "1000.0"
    party = PartyRef(id="x", name="X")
    inv = Invoice(id="i", number="1", seller=party, buyer=party, issue_date=date(2026, 10, 1),
                  due_date=date(2026, 10, 31), period_start=per.first_day, period_end=per.last_day, lines=lines)
    inv = compute_totals(inv, ctx.money)
    # 2,184.00 + 12,000.00 + 65.52 = 14,249.52; tax 5% = 712.476 -> 712.48; total 14,962.00
    assert inv.line_total == D("14249.52") and inv.tax_total == D("712.48") and inv.total == D("14962.00")
    assert check_totals(inv) == []


def test_charges_to_lines_rejects_inconsistent_amount():
    ctx = make_ctx(SEP, 250.0)
    ch = only(FixedEnergy("e", {"price_per_mwh": 45.5}).compute(ctx))
    ch.amount += D("0.01")
    with pytest.raises(PricingError, match="2184.01"):
        charges_to_lines([ch], ctx.money, SEP)


def test_rounding_mode_and_precision_follow_contract():
    # 48.000 MWh x 45.123457 = 2,165.925936: half-up 2,165.93, down 2,165.92, JPY-style 0 places 2,166
    for overrides, expected in (({}, "2165.93"), ({"rounding": "down"}, "2165.92"), ({"precision": 0}, "2166")):
        ctx = make_ctx(SEP, 250.0, contract_kw=overrides)
        assert only(FixedEnergy("e", {"price_per_mwh": "45.123457"}).compute(ctx)).amount == D(expected)


def test_build_components_errors_name_contract_component_and_field():
    with pytest.raises(PricingError, match=r"ppa-a.*#1 'fixed_energy'.*price_per_mwh"):
        build_components(_contract_with([{"kind": "fixed_energy"}]))
    with pytest.raises(PricingError, match=r"#2 'demand'.*pric_per_kw.*Extra inputs"):
        build_components(_contract_with([{"kind": "capacity", "contracted_kw": 1, "price_per_kw_month": 1},
                                         {"kind": "demand", "price_per_kw_month": 1, "pric_per_kw": 2}]))
    with pytest.raises(PricingError, match="'carbon_adder'"):
        build_components(_contract_with([{"kind": "carbon_adder"}]))
    with pytest.raises(PricingError, match="duplicate"):
        build_components(_contract_with([{"kind": "fixed_energy", "id": "e", "price_per_mwh": 1},
                                         {"kind": "capacity", "id": "e", "contracted_kw": 1, "price_per_kw_month": 1}]))
    comps = build_components(_contract_with([{"kind": "fixed_energy", "price_per_mwh": 1},
                                             {"kind": "fixed_energy", "price_per_mwh": 2}]))
    assert [c.component_id for c in comps] == ["fixed_energy-1", "fixed_energy-2"]


def test_context_rejects_nan_and_wrong_shapes():
    with pytest.raises(PricingError, match="NaN"):
        make_ctx(SEP, np.r_[np.full(191, 1.0), np.nan])
    with pytest.raises(PricingError, match="energy_kwh has shape"):
        make_ctx(SEP, np.ones(10))
    with pytest.raises(PricingError, match=r"availability\['gt1'\]"):
        make_ctx(SEP, 1.0, availability={"gt1": np.ones(5)})


# --------------------------------------------------------------------------- plugins


class CarbonAdder(PriceComponent):
    """Test plugin: $ per tonne CO2 on the energy of the sources, with an emission factor."""

    kind = "carbon_adder"

    class Config(EscalatingConfig):
        price_per_tonne: Decimal
        kg_per_mwh: Decimal

    def compute(self, ctx: PricingContext) -> list[Charge]:
        mwh = Decimal(repr(float(ctx.energy_kwh.sum()))) / 1000
        tonnes = mwh * self.config.kg_per_mwh / 1000
        return [self.charge(ctx, description="Carbon adder", charge_type="other", quantity=tonnes, unit="each",
                            unit_price=self.config.price_per_tonne, determinants={"tonnes_co2": tonnes})]


class _TestPlugin:
    @hookimpl
    def kwhub_register_price_components(self, register):
        register(CarbonAdder)


def test_plugin_component_is_usable_through_the_registry():
    from kwhub.hub.registry import load_plugins

    reg = load_plugins(use_entry_points=False, extra=[("test", _TestPlugin())])
    assert not reg.plugins["core_price_components"].error
    assert set(builtin_components()) <= set(reg.price_components)
    assert reg.component("carbon_adder") is CarbonAdder
    assert "price_component:carbon_adder" in reg.plugins["test"].extensions
    ct = _contract_with([{"kind": "fixed_energy", "price_per_mwh": "45.50"},
                         {"kind": "carbon_adder", "price_per_tonne": 50, "kg_per_mwh": 400}])
    comps = build_components(ct, reg)
    ctx = make_ctx(SEP, 250.0)
    charges = price_contract(comps, ctx)
    # 48 MWh x 400 kg/MWh = 19,200 kg = 19.200 t x $50 = 960.00
    assert [c.amount for c in charges] == [D("2184.00"), D("960.00")]
    with pytest.raises(PricingError, match="no plugin registers price component 'nope'"):
        build_components(_contract_with([{"kind": "nope"}]), reg)


def test_surcharge_without_base_is_empty():
    ctx = make_ctx(SEP, 250.0)
    assert PercentageSurcharge("s", {"percent": 3}).compute(ctx) == []
