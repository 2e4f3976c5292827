"""Owner statements: IPP selling to the operator, integrated owner-operator, joint venture."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from kwhub.core.campus import Asset, Campus, Ownership, Party
from kwhub.core.invoice import Invoice, InvoiceLine, PartyRef
from kwhub.core.money import MoneyPolicy
from kwhub.core.ownership import (
    AssetCosts,
    AssetOperations,
    OwnershipConfig,
    OwnershipError,
    owner_statements,
    split_largest_remainder,
)

POLICY = MoneyPolicy(currency="USD")


def _inv(number: str, seller: str, buyer: str, lines: list[tuple[str, str]], kind: str = "invoice") -> Invoice:
    return Invoice(
        id=number, number=number, kind=kind, seller=PartyRef(id=seller, name=seller), buyer=PartyRef(id=buyer, name=buyer),
        issue_date=date(2026, 11, 3), due_date=date(2026, 12, 3), period_start=date(2026, 10, 1), period_end=date(2026, 10, 31),
        lines=[InvoiceLine(number=i, description=a, quantity=D(1), unit="each", unit_price=D(amt), amount=D(amt), source_asset=a)
               for i, (a, amt) in enumerate(lines, start=1)],
    )


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
    ppa = _inv("IPP-1", "ipp", "operator", [("gt1", "52000.00")])
    # the operator resells gt1 energy to a tenant: that is not the IPP's revenue
    resale = _inv("OP-7", "operator", "tenant_a", [("gt1", "61000.00")])
    cfg = OwnershipConfig(costs={"gt1": AssetCosts(fuel_price_per_mmbtu=D("3.10"), fixed_om_per_period=D("1000"))})
    ops = {"gt1": AssetOperations(generation_mwh=D("800"), fuel_mmbtu=D("7840.5"))}
    st = owner_statements(campus, [ppa, resale], ops, cfg, POLICY, "2026-10")
    assert list(st) == ["ipp"]
    ipp = st["ipp"]
    assert ipp.revenue == D("52000.00")
    assert ipp.costs == D("-24305.55") - D("1000.00")  # 7840.5 x 3.10 = 24305.55
    assert ipp.net == D("26694.45")
    assert [ln.basis.get("lines") for ln in ipp.lines if ln.kind == "revenue"] == ["IPP-1:1"]


def test_integrated_owner_operator_with_credit_note():
    campus = _campus([("operator", "1")])
    inv = _inv("OP-1", "operator", "tenant_a", [("gt1", "1000.00"), ("", "50.00")])
    credit = _inv("OP-2", "operator", "tenant_a", [("gt1", "100.00")], kind="credit_note")
    cfg = OwnershipConfig(costs={"gt1": AssetCosts(variable_om_per_mwh=D("4.25"))})
    st = owner_statements(campus, [inv, credit], {"gt1": AssetOperations(generation_mwh=D("10.001"))}, cfg, POLICY, "2026-10")
    op = st["operator"]
    assert op.revenue == D("900.00")  # the line without source_asset is not asset revenue
    assert op.costs == D("-42.50")  # 10.001 x 4.25 = 42.504 -> 42.50
    assert op.net == D("857.50")


def test_joint_venture_split_by_share_through_selling_agent():
    campus = _campus([("operator", "1")], gt2_owners=[("jv_a", "0.5"), ("jv_b", "0.3"), ("jv_c", "0.2")])
    inv = _inv("JV-1", "jv_op", "operator", [("gt2", "1000.01")])
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
