"""One clear contract model: which energy each contract and component bills, refused when ambiguous."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from kwhub.core.allocation import UNMETERED, allocate
from kwhub.core.campus import (
    AllocationSpec,
    Asset,
    Campus,
    Channel,
    ComponentSpec,
    Contract,
    Party,
    Site,
)
from kwhub.core.contract_energy import EnergyPlanError, plan_energy
from kwhub.core.intervals import IntervalMatrix
from kwhub.hub.config import ConfigError, parse_config


def _campus(contracts: list[Contract], **kw) -> Campus:  # noqa: ANN003
    return Campus(
        parties=[Party(id=p, name=p) for p in ("op", "ipp", "a", "b")],
        assets=[Asset(id="gt1", kind="gas_turbine"), Asset(id="pv", kind="solar"), Asset(id="grid", kind="grid_tie"),
                Asset(id="bess", kind="battery")],
        channels=[Channel(id="a.load", party="a", role="tenant_load"), Channel(id="b.load", party="b", role="tenant_load"),
                  Channel(id="gt1.net", asset="gt1", role="generation"), Channel(id="pv.net", asset="pv", role="generation"),
                  Channel(id="grid.in", asset="grid", role="grid_import"),
                  Channel(id="bess.out", asset="bess", role="battery_discharge")],
        contracts=contracts, **kw)


def _k(cid: str, buyer: str = "a", sources: list[str] | None = None, comps: list[dict] | None = None,
       **kw) -> Contract:  # noqa: ANN003
    return Contract(id=cid, seller="op", buyer=buyer, sources=sources or [],
                    components=[ComponentSpec(**c) for c in (comps or [{"kind": "fixed_energy", "price_per_mwh": "1"}])],
                    **kw)


FE = {"kind": "fixed_energy", "price_per_mwh": "60"}
GRID = {"kind": "grid_pass_through"}


def test_a_rest_contract_bills_everything_once_and_the_pass_through_takes_the_grid():
    plan = plan_energy(_campus([_k("k", comps=[FE, GRID])]))
    ce = plan.of("k")
    assert ce.basis == "allocation" and set(ce.scope) == {"gt1", "pv", "grid", "bess", UNMETERED}
    assert ce.claims == {"grid_pass_through": ("grid",), "fixed_energy": ("gt1", "pv", "bess", UNMETERED)}
    assert ce.unpriced == ()


def test_sources_by_kind_alias_and_id():
    plan = plan_energy(_campus([_k("k", sources=["solar", "battery"], comps=[FE])]))
    assert plan.of("k").scope == ("pv", "bess")
    with pytest.raises(EnergyPlanError, match="'wind' names no source"):
        plan_energy(_campus([_k("k", sources=["wind"])]))


def test_two_components_pricing_the_same_energy_are_refused():
    with pytest.raises(EnergyPlanError, match="would all price the same energy"):
        plan_energy(_campus([_k("k", comps=[FE, {"kind": "tou_energy", "prices": {"off_peak": "1"}}])]))
    with pytest.raises(EnergyPlanError, match="both price 'grid' energy"):
        plan_energy(_campus([_k("k", comps=[{**FE, "sources": ["grid", "gt1"]}, GRID])]))


def test_two_contracts_of_one_buyer_never_sell_the_same_source():
    with pytest.raises(EnergyPlanError, match="both sell 'pv' energy to 'a'"):
        plan_energy(_campus([_k("k1", sources=["pv"]), _k("k2", sources=["solar"])]))
    with pytest.raises(EnergyPlanError, match="all bill the rest of 'a'"):
        plan_energy(_campus([_k("k1"), _k("k2")]))
    plan = plan_energy(_campus([_k("solar_ppa", sources=["pv"]), _k("firm")]))
    assert plan.of("solar_ppa").scope == ("pv",) and "pv" not in plan.of("firm").scope
    assert plan.billed_by("a")["pv"] == "solar_ppa" and plan.billed_by("a")["gt1"] == "firm"


def test_not_billed_must_say_why_and_must_not_be_priced():
    ok = plan_energy(_campus([_k("k", sources=["gt1"], not_billed={"grid": "billed by the utility"})]))
    assert ok.declared("a") == {"grid": "billed by the utility"}
    with pytest.raises(EnergyPlanError, match="declared not billed, but a component prices it"):
        plan_energy(_campus([_k("k", comps=[FE, GRID], not_billed={"grid": "x"})]))
    with pytest.raises(EnergyPlanError, match="give the reason"):
        plan_energy(_campus([_k("k", sources=["gt1"], not_billed={"grid": " "})]))


def test_an_ipp_sells_metered_output_and_a_campus_without_supply_meters_bills_load():
    plan = plan_energy(_campus([_k("ipp", buyer="op", sources=["gt1"])]))
    assert plan.of("ipp").basis == "metered_sources" and plan.of("ipp").scope == ("gt1",)
    sub = Campus(parties=[Party(id="op", name="op"), Party(id="a", name="a")],
                 channels=[Channel(id="a.load", party="a", role="tenant_load")], contracts=[_k("k")])
    assert plan_energy(sub).of("k").basis == "metered_load"
    with pytest.raises(EnergyPlanError, match="cannot select sources"):
        plan_energy(Campus(parties=sub.parties, channels=sub.channels,
                           contracts=[_k("k", comps=[{**FE, "sources": ["gt1"]}])]))


def test_config_refuses_double_billing_at_load(tmp_path):
    data = tomllib.loads("""
[[parties]]
id = "op"
name = "op"
[[parties]]
id = "a"
name = "a"
[[assets]]
id = "grid"
kind = "grid_tie"
[[channels]]
id = "a.load"
party = "a"
role = "tenant_load"
[[channels]]
id = "grid.in"
asset = "grid"
role = "grid_import"
[[contracts]]
id = "k"
seller = "op"
buyer = "a"
sources = ["grid"]
[[contracts.components]]
kind = "fixed_energy"
price_per_mwh = "60"
sources = ["grid"]
[[contracts.components]]
kind = "grid_pass_through"
""")
    with pytest.raises(ConfigError, match="both price 'grid' energy"):
        parse_config(data, "kwhub.toml", tmp_path)


def test_contract_time_zone_defaults_to_its_site_then_the_hub(tmp_path):
    campus = Campus(timezone="Europe/Berlin", sites=[Site(id="x", timezone="America/Chicago"), Site(id="y")],
                    contracts=[Contract(id="k1", seller="a", buyer="b", site="x"), Contract(id="k2", seller="a", buyer="b"),
                               Contract(id="k3", seller="a", buyer="b", timezone="Asia/Tokyo")])
    assert [c.timezone for c in campus.contracts] == ["America/Chicago", "Europe/Berlin", "Asia/Tokyo"]
    assert campus.sites[1].timezone == "Europe/Berlin"
    data = {"hub": {"timezone": "America/Denver"}, "sites": [{"id": "s"}],
            "parties": [{"id": "a", "name": "a"}, {"id": "b", "name": "b"}],
            "contracts": [{"id": "k", "seller": "a", "buyer": "b"}]}
    assert parse_config(data, "t", tmp_path).campus.contracts[0].timezone == "America/Denver"


def _matrix(rows: dict[str, float]) -> IntervalMatrix:
    ids = list(rows)
    vals = np.array([[rows[i]] for i in ids], dtype=np.float64)
    return IntervalMatrix(ids, 0, 15, vals, np.zeros(vals.shape, np.uint8))


def test_fixed_shares_split_only_the_named_generators_and_the_grid_covers_the_rest():
    spec = AllocationSpec(method="fixed_shares", shares={"a": 0.5, "b": 0.5}, share_sources=["gt1"])
    rows = {"a.load": 30.0, "b.load": 90.0, "gt1.net": 100.0, "pv.net": 0.0, "grid.in": 20.0, "bess.out": 0.0}
    res = allocate(_matrix(rows), _campus([], allocation=spec))
    assert res.sources == ["gt1", "pv", "grid", "bess", UNMETERED]
    # a owns 50 of gt1 and uses 30 of it; b uses its 50 plus the 20 a left; the grid covers b's last 20
    assert res.tenant_totals("a") == pytest.approx({"gt1": 30.0, "pv": 0.0, "grid": 0.0, "bess": 0.0, UNMETERED: 0.0})
    assert res.tenant_totals("b") == pytest.approx({"gt1": 70.0, "pv": 0.0, "grid": 20.0, "bess": 0.0, UNMETERED: 0.0})


def test_fixed_shares_unused_share_to_export_instead():
    spec = AllocationSpec(method="fixed_shares", shares={"a": 0.5, "b": 0.5}, share_sources=["gt1"],
                          unused_share="export")
    rows = {"a.load": 30.0, "b.load": 90.0, "gt1.net": 100.0, "pv.net": 0.0, "grid.in": 60.0, "bess.out": 0.0}
    res = allocate(_matrix(rows), _campus([], allocation=spec))
    # b keeps to its 50 of gt1; a's unused 20 is not b's; the grid covers b's other 40
    assert res.tenant_totals("b")["gt1"] == pytest.approx(50.0)
    assert res.tenant_totals("b")["grid"] == pytest.approx(40.0)
    assert res.tenant_totals("a") == pytest.approx({"gt1": 30.0, "pv": 0.0, "grid": 0.0, "bess": 0.0, UNMETERED: 0.0})
