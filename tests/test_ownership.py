"""Owner statements: IPP selling to the operator, integrated owner-operator, joint venture.

Revenue follows the energy: runs carry their full lines and the kWh by source behind each
line; expected amounts are computed by hand in the comments.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from kwhub.core.campus import Asset, Campus, Ownership, Party
from kwhub.core.money import MoneyPolicy
from kwhub.core.ownership import (
    AssetCosts,
    AssetOperations,
    OwnershipConfig,
    OwnershipError,
    SettledRun,
    owner_statements,
    split_largest_remainder,
)

POLICY = MoneyPolicy(currency="USD")


def _run(run_id: str, seller: str, lines: list[tuple[str, str, dict[str, str]]]) -> SettledRun:
    """A settled run: (charge type, amount, {source: kWh}) per line."""
    return SettledRun(run_id, seller, [{"charge_type": t, "amount": a, "source_asset": ""} for t, a, _ in lines],
                      [attr for _, _, attr in lines])


def _campus(gt1_owners, gt2_owners=None) -> Campus:
    parties = [Party(id=p, name=p) for p in ("ipp", "operator", "tenant_a", "jv_a", "jv_b", "jv_c", "jv_op")]
    assets = [Asset(id="gt1", kind="gas_turbine", owners=[Ownership(party=p, share=D(s)) for p, s in gt1_owners])]
    if gt2_owners:
        assets.append(Asset(id="gt2", kind="gas_turbine", owners=[Ownership(party=p, share=D(s)) for p, s in gt2_owners]))
    return Campus(parties=parties, assets=assets)


def test_largest_remainder_sums_exactly():
    parts = split_largest_remainder(D("100.00"), {"a": D(1) / 3, "b": D(1) / 3, "c": D(1) / 3}, 2)
    assert parts == {"a": D("33.34"), "b": D("33.33"), "c": D("33.33")}
    neg = split_largest_remainder(D("-0.05"), {"x": D("0.5"), "y": D("0.5")}, 2)
    assert sum(neg.values()) == D("-0.05") and sorted(neg.values()) == [D("-0.03"), D("-0.02")]
    with pytest.raises(OwnershipError, match="not a multiple"):
        split_largest_remainder(D("1.005"), {"a": D(1)}, 2)


def test_ipp_selling_to_operator():
    campus = _campus([("ipp", "1")])
    ppa = _run("IPP-1", "ipp", [("energy", "52000.00", {"gt1": "800000"})])
    # the operator resells gt1 energy to a tenant: that is not the IPP's revenue
    resale = _run("OP-7", "operator", [("energy", "61000.00", {"gt1": "800000"})])
    cfg = OwnershipConfig(costs={"gt1": AssetCosts(fuel_price_per_mmbtu=D("3.10"), fixed_om_per_period=D("1000"))})
    ops = {"gt1": AssetOperations(generation_mwh=D("800"), fuel_mmbtu=D("7840.5"))}
    st = owner_statements(campus, [ppa, resale], ops, cfg, POLICY, "2026-10")
    assert list(st) == ["ipp"]
    ipp = st["ipp"]
    assert ipp.revenue == D("52000.00")
    assert ipp.costs == D("-24305.55") - D("1000.00")  # 7840.5 x 3.10 = 24305.55
    assert ipp.net == D("26694.45")
    assert [ln.basis.get("lines") for ln in ipp.lines if ln.kind == "revenue"] == ["IPP-1#1"]


def test_integrated_owner_operator_lines_split_by_the_energy_behind_them():
    campus = _campus([("operator", "1")], gt2_owners=[("jv_a", "1")])
    run = _run("OP-1", "operator", [
        # a fuel-indexed day: 300 kWh from gt1, 100 kWh from the grid -> gt1 gets 3/4 of 1000.00 = 750.00
        ("energy", "1000.00", {"gt1": "300", "grid": "100"}),
        # a second day: 200 gt1 + 200 gt2 -> 100.01 splits 50.01 / 50.00 (the spare cent: ties by id, gt1)
        ("energy", "100.01", {"gt1": "200", "gt2": "200"}),
        # demand by the energy mix of the run: gt1 500, gt2 200, grid 100 of 800 -> 80.00 x 5/8 = 50.00
        ("demand", "80.00", {}),
        ("fee", "50.00", {}),  # a fee is not generation revenue
    ])
    cfg = OwnershipConfig(costs={"gt1": AssetCosts(variable_om_per_mwh=D("4.25"))})
    st = owner_statements(campus, [run], {"gt1": AssetOperations(generation_mwh=D("10.001"))}, cfg, POLICY, "2026-10")
    op = st["operator"]
    assert op.revenue == D("750.00") + D("50.01") + D("50.00")
    assert op.costs == D("-42.50")  # 10.001 x 4.25 = 42.504 -> 42.50
    assert op.net == D("807.51")
    # gt2 belongs to jv_a, which does not sell this contract: not its revenue
    assert "jv_a" not in st


def test_joint_venture_split_by_share_through_selling_agent():
    campus = _campus([("operator", "1")], gt2_owners=[("jv_a", "0.5"), ("jv_b", "0.3"), ("jv_c", "0.2")])
    inv = _run("JV-1", "jv_op", [("energy", "1000.01", {"gt2": "12345.6"})])
    cfg = OwnershipConfig(sellers={"gt2": "jv_op"}, costs={"gt2": AssetCosts(fixed_om_per_period=D("333.33"))})
    st = owner_statements(campus, [inv], {}, cfg, POLICY, "2026-10")
    assert sorted(st) == ["jv_a", "jv_b", "jv_c"]
    rev = {p: s.revenue for p, s in st.items()}
    assert rev == {"jv_a": D("500.01"), "jv_b": D("300.00"), "jv_c": D("200.00")}
    assert sum(rev.values()) == D("1000.01")
    costs = {p: s.costs for p, s in st.items()}
    assert sum(costs.values()) == D("-333.33")
    # 33333 cents: 16666.5 | 9999.9 | 6666.6 -> the two spare cents go to .9 and .6
    assert costs == {"jv_a": D("-166.66"), "jv_b": D("-100.00"), "jv_c": D("-66.67")}
    # without the agent, the JV operator's invoice is not the owners' revenue
    st2 = owner_statements(campus, [inv], {}, OwnershipConfig(), POLICY, "2026-10")
    assert st2 == {}


def test_unknown_asset_is_an_error():
    with pytest.raises(OwnershipError, match="unknown asset 'nope'"):
        owner_statements(_campus([("ipp", "1")]), [], {}, OwnershipConfig(costs={"nope": AssetCosts()}), POLICY, "2026-10")
