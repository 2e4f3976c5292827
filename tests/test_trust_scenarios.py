"""Money an operator can trust: hand-computed scenarios with exact Decimal expectations.

Every expected figure is worked out by hand in the comments (Decimal, half-up); kwhub's own
code only produces the values under test. Each scenario runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

import numpy as np

from kwhub.core.intervals import ChannelSeries
from kwhub.core.timeline import billing_period
from kwhub.hub.config import parse_config
from kwhub.hub.settle.owners import period_owner_statements
from kwhub.hub.settle.review import approve_runs, list_runs, reject_run
from kwhub.hub.settle.service import list_invoices, settle
from tests.fixtures.settlement import (
    A_LOAD_TOML,
    NY,
    OPERATOR_TOML,
    PPA_A_TOML,
    TENANT_A_TOML,
    set_value,
    write_period,
)

N = 2976  # quarter-hours in October 2026 (New York)
OCT = billing_period("2026-10", NY).span

HUB_NY = '[hub]\ntimezone = "America/New_York"\n'

SUBMETERED = HUB_NY + OPERATOR_TOML + TENANT_A_TOML + A_LOAD_TOML + "max_kw = 2000\n" + PPA_A_TOML + """\
tax_percent = "6"
[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "50.125"
"""


def _cfg(text: str, tmp_path: Path):  # noqa: ANN202
    return parse_config(tomllib.loads(text), "test", tmp_path)


def _signed(inv) -> D:  # noqa: ANN001
    return -inv.total if inv.is_credit else inv.total


def test_a_chain_of_two_restatements_adds_up_to_a_fresh_invoice_to_the_cent(db, tmp_path):
    cfg = _cfg(SUBMETERED, tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0})
    t10 = OCT.start_epoch + 10 * 900
    first = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    # 100 x 2976 = 297,600 kWh = 297.600 MWh x 50.125 = 14,917.20; tax 6 % = 895.032 -> 895.03
    inv = first.invoice
    assert (inv.line_total, inv.tax_total, inv.total) == (D("14917.20"), D("895.03"), D("15812.23"))

    set_value(db, "a.load", t10, 101.0)  # +1 kWh
    final = settle(db, cfg.campus, "2026-10", version="final", options=cfg.settlement_options())[0]
    adj = final.invoice
    # new: 297.601 MWh x 50.125 = 14,917.250125 -> 14,917.25; tax 895.035 -> 895.04
    # lines: +0.001 MWh x 50.125 = 0.050125 -> 0.05; tax round(new) - round(old) = 895.04 - 895.03 = 0.01
    # (the tax of the difference, 0.05 x 6 % = 0.003 -> 0.00, would lose that cent)
    assert adj.kind == "adjustment"
    assert [(ln.quantity, ln.unit_price, ln.amount) for ln in adj.lines] == [(D("0.001"), D("50.125000"), D("0.05"))]
    assert [(t.category, t.taxable_amount, t.tax_amount) for t in adj.taxes] == [("S", D("0.05"), D("0.01"))]
    assert adj.total == D("0.06")

    set_value(db, "a.load", t10, 99.0)  # restated again: -2 kWh against the final
    tu = settle(db, cfg.campus, "2026-10", version="true_up", options=cfg.settlement_options())[0]
    cn = tu.invoice
    # new: 297.599 MWh x 50.125 = 14,917.149875 -> 14,917.15; tax 895.029 -> 895.03
    # against the final: lines -0.10 (0.002 MWh credited at 50.125 = 0.10025 -> 0.10), tax 895.03 - 895.04 = -0.01
    assert cn.kind == "credit_note"
    assert [(ln.quantity, ln.unit_price, ln.amount) for ln in cn.lines] == [(D("0.002"), D("50.125000"), D("0.10"))]
    assert [(t.taxable_amount, t.tax_amount) for t in cn.taxes] == [(D("0.10"), D("0.01"))]
    assert cn.total == D("0.11")
    assert [r.number for r in cn.references] == [inv.number]

    # original + corrections == a fresh invoice on the final data: 14,917.15 + 895.03 = 15,812.18
    docs = list_invoices(db, contract_id="ppa-a")
    assert sum((_signed(d) for d in docs), D(0)) == D("15812.18")
    net_tax = sum(((-d.tax_total if d.is_credit else d.tax_total) for d in docs), D(0))
    assert net_tax == D("895.03")


GAS = HUB_NY + OPERATOR_TOML + """
[[parties]]
id = "jv"
name = "GasCo JV Partners LP"
""" + TENANT_A_TOML + """
[[assets]]
id = "gt1"
kind = "gas_turbine"
capacity_kw = 55000
fuel = "natural_gas"
owners = [{ party = "jv", share = "0.6" }, { party = "op", share = "0.4" }]
[[assets]]
id = "grid"
kind = "grid_tie"
""" + A_LOAD_TOML + """
[[channels]]
id = "gt1.net"
asset = "gt1"
role = "generation"
[[channels]]
id = "gt1.fuel"
asset = "gt1"
role = "fuel"
unit = "MMBtu"
[[channels]]
id = "grid.in"
asset = "grid"
role = "grid_import"
[[indexes]]
name = "hh"
path = "hh.csv"
[settlement]
grid_price_per_mwh = "40"
[ownership.costs.gt1]
fuel_price_per_mmbtu = "3.00"
""" + PPA_A_TOML + """
[[contracts.components]]
kind = "fuel_indexed"
sources = ["gas_turbine"]
index = "hh"
heat_rate_mmbtu_per_mwh = "9"
adder_per_mwh = "5"
[[contracts.components]]
kind = "grid_pass_through"
"""


def test_owners_of_a_co_owned_turbine_earn_its_fuel_indexed_revenue(db, tmp_path):
    # daily index: 3.000 on even days, 3.500 on odd days of October
    rows = ["date,price"] + [f"2026-10-{d:02d},{'3.500' if d % 2 else '3.000'}" for d in range(1, 32)]
    (tmp_path / "hh.csv").write_text("\n".join(rows) + "\n")
    cfg = _cfg(GAS, tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0, "gt1.net": 80.0, "grid.in": 20.0, "gt1.fuel": 0.75})
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    assert out.status == "issued", out.error or out.held_reasons
    # each local day: gt1 80 kWh x 96 = 7.680 MWh. price = 9 x index + 5:
    #   even days (15): 9 x 3.000 + 5 = 32.00 -> 7.680 x 32 = 245.76
    #   odd days (16):  9 x 3.500 + 5 = 36.50 -> 7.680 x 36.50 = 280.32
    # revenue of gt1 = 15 x 245.76 + 16 x 280.32 = 3,686.40 + 4,485.12 = 8,171.52
    gas = [ln for ln in out.invoice.lines if ln.component_id == "fuel_indexed"]
    assert len(gas) == 31 and sum((ln.amount for ln in gas), D(0)) == D("8171.52")
    # grid: 20 x 2976 = 59.520 MWh x 40 = 2,380.80, not generation revenue
    st = period_owner_statements(db, cfg, "2026-10")
    rev = {p: s.revenue for p, s in st.items()}
    # 8,171.52 split 60/40: 4,902.912 / 3,268.608 in cents 490291.2 / 326860.8 -> the spare cent to .8 (op)
    assert rev == {"jv": D("4902.91"), "op": D("3268.61")}
    # fuel: 0.75 MMBtu x 2976 = 2,232 MMBtu x 3.00 = 6,696.00, split 60/40 = 4,017.60 / 2,678.40
    costs = {p: s.costs for p, s in st.items()}
    assert costs == {"jv": D("-4017.60"), "op": D("-2678.40")}


def test_a_unit_error_is_held_by_the_review_gate(db, tmp_path):
    cfg = _cfg(SUBMETERED, tmp_path)
    write_period(db, "2026-09", {"a.load": 100.0})
    assert settle(db, cfg.campus, "2026-09", options=cfg.settlement_options())[0].status == "issued"
    write_period(db, "2026-10", {"a.load": 100_000.0})  # the meter file of October came in Wh
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    assert out.status == "held" and out.invoice is None
    reasons = " | ".join(out.held_reasons)
    # 100,000 kWh per quarter-hour = 400,000 kW > max_kw 2,000 x 1.1
    assert "physical_limit: above the physical limit: a.load 400,000.0 kW" in reasons
    assert "unit_factor: level changed by a unit factor: a.load x1,000.0 against 2026-09" in reasons
    assert "movement:" in reasons
    assert len(list_invoices(db)) == 1  # only September was issued
    reject_run(db, out.run_id, actor="clerk", reason="Wh in the kWh column; asked the vendor for a corrected file")
    assert [r["status"] for r in list_runs(db, period="2026-10")] == ["rejected"]
    write_period(db, "2026-10", {"a.load": 100.0})  # the corrected file
    again = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    assert again.status == "issued" and again.seq == 2 and again.invoice.total == D("15812.23")


def test_a_month_without_data_is_refused_even_with_missing_zero(db, tmp_path):
    cfg = _cfg(SUBMETERED.replace("[[contracts]]", '[settlement]\nmissing = "zero"\n[[contracts]]', 1), tmp_path)
    write_period(db, "2026-09", {"a.load": 100.0})  # (its last UTC day reaches into 1 October)
    out = settle(db, cfg.campus, "2026-11", options=cfg.settlement_options())[0]
    assert out.status == "error" and "no measured data at all in a.load" in out.error
    assert list_runs(db, period="2026-11") == [] and list_invoices(db) == []


def test_a_period_not_yet_ended_is_held(db, tmp_path):
    cfg = _cfg(SUBMETERED, tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0})
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options(),
                 now=datetime(2026, 10, 20, tzinfo=UTC))[0]
    assert out.status == "held" and out.held_reasons == [
        "period_ended: period 2026-10 has not ended yet; settle it once it is over (or approve an early bill on purpose)"]
    done = approve_runs(db, cfg.campus, [out.run_id], actor="clerk", reason="tenant asked for an early bill",
                        issue_date=date(2026, 10, 21))
    assert done[out.run_id].invoice.total == D("15812.23")


def test_zeroed_intervals_are_counted_and_hold_the_run(db, tmp_path):
    cfg = _cfg(SUBMETERED.replace("[[contracts]]", '[settlement]\nmissing = "zero"\n[[contracts]]', 1), tmp_path)
    starts = np.arange(OCT.start_epoch + 4 * 900, OCT.end_epoch, 900, dtype=np.int64)  # the first hour is missing
    db.intervals.write_series([ChannelSeries("a.load", 15, starts, np.full(starts.size, 100.0),
                                             np.zeros(starts.size, np.uint8))], layer="validated")
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    assert out.missing_intervals == 4 and out.status == "held"
    assert out.held_reasons[0].startswith("missing_intervals: 4 intervals without data were counted as 0 kWh")
    # (2976 - 4) x 100 = 297,200 kWh = 297.200 MWh x 50.125 = 14,897.15
    assert out.draft is not None and out.draft.line_total == D("14897.15")


def test_allocated_energy_nobody_bills_holds_the_run_unless_declared(db, tmp_path):
    # the configuration that billed no grid energy before: sources = the generator, no pass-through
    text = GAS.replace('sources = ["gas_turbine"]\nindex = "hh"', 'index = "hh"').replace(
        '[[contracts.components]]\nkind = "grid_pass_through"\n', '').replace(
        'buyer = "tenant_a"\n', 'buyer = "tenant_a"\nsources = ["gt1"]\n')
    rows = ["date,price"] + [f"2026-10-{d:02d},3.000" for d in range(1, 32)]
    (tmp_path / "hh.csv").write_text("\n".join(rows) + "\n")
    cfg = _cfg(text, tmp_path)
    write_period(db, "2026-10", {"a.load": 100.0, "gt1.net": 80.0, "grid.in": 20.0, "gt1.fuel": 0.75})
    out = settle(db, cfg.campus, "2026-10", options=cfg.settlement_options())[0]
    # 20 x 2976 = 59,520 kWh of grid import is allocated to hall A and billed by nobody
    assert out.status == "held"
    assert out.held_reasons == ["unbilled_energy: allocated energy nobody bills: grid 59,520.000 kWh (outside the "
                                "sources of every contract of this tenant); price it in a contract or declare it in "
                                "the contract's not_billed"]
    declared = _cfg(text.replace('sources = ["gt1"]\n', 'sources = ["gt1"]\n'
                                 'not_billed = { grid = "the utility bills the grid import directly" }\n'), tmp_path)
    again = settle(db, declared.campus, "2026-10", options=declared.settlement_options())[0]
    assert again.status == "issued" and again.note.startswith("supersedes")
    row = next(a for a in again.accounts if a["source"] == "grid")
    assert row["reason"] == "the utility bills the grid import directly" and row["declared"] is True


def test_an_absurd_value_refuses_the_settle_naming_channel_value_and_interval(db):
    """One interval of 1e308 kWh on tenant B's meter: both contracts read it (pro-rata allocation),
    both are refused with the channel, the value as a number and the interval named; nothing is issued."""
    from tests.fixtures.settlement import settle_campus

    write_period(db, "2026-10")
    set_value(db, "b.load", int(datetime(2026, 10, 10, 4, 0, tzinfo=UTC).timestamp()), 1e308)
    out = settle(db, settle_campus(), "2026-10", issue_date=date(2026, 11, 5))
    assert [o.status for o in out] == ["error", "error"]
    for o in out:
        assert ("channel b.load holds 1e+308 kWh in the interval starting 2026-10-10T04:00:00+00:00, which no "
                "meter can measure") in o.error
        assert "np.float64" not in o.error
    assert list_invoices(db) == []


def test_one_failing_contract_leaves_the_clean_one_a_draft(db):
    """ppa-a cannot be priced (its fixed fee gives tenant_a no share); ppa-b is computed but nothing is
    issued in this settle: it waits as a draft that says why."""
    from kwhub.core.campus import ComponentSpec
    from tests.fixtures.settlement import settle_campus

    campus = settle_campus()
    a = campus.contracts[0]
    broken = a.model_copy(update={"components": [*a.components[:2], ComponentSpec(
        kind="fixed_fee", total_amount="1000", shares={"tenant_b": "1"})]})
    campus = campus.model_copy(update={"contracts": [broken, campus.contracts[1]]})
    write_period(db, "2026-10")
    out = {o.contract_id: o for o in settle(db, campus, "2026-10", issue_date=date(2026, 11, 5))}
    assert out["ppa-a"].status == "error" and "party 'tenant_a' has no share" in out["ppa-a"].error
    assert out["ppa-b"].status == "draft"
    assert out["ppa-b"].note == "left as a draft: ppa-a failed in this settle, so nothing was issued"
    # its draft, by hand: 90 + 60 kWh of supply per quarter-hour, B takes 50/150 of each source (pro
    # rata) over 31 x 96 = 2976 quarter-hours (New York falls back on 1 November, not in October):
    # gt1 30 kWh x 2976 = 89.28 MWh x 40 $ = 3571.20; pv 20 kWh x 2976 = 59.52 MWh x 30 $ = 1785.60
    assert out["ppa-b"].draft.line_total == D("89.28") * 40 + D("59.52") * 30 == D("5356.80")
    assert list_invoices(db) == []
    assert [r["status"] for r in list_runs(db) if r["contract_id"] == "ppa-b"] == ["draft"]
