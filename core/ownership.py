"""Owner statements: revenues and costs of co-owned assets, split by ownership share.

Assets carry their owners (:attr:`kwhub.core.campus.Asset.owners`, shares summing to 1). For
one period, an owner's statement lists per asset:

* **revenue**: the value of the energy the asset delivered, under every component of
  every contract, followed through the allocation (:func:`attributed_revenues`). Each
  energy line of a settled run (fixed, TOU, fuel-indexed ...) is split by the kWh each
  source contributed to it (the run's ``attribution``); demand, capacity and take-or-pay
  lines by the source mix of the contract's billed energy; an availability credit goes
  to the asset it names. Fees and pass-through lines are not generation revenue. Only
  contracts that the asset's owners sell themselves (an IPP selling to the operator; an
  integrated owner-operator selling to tenants) or that a configured selling agent sells
  on their behalf (``OwnershipConfig.sellers``, e.g. a joint venture's operator) count;
  a reseller's contract (the operator reselling an IPP's energy) does not. The settled
  run of each contract carries the full lines of the period, so the revenue is what the
  original invoice and all its corrections bill together.
* **market revenue**: what an ISO paid for the asset's resource in the period (statement
  amounts with the sign flipped once, :mod:`kwhub.core.markets.revenue`), given as
  :class:`MarketRevenueItem` s and split by the same shares.
* **market credit**: the part of that market revenue the settled runs credited to tenants
  (``market_credit`` lines of a ``market_revenue_credit`` component, negative, one per
  asset; :mod:`kwhub.core.pricing.market_credit`). Market revenue plus market credit is
  what the owners keep: the credits plus what the owners keep equal the ISO revenue.
* **costs**: fuel (metered MMBtu x ``fuel_price_per_mmbtu``), variable O&M (MWh x
  ``variable_om_per_mwh``) and fixed O&M per period, configured per asset.

Every total is split with the largest-remainder method in the currency's smallest unit,
so the owners' parts sum exactly to the total (``100.00`` in thirds is ``33.34 + 33.33
+ 33.33``, the extra cent going to the largest remainder, ties by party id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kwhub.core.campus import Campus
from kwhub.core.money import MoneyPolicy, money_str, to_decimal

LineKind = Literal["revenue", "market_revenue", "market_credit", "fuel_cost", "variable_om", "fixed_om"]


class OwnershipError(ValueError):
    """An ownership statement that cannot be built (unknown asset, asset without owners)."""


class AssetCosts(BaseModel):
    """Cost rates of one asset for owner statements."""

    model_config = ConfigDict(extra="forbid")

    fuel_price_per_mmbtu: Decimal = Decimal("0")
    variable_om_per_mwh: Decimal = Decimal("0")
    fixed_om_per_period: Decimal = Decimal("0")


class OwnershipConfig(BaseModel):
    """Costs per asset and selling agents (asset -> party that sells for the owners)."""

    model_config = ConfigDict(extra="forbid")

    costs: dict[str, AssetCosts] = Field(default_factory=dict)
    sellers: dict[str, str] = Field(default_factory=dict)


class AssetOperations(BaseModel):
    """What an asset did in the period: net generation (MWh) and metered fuel (MMBtu)."""

    model_config = ConfigDict(extra="forbid")

    generation_mwh: Decimal = Decimal("0")
    fuel_mmbtu: Decimal = Decimal("0")


class StatementLine(BaseModel):
    """One party's part of one asset's revenue or cost."""

    model_config = ConfigDict(extra="forbid")

    asset: str
    kind: LineKind
    description: str
    asset_total: Decimal
    share: Decimal
    amount: Decimal
    basis: dict[str, str] = Field(default_factory=dict)


class OwnerStatement(BaseModel):
    """Revenues (positive) and costs (negative) of one party for one period."""

    model_config = ConfigDict(extra="forbid")

    party: str
    period: str
    currency: str
    lines: list[StatementLine] = Field(default_factory=list)
    revenue: Decimal = Decimal("0")
    costs: Decimal = Decimal("0")
    net: Decimal = Decimal("0")


def split_largest_remainder(total: Decimal, shares: Mapping[str, Decimal], places: int) -> dict[str, Decimal]:
    """Split ``total`` by ``shares`` in units of ``10**-places``; the parts sum to ``total``.

    Each party first gets its share rounded toward zero; the leftover units go one each
    to the largest remainders (ties broken by party id). ``total`` must already be a
    multiple of the unit.
    """
    unit = Decimal(1).scaleb(-places)
    units_dec = abs(total) / unit
    if units_dec != units_dec.to_integral_value():
        raise OwnershipError(f"total {total} is not a multiple of {unit}")
    units = int(units_dec)
    sign = -1 if total < 0 else 1
    exact = {p: Decimal(units) * to_decimal(s) for p, s in shares.items()}
    base = {p: int(v.to_integral_value(rounding=ROUND_FLOOR)) for p, v in exact.items()}
    left = units - sum(base.values())
    if left < 0 or left > len(base):
        raise OwnershipError(f"shares {dict(shares)} do not sum to 1")
    for p in sorted(exact, key=lambda p: (-(exact[p] - base[p]), p))[:left]:
        base[p] += 1
    return {p: (sign * Decimal(n) * unit).quantize(unit) for p, n in base.items()}


@dataclass(frozen=True)
class MarketRevenueItem:
    """An asset's market revenue of the period (positive = paid to the owners) and where
    it comes from (``basis``: ISO, resource, statement versions)."""

    asset: str
    amount: Decimal
    description: str
    basis: Mapping[str, str]


@dataclass(frozen=True)
class SettledRun:
    """What revenue attribution needs of one settled run: who sold, its full lines and the
    kWh by source behind each line (``attribution``, parallel to ``lines``)."""

    run_id: str
    seller: str
    lines: Sequence[Mapping[str, Any]]
    attribution: Sequence[Mapping[str, str]]

    @classmethod
    def from_statement(cls, statement: Mapping[str, Any]) -> SettledRun:
        return cls(statement["run"]["id"], statement["contract"]["seller"], statement["lines"],
                   statement.get("attribution") or [{} for _ in statement["lines"]])


_BY_ENERGY_MIX = ("demand", "capacity", "take_or_pay")
_REVENUE = ("revenue", "market_revenue", "market_credit")


def attributed_revenues(campus: Campus, runs: Iterable[SettledRun], config: OwnershipConfig,
                        policy: MoneyPolicy) -> dict[str, tuple[Decimal, list[str]]]:
    """``{asset: (revenue, [run:line references])}`` for owned assets (see module docs).

    A line's amount is split over its sources with :func:`split_largest_remainder`, so the
    parts add up to the line to the cent; the parts of sources without owners (the grid,
    unmetered load) stay with the seller and are not listed.
    """
    owners = {a.id: {o.party for o in a.owners} for a in campus.assets if a.owners}
    out: dict[str, Decimal] = defaultdict(Decimal)
    refs: dict[str, list[str]] = defaultdict(list)
    places = policy.amount_places
    for run in runs:
        mix: dict[str, Decimal] = defaultdict(Decimal)
        for attr in run.attribution:
            for src, kwh in attr.items():
                mix[src] += Decimal(kwh)
        for n, (line, attr) in enumerate(zip(run.lines, run.attribution, strict=True), start=1):
            amount = Decimal(str(line["amount"]))
            kind = line.get("charge_type", "energy")
            if attr:
                weights = {s: Decimal(k) for s, k in attr.items()}
            elif kind in _BY_ENERGY_MIX:
                weights = dict(mix)
            elif kind == "availability_credit" and line.get("source_asset"):
                weights = {str(line["source_asset"]): Decimal(1)}
            else:
                continue
            total = sum(weights.values(), Decimal(0))
            if not total or not amount:
                continue
            parts = split_largest_remainder(policy.amount(amount), {s: w / total for s, w in weights.items()}, places)
            for src, part in parts.items():
                if src not in owners or not part:
                    continue
                if run.seller not in owners[src] and config.sellers.get(src) != run.seller:
                    continue
                out[src] += part
                refs[src].append(f"{run.run_id}#{n}")
    return {a: (out[a], refs[a]) for a in sorted(out)}


def _market_credits(runs: Iterable[SettledRun],
                    assets: Mapping[str, Any]) -> list[tuple[str, LineKind, str, Decimal, dict[str, str]]]:
    """Per asset, the market revenue the settled runs credited to tenants (negative)."""
    credit: dict[str, Decimal] = defaultdict(Decimal)
    refs: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        for n, line in enumerate(run.lines, start=1):
            if line.get("charge_type") != "market_credit":
                continue
            asset = str(line.get("source_asset") or "")
            if asset not in assets or not assets[asset].owners:
                raise OwnershipError(f"market credit {run.run_id}#{n}: asset {asset!r} has no owners to bear it")
            credit[asset] += Decimal(str(line["amount"]))
            refs[asset].append(f"{run.run_id}#{n}")
    return [(a, "market_credit", f"Market revenue credited to tenants {a}", credit[a], {"lines": ",".join(refs[a])})
            for a in sorted(credit)]


def owner_statements(
    campus: Campus,
    runs: Iterable[SettledRun],
    operations: Mapping[str, AssetOperations],
    config: OwnershipConfig,
    policy: MoneyPolicy,
    period: str,
    market: Iterable[MarketRevenueItem] = (),
) -> dict[str, OwnerStatement]:
    """One :class:`OwnerStatement` per owning party (sorted by party id), from the period's
    settled runs (revenue, :func:`attributed_revenues`), the ISO market revenue of the
    assets' resources (``market``) and the assets' operations (costs)."""
    runs = list(runs)
    assets = {a.id: a for a in campus.assets}
    for aid in list(config.costs) + list(config.sellers) + list(operations):
        if aid not in assets:
            raise OwnershipError(f"ownership: unknown asset {aid!r}")
    places = policy.amount_places
    totals: list[tuple[str, LineKind, str, Decimal, dict[str, str]]] = []
    for aid, (revenue, refs) in attributed_revenues(campus, runs, config, policy).items():
        totals.append((aid, "revenue", f"Revenue {aid}", revenue, {"lines": ",".join(refs)}))
    for item in market:
        if item.asset not in assets:
            raise OwnershipError(f"market revenue: unknown asset {item.asset!r}")
        if not assets[item.asset].owners:
            raise OwnershipError(f"market revenue: asset {item.asset!r} has no owners to share it")
        totals.append((item.asset, "market_revenue", item.description, item.amount, dict(item.basis)))
    totals += _market_credits(runs, assets)
    for aid in sorted(set(config.costs) | set(operations)):
        rates = config.costs.get(aid, AssetCosts())
        ops = operations.get(aid, AssetOperations())
        if not assets[aid].owners:
            raise OwnershipError(f"ownership: asset {aid!r} has costs but no owners")
        items: list[tuple[LineKind, str, Decimal, Decimal, str]] = [
            ("fuel_cost", "Fuel", ops.fuel_mmbtu, rates.fuel_price_per_mmbtu, "mmbtu"),
            ("variable_om", "Variable O&M", ops.generation_mwh, rates.variable_om_per_mwh, "mwh"),
            ("fixed_om", "Fixed O&M", Decimal(1), rates.fixed_om_per_period, "periods"),
        ]
        for kind, label, qty, rate, unit in items:
            if rate == 0:
                continue
            amount = -policy.amount(qty * rate)
            totals.append((aid, kind, f"{label} {aid}", amount, {unit: money_str(qty), "rate": money_str(rate)}))
    statements: dict[str, OwnerStatement] = {}
    for aid, kind, desc, amount, basis in totals:
        shares = {o.party: o.share for o in assets[aid].owners}
        parts = split_largest_remainder(policy.amount(amount), shares, places)
        for party, part in parts.items():
            st = statements.setdefault(party, OwnerStatement(party=party, period=period, currency=policy.currency))
            st.lines.append(StatementLine(asset=aid, kind=kind, description=desc, asset_total=policy.amount(amount),
                                          share=shares[party], amount=part, basis=basis))
    for st in statements.values():
        st.revenue = sum((ln.amount for ln in st.lines if ln.kind in _REVENUE), Decimal("0"))
        st.costs = sum((ln.amount for ln in st.lines if ln.kind not in _REVENUE), Decimal("0"))
        st.net = st.revenue + st.costs
    return dict(sorted(statements.items()))
