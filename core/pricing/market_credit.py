"""Market revenue credited to a tenant's invoice by contract (``market_revenue_credit``).

ISO statements pay the owners of an exporting asset (:mod:`kwhub.core.markets.revenue`). A
contract may hand part of that revenue to its buyer as a credit line: a fixed ``share`` of
the revenue of some resources, or (``basis = "allocation"``) a pool ``share`` split pro rata
to the buyer's allocated energy of the period.

What the component reads
------------------------
:class:`MarketRevenue` in ``ctx.market_revenue``: the latest version of each ISO statement
(per operating day and market) of the period's days, each with its revenue per resource,
the sign already flipped once (positive = paid to the campus), and which asset each
resource belongs to. The hub loads it for a period when a contract has this component
(:func:`kwhub.hub.markets.credit.period_market_revenue`). For ``basis = "allocation"`` it
also reads ``ctx.allocated_kwh_total`` (every tenant's allocated kWh per source).

Sign and remainder rule
-----------------------
The sign flips once, where the statements are read; this component turns revenue into a
credit line with a negative amount (``1 x -credit``). Each line's credit is its exact
share of the asset's revenue **rounded toward zero** to the contract's amount places, so
no tenant gets more than its exact share; the owners of the asset keep the rest
(``revenue - sum of the credits``), which therefore includes every sub-cent remainder.
Credits plus what the owners keep equal the revenue to the cent by construction; the
owner statements show the credits as ``market_credit`` lines
(:func:`kwhub.core.ownership.owner_statements`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_DOWN, Decimal
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from kwhub.core.markets.models import ISO
from kwhub.core.money import to_decimal
from kwhub.core.pricing.base import (
    Charge,
    ComponentConfig,
    PriceComponent,
    PricingContext,
    PricingError,
)


@dataclass(frozen=True)
class RevenueStatement:
    """The latest version of one ISO statement (operating day, market) in a period.

    ``version`` counts the versions of that day and market in arrival order (1 = the first);
    ``revenue`` is per resource with the ISO's sign flipped (positive = paid to the campus).
    """

    iso: str
    statement_id: str
    kind: str
    market: str
    operating_day: date
    version: int
    received_at: str
    revenue: Mapping[str, Decimal]

    @property
    def ref(self) -> str:
        """``id@vN`` as determinants list it."""
        return f"{self.statement_id}@v{self.version}"


@dataclass(frozen=True)
class MarketRevenue:
    """A period's market revenue as statement versions, and the asset of each resource."""

    period: str
    statements: tuple[RevenueStatement, ...] = ()
    assets: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (iso, resource) -> asset


class MarketRevenueCredit(PriceComponent):
    """Credits market/export revenue to the buyer (one line per asset, negative amount).

    ``iso`` and ``resources`` (or ``assets``; neither: every resource of the ISO with an
    asset) choose the revenue. ``basis = "share"`` credits ``share`` of it;
    ``basis = "allocation"`` credits ``share`` x (buyer's allocated kWh / all tenants'
    allocated kWh of the period), over ``sources`` when given. A period whose revenue is
    not positive gives no line unless ``negative_revenue = "share"`` (then the buyer bears
    its share of the loss as a charge).
    """

    kind = "market_revenue_credit"
    default_description = "Market revenue credit"

    class Config(ComponentConfig):
        iso: ISO
        resources: list[str] | None = None
        assets: list[str] | None = None
        basis: Literal["share", "allocation"] = "share"
        share: Decimal | None = Field(default=None, gt=0, le=1)
        sources: list[str] | None = None
        negative_revenue: Literal["owners", "share"] = "owners"

        @model_validator(mode="after")
        def _check(self) -> MarketRevenueCredit.Config:
            if self.basis == "share" and self.share is None:
                raise ValueError('share: basis = "share" needs the fixed share credited to this buyer (0 < share <= 1)')
            if self.resources is not None and self.assets is not None:
                raise ValueError("set resources or assets, not both")
            if self.sources is not None and self.basis != "allocation":
                raise ValueError('sources: only used with basis = "allocation"')
            return self

    def _resources(self, mr: MarketRevenue) -> dict[str, str]:
        """``{resource: asset}`` this component credits."""
        cfg = self.config
        known = {res: asset for (iso, res), asset in mr.assets.items() if iso == cfg.iso}
        if not known:
            raise PricingError(f"no [[markets.resources]] of {cfg.iso} has an asset; there is no revenue to credit")
        if cfg.resources is not None:
            bad = [r for r in cfg.resources if r not in known]
            if bad:
                raise PricingError(f"resources: unknown {cfg.iso} resource(s) {', '.join(bad)} "
                                   f"(known: {', '.join(sorted(known))})")
            return {r: known[r] for r in cfg.resources}
        if cfg.assets is not None:
            chosen = {r: a for r, a in known.items() if a in cfg.assets}
            bad = [a for a in cfg.assets if a not in set(known.values())]
            if bad:
                raise PricingError(f"assets: no {cfg.iso} resource belongs to {', '.join(bad)} "
                                   f"(assets with resources: {', '.join(sorted(set(known.values())))})")
            return chosen
        return known

    def _fraction(self, ctx: PricingContext, dets: dict[str, object]) -> tuple[Decimal, Decimal] | None:
        """The fraction of the revenue credited as (numerator, denominator), so the exact
        credit is ``revenue x numerator / denominator`` with one division (None: nothing)."""
        cfg = self.config
        if cfg.basis == "share":
            dets["share"] = cfg.share
            return Decimal(cfg.share), Decimal(1)
        pool = Decimal(cfg.share) if cfg.share is not None else Decimal(1)
        if not ctx.allocated_kwh_total or ctx.allocated_starts is None:
            raise PricingError('basis = "allocation" needs the allocation of the period: the contract must bill '
                               'allocated energy (energy basis "allocation")')
        srcs = cfg.sources or sorted(ctx.allocated_kwh_total)
        bad = [s for s in srcs if s not in ctx.allocated_kwh_total]
        if bad:
            raise PricingError(f"sources: {', '.join(bad)} not in the allocation "
                               f"(sources: {', '.join(sorted(ctx.allocated_kwh_total))})")
        # the intervals this context prices (all of them, or a contract version's part)
        if ctx.n_intervals:
            inside = (ctx.allocated_starts >= ctx.starts[0]) & (ctx.allocated_starts <= ctx.starts[-1])
        else:
            inside = np.zeros(ctx.allocated_starts.shape[0], dtype=bool)
        own = sum((to_decimal(float(ctx.energy_by_source[s].sum())) for s in srcs if s in ctx.energy_by_source),
                  Decimal(0))
        total = sum((to_decimal(float(ctx.allocated_kwh_total[s][inside].sum())) for s in srcs), Decimal(0))
        dets.update({"pool_share": pool, "tenant_kwh": own, "allocated_kwh": total,
                     "allocation_sources": ",".join(srcs)})
        if total <= 0 or own <= 0:
            return None
        return pool * own, total

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        mr = ctx.market_revenue
        if mr is None:
            raise PricingError("no market revenue is loaded for this period (the hub loads the period's ISO "
                               "statements when [[markets.resources]] are configured)")
        chosen = self._resources(mr)
        by_asset: dict[str, Decimal] = {}
        used: dict[str, dict[str, Decimal]] = {}  # asset -> {statement ref: revenue}
        part = ctx.period_share != 1  # an amendment splits the period: the revenue of this part's days
        first, last = ctx.period.first_day, ctx.period.last_day
        for st in mr.statements:
            if st.iso != cfg.iso or (part and not first <= st.operating_day <= last):
                continue
            for res, amount in st.revenue.items():
                asset = chosen.get(res)
                if asset is None:
                    continue
                by_asset[asset] = by_asset.get(asset, Decimal("0")) + amount
                refs = used.setdefault(asset, {})
                refs[st.ref] = refs.get(st.ref, Decimal("0")) + amount
        base: dict[str, object] = {"iso": cfg.iso, "basis": cfg.basis}
        fraction = self._fraction(ctx, base)
        if fraction is None:
            return []
        places = ctx.money.amount_places
        unit = Decimal(1).scaleb(-places)
        desc = self.describe("Market revenue credit")
        out = []
        for asset in sorted(by_asset):
            dets = dict(base)
            revenue = by_asset[asset]
            if part:
                dets["operating_days"] = f"{first}..{last}"
            if revenue <= 0 and cfg.negative_revenue == "owners":
                continue
            exact = revenue * fraction[0] / fraction[1]  # multiply first: 3.00 x 1 / 3 is exactly 1.00
            credit = exact.quantize(unit, rounding=ROUND_DOWN)  # toward zero: the owners keep the remainder
            if credit == 0:
                continue
            res = sorted(r for r, a in chosen.items() if a == asset)
            dets.update({
                "asset": asset, "resources": ",".join(res), "statements": ",".join(used[asset]),
                "statement_count": len(used[asset]),
                "statement_revenue": ",".join(f"{ref}={amt}" for ref, amt in used[asset].items()),
                "market_revenue": revenue, "credit_fraction": fraction[0] / fraction[1],
                "exact_credit": exact, "credit": credit,
                "rounding": "toward_zero",
            })
            out.append(self.charge(ctx, description=f"{desc} {cfg.iso} {asset}", charge_type="market_credit",
                                   quantity=1, unit="each", unit_price=-credit, source_asset=asset,
                                   determinants=dets))
        return out

