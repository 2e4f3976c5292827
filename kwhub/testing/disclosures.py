"""A sample disclosure for ESG writer checks, every figure worked out by hand.

Not built by kwhub's inventory code: the kit checks writers against figures a person can
follow. Campus ``kit``, October 2026, GWP set AR5 (CH4 28, N2O 265, 100-year), region ERCT.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from kwhub.core.carbon_amounts import GasKg
from kwhub.core.disclosure import (
    CfeSummary,
    Disclosure,
    HourlyTable,
    InventoryRow,
    PartyInventory,
    RunLineage,
)

# Natural gas per MMBtu (illustrative factors): 53.06 kg CO2, 0.001 kg CH4, 0.0001 kg N2O.
# Grid: location-based 0.319 kg CO2e/kWh; market-based (residual mix) 0.400 kg CO2e/kWh.


def sample_disclosure() -> Disclosure:
    """Two tenants and the operator; Scope 1, Scope 2 (both methods), Scope 3 cat. 3 and one hourly CFE table."""
    return Disclosure(
        campus="kit", period="2026-10", start=date(2026, 10, 1), end=date(2026, 10, 31), gwp_set="AR5",
        region="ERCT", consolidation="operational control",
        parties=[
            PartyInventory(party="tenant_a", name="Tenant A Inc.", roles=["tenant"], rows=[
                # gt1, 5460 MMBtu: CO2 5460 x 53.06 = 289707.6 kg; CH4 5460 x 0.001 = 5.46 kg;
                # N2O 5460 x 0.0001 = 0.546 kg. CO2e = 289707.6 + 5.46 x 28 + 0.546 x 265
                # = 289707.6 + 152.88 + 144.69 = 290005.17 kg.
                InventoryRow(scope="1", asset="gt1", energy_kwh=D("600000"), fuel_mmbtu=D("5460"),
                             kg=GasKg(co2=D("289707.6"), ch4=D("5.46"), n2o=D("0.546")), kg_co2e=D("290005.17"),
                             method="metered fuel", factors=["ng_co2@2025", "ng_ch4@2025", "ng_n2o@2025"]),
                # grid 20000 kWh: location 20000 x 0.319 = 6380 kg CO2e (published as CO2e only)
                InventoryRow(scope="2", category="location", asset="grid", energy_kwh=D("20000"),
                             kg=GasKg(co2e_reported=D("6380")), kg_co2e=D("6380"), method="grid average",
                             factors=["grid_lbm@2024"]),
                # market: 20000 x 0.400 = 8000 kg CO2e before certificates; 5000 kWh of hourly
                # matched certificates take 5000 x 0.400 = 2000 kg off: 6000 kg.
                InventoryRow(scope="2", category="market", asset="grid", energy_kwh=D("20000"),
                             kg=GasKg(co2e_reported=D("6000")), kg_co2e=D("6000"), method="residual mix, hourly "
                             "certificates", factors=["residual@2024"]),
                # cat. 3a, upstream of the gas: 5460 MMBtu x 10.2 kg CO2e/MMBtu = 55692 kg
                InventoryRow(scope="3", category="3a", asset="gt1", fuel_mmbtu=D("5460"),
                             kg=GasKg(co2e_reported=D("55692")), kg_co2e=D("55692"), method="upstream fuel",
                             factors=["ng_wtt@2025"]),
            ], cfe=CfeSummary(hours=2, load_kwh=D("1000"), onsite_cfe_kwh=D("300"), certificates_kwh=D("200"),
                              matched_kwh=D("500"), surplus_kwh=D("0"), score_pct=D("50.00")),
               hourly=HourlyTable(
                   # hour 1: load 600, on-site CFE 200, certificates 100; 300 kWh from the grid at
                   # 0.400 = 120 kg before, (300 - 100) x 0.400 = 80 kg after.
                   # hour 2: load 400, on-site 100, certificates 100; 300 x 0.400 = 120, 200 x 0.400 = 80.
                   # CFE score (200 + 100 + 100 + 100) / 1000 = 50 %.
                   hour_start=["2026-10-01T05:00:00Z", "2026-10-01T06:00:00Z"], load_kwh=["600.000", "400.000"],
                   onsite_cfe_kwh=["200.000", "100.000"], certificates_kwh=["100.000", "100.000"],
                   grid_cfe_share=["0", "0"], score_kwh=["300.000", "200.000"],
                   market_kg_co2e_before=["120.000", "120.000"], market_kg_co2e=["80.000", "80.000"])),
            PartyInventory(party="tenant_b", name="Tenant B LLC", roles=["tenant"], rows=[
                # gt1, 2730 MMBtu: CO2 144853.8, CH4 2.73, N2O 0.273 kg;
                # CO2e = 144853.8 + 2.73 x 28 + 0.273 x 265 = 144853.8 + 76.44 + 72.345 = 145002.585 kg
                InventoryRow(scope="1", asset="gt1", energy_kwh=D("300000"), fuel_mmbtu=D("2730"),
                             kg=GasKg(co2=D("144853.8"), ch4=D("2.73"), n2o=D("0.273")), kg_co2e=D("145002.585"),
                             method="metered fuel", factors=["ng_co2@2025", "ng_ch4@2025", "ng_n2o@2025"]),
                # no grid imports: Scope 2 is zero by both methods (rows kept so the zero is explicit)
                InventoryRow(scope="2", category="location", asset="grid", kg=GasKg(), kg_co2e=D("0"),
                             method="grid average"),
                InventoryRow(scope="2", category="market", asset="grid", kg=GasKg(), kg_co2e=D("0"),
                             method="residual mix"),
            ]),
            PartyInventory(party="operator", name="Campus Operator", roles=["operator"], rows=[
                # station service of gt1, 91 MMBtu: CO2 91 x 53.06 = 4828.46; CH4 0.091; N2O 0.0091 kg;
                # CO2e = 4828.46 + 0.091 x 28 + 0.0091 x 265 = 4828.46 + 2.548 + 2.4115 = 4833.4195
                # -> 4833.420 kg to the gram (half up: 4833.4195 -> 4833.420)
                InventoryRow(scope="1", asset="gt1", energy_kwh=D("10000"), fuel_mmbtu=D("91"),
                             kg=GasKg(co2=D("4828.46"), ch4=D("0.091"), n2o=D("0.0091")), kg_co2e=D("4833.420"),
                             method="metered fuel"),
                InventoryRow(scope="2", category="location", asset="grid", kg=GasKg(), kg_co2e=D("0"),
                             method="grid average"),
                InventoryRow(scope="2", category="market", asset="grid", kg=GasKg(), kg_co2e=D("0"),
                             method="residual mix"),
            ]),
        ],
        runs=[RunLineage(run_id="run-2026-10-a", tenant="tenant_a", statement_hash="sha256:aa", activity_id="act-a",
                         factors_id="fac-2026"),
              RunLineage(run_id="run-2026-10-b", tenant="tenant_b", statement_hash="sha256:bb", activity_id="act-b",
                         factors_id="fac-2026")],
        factors=[{"factor_id": "ng_co2", "version": "2025"}, {"factor_id": "grid_lbm", "version": "2024"}],
        notes=["sample disclosure of the kwhub plugin test kit; figures by hand"],
    )


# Totals by hand, t CO2e (kg / 1000):
#   tenant_a: Scope 1 290.00517, Scope 2 location 6.38, market 6.0, Scope 3 cat. 3 55.692
#   tenant_b: Scope 1 145.002585, Scope 2 0, 0
#   operator: Scope 1 4.83342, Scope 2 0, 0
EXPECTED_TCO2E: dict[str, dict[str, D]] = {
    "tenant_a": {"scope1": D("290.00517"), "scope2_location": D("6.38"), "scope2_market": D("6.0"),
                 "scope3_cat3": D("55.692")},
    "tenant_b": {"scope1": D("145.002585"), "scope2_location": D("0"), "scope2_market": D("0"),
                 "scope3_cat3": D("0")},
    "operator": {"scope1": D("4.83342"), "scope2_location": D("0"), "scope2_market": D("0"), "scope3_cat3": D("0")},
}
