"""Daily index CSV loading and the fuel-indexed energy price (floor and cap days).

Index file tests/data/pricing/henry_hub_daily.csv (USD/MMBtu): Oct 29 3.150, Oct 30
3.200, Nov 2 3.000, Nov 3 2.000, Nov 4 4.500, Nov 5 3.100 (no weekend rows).
Contract price = 8.5 MMBtu/MWh x index + 4.00 $/MWh adder, floor 25.00, cap 40.00.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from kwhub.core.pricing import IndexSeries, IndexSeriesError, PricingError, load_index_csv
from kwhub.core.pricing.components import FuelIndexed
from tests.fixtures.pricing import PRICING_DATA, make_ctx, period

D = Decimal
HH = PRICING_DATA / "henry_hub_daily.csv"
FUEL = {"index": "henry_hub", "heat_rate_mmbtu_per_mwh": "8.5", "adder_per_mwh": "4.00",
        "floor_per_mwh": "25.00", "cap_per_mwh": "40.00"}


def test_load_index_csv():
    s = load_index_csv(HH)
    assert s.name == "henry_hub"  # from the name column
    assert len(s) == 6 and s.days[0] == date(2026, 10, 29)
    assert s.price_on(date(2026, 11, 3)) == (D("2.000"), date(2026, 11, 3))
    assert s.price_on(date(2026, 11, 1), missing="previous") == (D("3.200"), date(2026, 10, 30))
    with pytest.raises(IndexSeriesError, match="2026-11-01"):
        s.price_on(date(2026, 11, 1))
    assert np.allclose(s.values, [3.15, 3.2, 3.0, 2.0, 4.5, 3.1])
    assert load_index_csv(HH, name="hh").name == "hh"


def _nov_ctx(series: IndexSeries):
    # Nov 1 (DST end, 100 intervals) .. Nov 4; energy per interval differs by day
    per = period(date(2026, 11, 1), date(2026, 11, 4))
    ctx = make_ctx(per, 0.0, index_series={series.name: series})
    per_day = {0: 250.0, 1: 250.0, 2: 200.0, 3: 300.0}
    ctx.energy_kwh[:] = np.array([per_day[i] for i in range(4)])[ctx.calendar.day_index]
    return ctx


def test_fuel_indexed_daily_prices_with_floor_and_cap():
    ctx = _nov_ctx(load_index_csv(HH))
    assert ctx.n_intervals == 100 + 3 * 96
    lines = {c.determinants["day"]: c for c in FuelIndexed("fuel", {**FUEL, "missing_index": "previous"}).compute(ctx)}
    assert list(lines) == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    # Nov 1 (Sunday, 25 h): no publication -> Oct 30 index 3.200; 8.5 x 3.2 + 4 = 31.20
    #   100 intervals x 250 kWh = 25,000 kWh = 25.000 MWh x 31.20 = 780.00
    n1 = lines["2026-11-01"]
    assert (n1.quantity, n1.unit_price, n1.amount) == (D("25.000"), D("31.20"), D("780.00"))
    assert n1.determinants["index_day"] == "2026-10-30" and n1.determinants["intervals"] == "100"
    # Nov 2: 8.5 x 3.000 + 4 = 29.50 (inside); 96 x 250 = 24.000 MWh x 29.50 = 708.00
    assert lines["2026-11-02"].amount == D("708.00")
    assert lines["2026-11-02"].determinants["price_limit"] == "none"
    # Nov 3: 8.5 x 2.000 + 4 = 21.00 -> floor 25.00; 96 x 200 = 19.200 MWh x 25 = 480.00
    n3 = lines["2026-11-03"]
    assert (n3.unit_price, n3.amount, n3.determinants["price_limit"]) == (D("25.00"), D("480.00"), "floor")
    assert n3.determinants["formula_price"] == "21.0000"
    # Nov 4: 8.5 x 4.500 + 4 = 42.25 -> cap 40.00; 96 x 300 = 28.800 MWh x 40 = 1,152.00
    n4 = lines["2026-11-04"]
    assert (n4.unit_price, n4.amount, n4.determinants["price_limit"]) == (D("40.00"), D("1152.00"), "cap")
    assert sum(c.amount for c in lines.values()) == D("3120.00")


def test_fuel_indexed_missing_day_is_an_error_by_default():
    ctx = _nov_ctx(load_index_csv(HH))
    with pytest.raises(PricingError, match="no price for 2026-11-01"):
        FuelIndexed("fuel", FUEL).compute(ctx)
    # a day without energy needs no price
    ctx.energy_kwh[ctx.calendar.day_index == 0] = 0.0
    assert len(FuelIndexed("fuel", FUEL).compute(ctx)) == 3


def test_fuel_indexed_unknown_series_and_bad_bounds():
    ctx = _nov_ctx(load_index_csv(HH))
    with pytest.raises(PricingError, match="'tetco_m3' is not loaded"):
        FuelIndexed("fuel", {**FUEL, "index": "tetco_m3"}).compute(ctx)
    with pytest.raises(PricingError, match="above cap"):
        FuelIndexed("fuel", {**FUEL, "floor_per_mwh": 50})


def test_fuel_indexed_adder_escalates():
    s = IndexSeries.from_mapping("hh", {date(2026, 11, 2): "3.000"})
    per = period(date(2026, 11, 2), date(2026, 11, 2))
    ctx = make_ctx(per, 250.0, index_series={"hh": s}, contract_kw={"start": "2025-11"})
    ch = FuelIndexed("f", {"index": "hh", "heat_rate_mmbtu_per_mwh": 8.5, "adder_per_mwh": 4,
                           "escalation_pct_per_year": 5}).compute(ctx)[0]
    # contract year 2: adder 4 x 1.05 = 4.20; 8.5 x 3 + 4.20 = 29.70; 24.000 MWh x 29.70 = 712.80
    assert ch.amount == D("712.80")


@pytest.mark.parametrize(
    ("content", "line", "field", "reason"),
    [
        ("day,usd\n2026-11-02,3.1\n", 1, "price", "no price column"),
        ("date,price\n2026-11-02,3.1\n2026-13-01,3.0\n", 3, "date", "is not a date"),
        ("date,price\n2026-11-02,3.1\n# note\n2026-11-03,abc\n", 4, "price", "'abc' is not a number"),
        ("date,price\n2026-11-02,3.1\n2026-11-02,3.2\n", 3, "price", "on line 2"),
        ("date,price\n2026-11-02\n", 2, "", "1 fields, header has 2"),
        ("date,price\n2026-11-02,NaN\n", 2, "price", "not a finite number"),
        ("date,price\n", 2, "", "no data rows"),
        ("", 1, "", "empty file"),
    ],
)
def test_bad_index_csv_names_file_line_and_field(tmp_path, content, line, field, reason):
    path = tmp_path / "gas.csv"
    path.write_text(content)
    with pytest.raises(IndexSeriesError) as info:
        load_index_csv(path)
    err = info.value
    assert (err.line, err.field) == (line, field)
    assert reason in str(err) and str(path) in str(err)
    assert str(err).startswith(f"{path}:line {line}")


def test_index_csv_accepts_repeated_identical_rows_and_us_dates(tmp_path):
    path = tmp_path / "gas.csv"
    path.write_text("trade_date,index\n11/02/2026,3.10\n11/02/2026,3.10\n11/03/2026,-0.25\n")
    s = load_index_csv(path)
    assert s.name == "gas" and s.days == (date(2026, 11, 2), date(2026, 11, 3))
    assert s.prices == (D("3.10"), D("-0.25"))  # negative hub prices happen (e.g. Waha)
    with pytest.raises(IndexSeriesError, match="file not found"):
        load_index_csv(tmp_path / "missing.csv")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("date,price,name\n2026-11-02,3,a\n2026-11-03,3,b\n")
    with pytest.raises(IndexSeriesError, match="one index per file"):
        load_index_csv(mixed)


def test_daily_lines_carry_their_own_day_as_period():
    """A fuel-indexed line bills one local day; its invoice line used to carry the whole month."""
    from kwhub.core.pricing.lines import charges_to_lines

    ctx = _nov_ctx(load_index_csv(HH))
    charges = FuelIndexed("fuel", {**FUEL, "missing_index": "previous"}).compute(ctx)
    lines = charges_to_lines(charges, ctx.money, ctx.period)
    assert [(ln.period_start, ln.period_end) for ln in lines] == [(date(2026, 11, d), date(2026, 11, d)) for d in range(1, 5)]
