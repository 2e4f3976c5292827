"""Hand-computed emissions: every expectation is worked out with Decimal here, never with kwhub.

Factors: EPA 40 CFR 98 Subpart C natural gas (53.06 kg CO2, 0.001 kg CH4, 0.0001 kg N2O per
MMBtu), eGRID2024 RFCE 621.0 lb CO2e/MWh (AR5, as reported), a residual mix of 1,100 lb
CO2e/MWh given as an operator factor, AR5 GWPs (CH4 28, N2O 265), 1 lb = 0.45359237 kg.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import numpy as np
import pytest

from kwhub.core.allocation import allocate
from kwhub.core.campus import AllocationSpec, Asset, Campus, Channel, Party, Site
from kwhub.core.carbon_activity import build_activity
from kwhub.core.carbon_factors import resolve_factors
from kwhub.core.carbon_period import EmissionsInput, compute_period
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.emissions import M_LOC, M_MKT, M_TD
from kwhub.core.factors import GASES, Factor, FactorLibrary
from kwhub.core.intervals import IntervalMatrix

T0 = 1_790_000_000 - 1_790_000_000 % 3600  # an hour boundary
LB = D("0.45359237")
RFCE = D("621.0") * LB / 1000  # kg CO2e per kWh
RESIDUAL = D("1100") * LB / 1000
AR5 = {"ch4": D(28), "n2o": D(265)}
RM_FACTOR = Factor(factor_id="test_rfce_rm", version="test", source="test residual mix", region="RFCE",
                   activity="grid_residual_mix", gas="co2e", value=1100.0, unit="lb/MWh", kind="residual_mix")
GGL = Factor(factor_id="test_ggl", version="test", source="test", activity="grid_loss_rate", gas="none",
             value=0.05, unit="fraction")


def close(x: float, y: D) -> None:
    """The engine works in float64: equal to the hand-computed Decimal within 1e-9 relative."""
    assert abs(D(repr(float(x))) - y) <= D("1e-9") * max(D(1), abs(y)), (x, y)


def campus(sources: list[tuple[str, str, dict]], tenants: int = 1, charge: bool = False) -> Campus:
    assets = []
    chans = []
    for sid, kind, extra in sources:
        assets.append(Asset(id=sid, kind=kind, owners=extra.pop("owners", []), **extra))
        role = {"grid_tie": "grid_import", "battery": "battery_discharge"}.get(kind, "generation")
        chans.append(Channel(id=f"{sid}.out", asset=sid, role=role))
        if kind not in ("grid_tie", "battery", "solar"):
            chans.append(Channel(id=f"{sid}.fuel", asset=sid, role="fuel", unit="MMBtu"))
        if kind == "battery" and charge:
            chans.append(Channel(id=f"{sid}.charge", asset=sid, role="battery_charge"))
    for t in range(tenants):
        chans.append(Channel(id=f"t{t}.load", party=f"t{t}", role="tenant_load"))
    parties = [Party(id=f"t{t}", name=f"Tenant {t}", roles=["tenant"]) for t in range(tenants)]
    parties.append(Party(id="op", name="Operator", roles=["operator"]))
    return Campus(sites=[Site(id="s", grid_region="RFCE")], assets=assets, channels=chans, parties=parties,
                  allocation=AllocationSpec(method="pro_rata"))


def run(c: Campus, rows: dict[str, list[float]], settings: EmissionsSettings | None = None,
        certificates: dict[str, np.ndarray] | None = None, factors: list[Factor] | None = None):
    ids = [ch.id for ch in c.channels if ch.id in rows]
    values = np.array([rows[i] for i in ids], dtype=np.float64)
    m = IntervalMatrix(ids, T0, 15, values, np.zeros(values.shape, np.uint8))
    balance = [ch.id for ch in c.channels if ch.role not in ("fuel",) and ch.id in rows]
    sub = IntervalMatrix(balance, T0, 15, values[[ids.index(i) for i in balance]],
                         np.zeros((len(balance), values.shape[1]), np.uint8))
    alloc = allocate(sub, c)
    act = build_activity(m, c, alloc)
    settings = settings or EmissionsSettings()
    lib = FactorLibrary(factors if factors is not None else [RM_FACTOR, GGL], editions={"grid_location": "eGRID2024"})
    fs = resolve_factors(lib, settings, "RFCE", {"natural_gas"}, date(2026, 10, 1), act.starts)
    assert alloc.kwh is not None
    inp = EmissionsInput("2026-10", act, fs, alloc.tenants, alloc.kwh, certificates_wh=certificates or {})
    return compute_period(inp, settings), alloc


def gas_of(pc, method: int, tenant: int = 0) -> dict[str, float]:
    kg = pc.tenants.kg[method, tenant].sum(axis=0)
    return {g: float(kg[i]) for i, g in enumerate(GASES)}


def test_gas_turbine_with_fuel_meter_per_gas_and_co2e():
    c = campus([("gt1", "gas_turbine", {"fuel": "natural_gas", "heat_rate_mmbtu_per_mwh": 9.8})])
    pc, _ = run(c, {"gt1.out": [1000, 1000], "gt1.fuel": [10, 9.5], "t0.load": [600, 400]})
    # the tenant takes 60 % of interval 0 and 40 % of interval 1 of the metered fuel's emissions
    fuel = D(10) * D("0.6") + D("9.5") * D("0.4")  # 9.8 MMBtu behind its energy
    co2, ch4, n2o = fuel * D("53.06"), fuel * D("0.001"), fuel * D("0.0001")
    got = gas_of(pc, M_MKT)
    close(got["co2"], co2)
    close(got["ch4"], ch4)
    close(got["n2o"], n2o)
    assert got["co2e"] == 0.0
    co2e = co2 + ch4 * AR5["ch4"] + n2o * AR5["n2o"]
    assert co2e.quantize(D("0.0001")) == D("520.5221")
    w = pc.input.factors.gwp.weights()
    close(float(pc.tenants.kg[M_MKT, 0].sum(axis=0) @ w), co2e)
    assert gas_of(pc, M_LOC) == got  # plant supply: location = the plant's own factor by default
    # Scope 1 of the whole plant: everything it burned
    close(float(pc.intensity.emitted[M_MKT, 0, 0].sum()), D("19.5") * D("53.06"))
    assert pc.input.activity.fuel_metered[0].all()


def test_gas_turbine_without_fuel_meter_uses_heat_rate():
    c = campus([("gt1", "gas_turbine", {"fuel": "natural_gas", "heat_rate_mmbtu_per_mwh": 9.8})])
    pc, _ = run(c, {"gt1.out": [1000, 500], "t0.load": [1000, 500]})
    fuel = D("1.5") * D("9.8")  # 1.5 MWh x 9.8 MMBtu/MWh
    got = gas_of(pc, M_MKT)
    close(got["co2"], fuel * D("53.06"))
    close(got["ch4"], fuel * D("0.001"))
    close(got["n2o"], fuel * D("0.0001"))
    assert not pc.input.activity.fuel_metered.any()


def test_fuel_meter_gap_falls_back_to_heat_rate_for_that_interval_only():
    c = campus([("gt1", "gas_turbine", {"fuel": "natural_gas", "heat_rate_mmbtu_per_mwh": 9.8})])
    pc, _ = run(c, {"gt1.out": [1000, 1000], "gt1.fuel": [10, float("nan")], "t0.load": [1000, 1000]})
    close(gas_of(pc, M_MKT)["co2"], (D(10) + D("9.8")) * D("53.06"))
    assert pc.input.activity.fuel_metered[0].tolist() == [True, False]


def test_turbine_without_fuel_data_or_heat_rate_has_no_figure_not_zero():
    c = campus([("gt1", "gas_turbine", {})])
    pc, _ = run(c, {"gt1.out": [1000, 1000], "t0.load": [1000, 1000]})
    assert pc.tenants.unknown_kwh[M_MKT, 0, 0] == 2000.0
    assert any("gt1" in n and "no emissions figure" in n for n in pc.intensity.notes)


def test_solar_is_zero_and_carbon_free():
    c = campus([("pv", "solar", {})])
    pc, _ = run(c, {"pv.out": [300, 300], "t0.load": [300, 300]})
    assert not pc.tenants.kg.any()
    assert not pc.tenants.unknown_kwh[:2].any()
    assert pc.hourly["t0"].onsite_cfe_kwh.sum() == 600.0


def test_battery_carries_running_average_of_gas_and_grid_charging():
    c = campus([("gt1", "gas_turbine", {"fuel": "natural_gas"}), ("grid", "grid_tie", {}), ("bess", "battery", {})],
               charge=True)
    rows = {"gt1.out": [100, 0, 0], "gt1.fuel": [1.0, 0, 0], "grid.out": [0, 200, 0], "bess.out": [0, 0, 150],
            "bess.charge": [100, 100, 0], "t0.load": [0, 100, 150]}
    pc, alloc = run(c, rows)
    b = alloc.sources.index("bess")
    assert float(alloc.kwh[0, b].sum()) == 150.0
    # charged 100 kWh of gas (1 MMBtu -> 53.06 kg CO2) and 100 kWh of grid (RFCE, CO2e as reported)
    share = D(150) / D(200)
    k = pc.tenants.kg[M_LOC, 0, b]
    close(float(k[0]), D("53.06") * share)
    close(float(k[1]), D("0.001") * share)
    close(float(k[2]), D("0.0001") * share)
    close(float(k[3]), D(100) * RFCE * share)
    km = pc.tenants.kg[M_MKT, 0, b]  # market: the grid part at the residual mix
    close(float(km[3]), D(100) * RESIDUAL * share)
    close(float(km[0]), D("53.06") * share)
    # T&D losses follow the grid part into the battery: 100 kWh x 0.05/0.95 x RFCE x 150/200
    close(float(pc.tenants.kg[M_TD, 0, b, 3]), D(100) * D("0.05") / D("0.95") * RFCE * share)
    # the grid energy the tenant took directly in interval 1
    g = alloc.sources.index("grid")
    close(float(pc.tenants.kg[M_LOC, 0, g, 3]), D(100) * RFCE)


def test_battery_discharge_before_the_first_charge_takes_the_period_average():
    c = campus([("grid", "grid_tie", {}), ("bess", "battery", {})], charge=True)
    rows = {"grid.out": [0, 200], "bess.out": [50, 0], "bess.charge": [0, 100], "t0.load": [50, 100]}
    pc, alloc = run(c, rows)
    b = alloc.sources.index("bess")
    close(float(pc.tenants.kg[M_LOC, 0, b, 3]), D(50) * RFCE)
    assert any("before the period's first charge" in n for n in pc.intensity.notes)


def test_grid_import_location_and_market_based():
    c = campus([("grid", "grid_tie", {})])
    pc, _ = run(c, {"grid.out": [400, 600], "t0.load": [400, 600]})
    close(gas_of(pc, M_LOC)["co2e"], D(1000) * RFCE)
    close(gas_of(pc, M_MKT)["co2e"], D(1000) * RESIDUAL)
    refs = pc.input.factors.refs
    assert refs["grid_location"] == ["egrid2024_rfce@eGRID2024"]
    assert refs["grid_residual_mix"] == ["test_rfce_rm@test"]


def test_without_residual_mix_the_location_factor_stands_in_with_a_note():
    c = campus([("grid", "grid_tie", {})])
    pc, _ = run(c, {"grid.out": [1000], "t0.load": [1000]}, factors=[])
    close(gas_of(pc, M_MKT)["co2e"], D(1000) * RFCE)
    assert any("no residual mix for region RFCE" in n for n in pc.intensity.notes)


def test_location_basis_grid_puts_onsite_supply_at_the_grid_average():
    c = campus([("gt1", "gas_turbine", {"fuel": "natural_gas"})])
    pc, _ = run(c, {"gt1.out": [1000], "gt1.fuel": [10], "t0.load": [1000]},
                settings=EmissionsSettings(btm_location_basis="grid"))
    close(gas_of(pc, M_LOC)["co2e"], D(1000) * RFCE)
    close(gas_of(pc, M_MKT)["co2"], D(10) * D("53.06"))


def hours_of(values_per_hour: list[float]) -> list[float]:
    return [v / 4 for v in values_per_hour for _ in range(4)]


def test_certificates_cover_some_hours_cfe_and_hourly_market_based():
    c = campus([("grid", "grid_tie", {})])
    share = Factor(factor_id="test_cfe", version="test", source="test", region="RFCE", activity="grid_cfe_share",
                   gas="none", value=0.2, unit="fraction", kind="cfe_share")
    certs = np.array([60_000, 150_000, 0, 100_000], dtype=np.float64)  # Wh claimed per hour
    pc, _ = run(c, {"grid.out": hours_of([100] * 4), "t0.load": hours_of([100] * 4)},
                certificates={"t0": certs}, factors=[RM_FACTOR, GGL, share])
    hm = pc.hourly["t0"]
    # per hour: min(load, cfe + 0.2 x max(load - cfe, 0))
    expect = [D(60) + D("0.2") * D(40), D(100), D("0.2") * D(100), D(100)]
    for got, want in zip(hm.score_kwh.tolist(), expect, strict=True):
        close(got, want)
    assert D(repr(hm.cfe_pct)).quantize(D("0.01")) == (sum(expect) / D(400) * 100).quantize(D("0.01")) == D("72.00")
    assert hm.surplus_kwh == 50.0  # hour 1: 150 kWh of certificates for 100 kWh of load, not carried over
    # market-based after matching: the uncovered 40 + 100 kWh at the residual mix
    w = pc.input.factors.gwp.weights()
    close(float(hm.market_kg.sum(axis=0) @ w), D(140) * RESIDUAL)
    close(float(hm.market_kg_before.sum(axis=0) @ w), D(400) * RESIDUAL)


def test_cfe_score_matches_the_primer_example():
    """ESG.md: loads 100, (cfe 60, grid 40 %) -> 76, (cfe 120) -> 100, (cfe 0, grid 20 %) -> 20: 65.3 %."""
    c = campus([("pv", "solar", {}), ("grid", "grid_tie", {})])
    hours = [(60, 40), (100, 0), (0, 100)]  # solar, grid per hour (the 20 kWh of solar surplus go to export)
    rows = {"pv.out": hours_of([60, 120, 0]), "grid.out": hours_of([40, 0, 100]), "t0.load": hours_of([100] * 3)}
    c.channels.append(Channel(id="grid.exp", asset="grid", role="grid_export"))
    rows["grid.exp"] = hours_of([0, 20, 0])
    sig = np.array([0.4, 0.0, 0.2])
    from kwhub.core.cfe import hourly_match

    pc, alloc = run(c, rows)
    hm = hourly_match("t0", alloc.kwh[0], pc.intensity, pc.input.activity.starts, [alloc.sources.index("grid")],
                      grid_cfe_share=np.repeat(sig, 4))
    assert hours and [round(x, 9) for x in hm.score_kwh.tolist()] == [76.0, 100.0, 20.0]
    assert round(hm.cfe_pct, 1) == 65.3


def test_edition_pin_and_gwp_set_per_report():
    # the edition pinned: eGRID2023 rev2 RFCE 599.17 lb CO2e/MWh
    lib = FactorLibrary([], editions={"grid_location": "eGRID2023 rev2"})
    fs = resolve_factors(lib, EmissionsSettings(), "RFCE", set(), date(2026, 10, 1), np.array([T0]))
    close(float(fs.grid["location"]["co2e"]), D("599.17") * LB / 1000)
    assert fs.refs["grid_location"] == ["egrid2023r2_rfce@eGRID2023 rev2"]
    # without a pin the newest edition valid on the day wins
    newest = resolve_factors(FactorLibrary([]), EmissionsSettings(), "RFCE", set(), date(2026, 10, 1), np.array([T0]))
    assert newest.refs["grid_location"] == ["egrid2024_rfce@eGRID2024"]
    # the GWP set only weighs CH4 and N2O: 10 MMBtu of gas under AR4, AR5, AR6 (fossil CH4 29.8, N2O 273)
    from kwhub.core.carbon_amounts import GasKg
    from kwhub.core.factors import gwp_set

    g = GasKg(co2=D("530.6"), ch4=D("0.01"), n2o=D("0.001"))
    assert [g.co2e(gwp_set(s)) for s in ("AR4", "AR5", "AR6")] == [D("531.148"), D("531.145"), D("531.171")]


def test_hourly_average_signal_replaces_the_annual_factor_and_marginal_stays_out(tmp_path):
    from kwhub.core.factors import FactorError, read_hourly_signal

    path = tmp_path / "grid.csv"
    t1 = T0 + 3600
    path.write_text(f"start,value\n{T0},300\n{t1},500\n")
    avg = read_hourly_signal(path, signal_id="h", version="v1", source="test", region="RFCE",
                             activity="grid_location", gas="co2e", unit="kg/MWh", kind="average")
    moer = read_hourly_signal(path, signal_id="m", version="v1", source="test", region="RFCE",
                              activity="grid_location", gas="co2e", unit="kg/MWh", kind="marginal")
    starts = T0 + 900 * np.arange(8)
    twin = avg.model_copy(update={"signal_id": "h2"})
    with pytest.raises(FactorError, match=r"2 hourly grid_location signals for co2e"):
        resolve_factors(FactorLibrary([RM_FACTOR], [avg, twin]), EmissionsSettings(), "RFCE", set(),
                        date(2026, 10, 1), starts)
    lib = FactorLibrary([RM_FACTOR], [avg, moer])  # the marginal signal never enters the inventory
    fs = resolve_factors(lib, EmissionsSettings(), "RFCE", set(), date(2026, 10, 1), starts)
    assert fs.grid["location"]["co2e"].tolist() == [0.3] * 4 + [0.5] * 4
    assert fs.refs["grid_location"] == ["h@v1"]
    with pytest.raises(FactorError, match="has no value for 4 interval"):
        resolve_factors(lib, EmissionsSettings(), "RFCE", set(), date(2026, 10, 1), T0 + 900 * np.arange(12))
    # only a marginal signal: the inventory keeps the annual factor
    only_moer = resolve_factors(FactorLibrary([], [moer]), EmissionsSettings(), "RFCE", set(), date(2026, 10, 1), starts)
    assert only_moer.refs["grid_location"] == ["egrid2024_rfce@eGRID2024"]
    bad = tmp_path / "bad.csv"
    bad.write_text("start,value\n2026-10-01T00:00:00,300\n")
    with pytest.raises(FactorError, match=r"bad.csv line 2: start '2026-10-01T00:00:00': no UTC offset"):
        read_hourly_signal(bad, signal_id="h", version="v1", source="t", region="", activity="grid_location",
                           gas="co2e", unit="kg/MWh", kind="average")


def test_operator_factor_clashing_with_a_shipped_id_or_another_is_refused():
    from kwhub.core.factors import FactorError

    dup = RM_FACTOR.model_copy(update={"factor_id": "egrid2024_rfce"})
    with pytest.raises(FactorError, match="is a shipped factor"):
        FactorLibrary([dup])
    twin = RM_FACTOR.model_copy(update={"factor_id": "other_rm"})
    lib = FactorLibrary([RM_FACTOR, twin])
    with pytest.raises(FactorError, match="fit equally"):
        lib.select("grid_residual_mix", "co2e", "RFCE", date(2026, 10, 1))
