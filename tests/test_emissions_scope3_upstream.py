"""Scope 3 category 3a/3b from operator-given upstream (well-to-tank) factors, worked by hand.

The factors come from ``[[emissions.factors]]``: the example of docs/configuration.md (kwhub ships
no well-to-tank factor); every expectation is computed with Decimal here, never with kwhub's code.

Campus (``tests/test_emissions_engine.py`` helpers): gas turbine ``gt1`` (natural gas, fuel
meter) run by the operator ``op``, a grid tie, one tenant ``t0`` that takes everything.
Two quarter-hours: gt1 delivers 1,000 + 1,000 kWh burning 10 + 9.5 MMBtu; the grid 500 + 200 kWh.
Operator factors: natural gas upstream 10.0 kg CO2 and 0.25 kg CH4 per MMBtu; grid upstream
45.5 kg CO2e per MWh (published as CO2e). AR5: CH4 28, N2O 265.
"""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal as D

from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.disclosure import InventoryRow
from kwhub.core.inventory import build_disclosure
from kwhub.hub.config import parse_config
from tests.test_docs_configuration import doc_examples
from tests.test_emissions_engine import GGL, RM_FACTOR, campus, run

# the docs' example (docs/configuration.md, "Scope 3 category 3"), behind a hub section
FACTORS_TOML = '[hub]\ntimezone = "America/New_York"\n' + doc_examples()["scope3-upstream"]

ROWS = {"gt1.out": [1000, 1000], "gt1.fuel": [10, 9.5], "grid.out": [500, 200], "t0.load": [1500, 1200]}
FUEL = D(10) + D("9.5")  # 19.5 MMBtu burned, all of it behind the tenant's energy


def _operator_factors(tmp_path):  # noqa: ANN001, ANN202
    cfg = parse_config(tomllib.loads(FACTORS_TOML), "test", tmp_path)
    return cfg.factor_library().operator


def _disclosure(factors):  # noqa: ANN001, ANN202
    c = campus([("gt1", "gas_turbine", {"fuel": "natural_gas"}), ("grid", "grid_tie", {})])
    pc, _ = run(c, ROWS, factors=factors)
    return build_disclosure(c, "test campus", "2026-10", date(2026, 10, 1), date(2026, 10, 31), [pc],
                            EmissionsSettings(), pc.input.factors.gwp)


def _row(disclosure, party: str, scope: str, category: str, asset: str) -> InventoryRow:  # noqa: ANN001
    inv = next(p for p in disclosure.parties if p.party == party)
    rows = [r for r in inv.rows if (r.scope, r.category, r.asset) == (scope, category, asset)]
    assert len(rows) == 1, [(r.scope, r.category, r.asset) for r in inv.rows]
    return rows[0]


def test_operator_upstream_factors_give_3a_to_the_plant_and_3b_to_the_tenant(tmp_path):
    d = _disclosure(_operator_factors(tmp_path) + [RM_FACTOR, GGL])
    # 3a (the operator burns the gas): 19.5 MMBtu x 10.0 = 195.0 kg CO2, x 0.25 = 4.875 kg CH4
    # CO2e (AR5) = 195.0 + 4.875 x 28 = 195.0 + 136.5 = 331.5 kg
    co2, ch4 = FUEL * D("10.0"), FUEL * D("0.25")
    assert (co2, ch4, co2 + ch4 * 28) == (D("195.00"), D("4.875"), D("331.500"))
    a = _row(d, "op", "3", "3a", "gt1")
    assert (a.kg.co2, a.kg.ch4, a.kg.n2o, a.kg.co2e_reported) == (D("195.000"), D("4.875"), D(0), D(0))
    assert a.kg_co2e == D("331.500")
    assert (a.energy_kwh, a.fuel_mmbtu, a.unknown_kwh) == (D("2000.000"), D("19.500"), D(0))
    assert a.factors == ["op_wtt_ng_co2@2026", "op_wtt_ng_ch4@2026"]
    assert "upstream factors (natural_gas)" in a.method

    # 3b of the tenant, gt1: it takes all 2,000 kWh, so the upstream of all 19.5 MMBtu: 331.5 kg CO2e
    b_gt = _row(d, "t0", "3", "3b", "gt1")
    assert (b_gt.kg.co2, b_gt.kg.ch4, b_gt.kg_co2e, b_gt.unknown_kwh) == (D("195.000"), D("4.875"), D("331.500"), D(0))
    assert b_gt.factors == ["op_wtt_ng_co2@2026", "op_wtt_ng_ch4@2026"]
    # 3b of the tenant, grid: 700 kWh = 0.7 MWh x 45.5 kg CO2e/MWh = 31.85 kg, as published (not split)
    grid_kg = (D(500) + D(200)) / 1000 * D("45.5")
    assert grid_kg == D("31.8500")
    b_grid = _row(d, "t0", "3", "3b", "grid")
    assert (b_grid.kg.co2, b_grid.kg.co2e_reported, b_grid.kg_co2e) == (D(0), D("31.850"), D("31.850"))
    assert (b_grid.energy_kwh, b_grid.unknown_kwh) == (D("700.000"), D(0))
    assert b_grid.factors == ["op_grid_upstream@2026"] and b_grid.method == "upstream of grid electricity"
    # the tenant's category 3b in total: 331.5 + 31.85 = 363.35 kg CO2e
    t0 = next(p for p in d.parties if p.party == "t0")
    assert t0.kg_co2e("3", "3b") == D("363.350")
    # the lineage lists the operator's factors with their source
    ids = {f.get("factor_id") for f in d.factors}
    assert {"op_wtt_ng_co2", "op_wtt_ng_ch4", "op_grid_upstream"} <= ids
    assert not any("fuel_upstream" in n or "grid_upstream" in n for n in d.notes)


def test_without_upstream_factors_the_energy_is_unknown_with_a_note_not_zero():
    d = _disclosure([RM_FACTOR, GGL])
    a = _row(d, "op", "3", "3a", "gt1")
    # no figure: 0 kg, but all 2,000 kWh of the plant are listed as unknown
    assert (a.kg_co2e, a.unknown_kwh, a.factors) == (D(0), D("2000.000"), [])
    b_gt, b_grid = _row(d, "t0", "3", "3b", "gt1"), _row(d, "t0", "3", "3b", "grid")
    assert (b_gt.kg_co2e, b_gt.unknown_kwh) == (D(0), D("2000.000"))
    assert (b_grid.kg_co2e, b_grid.unknown_kwh) == (D(0), D("700.000"))
    notes = " | ".join(d.notes)
    assert ("no fuel_upstream:natural_gas factor: Scope 3 category 3a/3b of natural_gas is not computed "
            "(kwhub ships no well-to-tank factor; add one in [[emissions.factors]])") in notes
    assert "no grid_upstream factor: Scope 3 category 3b of grid electricity is not computed" in notes
