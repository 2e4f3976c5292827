"""Real-time offers: built on the ISO's real-time grain, submitted on its offer grain.

The forecast, the surplus and the dispatch plan run per real-time interval (ERCOT 15
minutes, CAISO and PJM 5 minutes: :data:`RT_FORECAST_MINUTES`), and the bid builder of
:mod:`kwhub.core.markets.bid_builder` makes one curve per real-time interval under the
ISO's real-time rules (ERCOT's RTSWCAP of $2,000, ...). The ISOs take real-time offers per
hour (``MARKETS.md``: ERCOT submissions sit on hour boundaries; CAISO takes real-time bids
per trading hour until T-75), so each hour's offer is the curve of its *tightest*
real-time interval, the one with the least MW: every interval of the hour can deliver
it, so the guardrail (load and reserve first) holds in each of them. An hour one of whose
intervals has nothing to offer is not offered. Hours that start before ``from_epoch``
(past the ISO's real-time gate) are left out.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np

from kwhub.core.markets.bid_builder import BuiltBids, GuardrailError, build_energy_offers
from kwhub.core.markets.curve_rules import CurveRuleError, CurveRules, check_bid
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid, OfferCurve
from kwhub.core.markets.optimizer import DispatchPlan
from kwhub.core.markets.surplus import GenUnit, Surplus

RT_FORECAST_MINUTES: dict[str, int] = {"ERCOT": 15, "CAISO": 5, "PJM": 5}  # built-in; any ISO: MarketRules.rt_minutes


def build_rt_offers(day: date, tz: str, iso: str, resource: str, plan: DispatchPlan, surplus: Surplus,
                    units: list[GenUnit], gas_price: np.ndarray, rules: CurveRules, *, bid_id: str,
                    rt_minutes: int | None = None, from_epoch: int | None = None, solar_price: float = 0.0,
                    battery_price: float = 0.0) -> BuiltBids:
    """The real-time energy offer of ``resource`` on ``rules``' offer grain from a plan on the RT grain."""
    from kwhub.core.markets.rules import market_rules

    rt = rt_minutes or market_rules(iso).rt_minutes
    offer_minutes = rules.interval_minutes
    if offer_minutes % rt:
        raise ValueError(f"{iso} offers per {offer_minutes} minutes, not a multiple of the {rt}-minute forecast")
    fine = rules.model_copy(update={"interval_minutes": rt})
    per_interval = build_energy_offers(day, tz, iso, resource, plan, surplus, units, gas_price, fine,
                                       bid_id=bid_id, solar_price=solar_price, battery_price=battery_price,
                                       market="RT")
    by_start = {int(c.start.timestamp()): c for b in per_interval.bids for c in b.curves}
    grid = DayGrid(day, tz, offer_minutes)
    k = offer_minutes // rt
    step = rt * 60
    notes = list(per_interval.notes)
    curves: list[OfferCurve] = []
    for i, start in enumerate(grid.starts.tolist()):
        if from_epoch is not None and start < from_epoch:
            continue
        inside = [by_start.get(start + j * step) for j in range(k)]
        if any(c is None for c in inside):
            if any(c is not None for c in inside):
                notes.append(f"{grid.label(i)}: a {rt}-minute interval has nothing to offer: hour not offered")
            continue
        tight = min(inside, key=lambda c: c.max_mw)  # type: ignore[union-attr]
        assert tight is not None
        curves.append(OfferCurve(start=datetime.fromtimestamp(start, tz=UTC),
                                 end=datetime.fromtimestamp(start + offer_minutes * 60, tz=UTC), points=tight.points))
    bids: list[Bid] = []
    if curves:
        bid = Bid(bid_id=bid_id, iso=iso, market="RT", resource=resource, trading_date=day,  # type: ignore[arg-type]
                  curves=tuple(curves))
        found = check_bid(bid, rules, tz)
        if found:
            raise CurveRuleError(bid.bid_id, found)
        check_rt_guardrails(bid, surplus, DayGrid(day, tz, rt))
        bids.append(bid)
    return BuiltBids(bids, notes)


def check_rt_guardrails(bid: Bid, surplus: Surplus, rt_grid: DayGrid) -> None:
    """Refuse an offer whose MW exceed the surplus of any real-time interval it covers."""
    starts = rt_grid.starts
    for curve in bid.curves:
        s, e = int(curve.start.timestamp()), int(curve.end.timestamp())
        inside = np.nonzero((starts >= s) & (starts < e))[0]
        if len(inside) == 0:
            raise GuardrailError(f"bid {bid.bid_id}: {curve.start.isoformat()} is not in {rt_grid.day}")
        t = int(inside[np.argmin(surplus.surplus_mw[inside])])
        if curve.max_mw > Decimal(repr(round(float(surplus.surplus_mw[t]), 6))):  # float noise, as the builder
            raise GuardrailError(f"bid {bid.bid_id} {rt_grid.label(t)}: offers {curve.max_mw} MW but the surplus is "
                                 f"{surplus.surplus_mw[t]:.1f} MW ({surplus.explain(t)}); delivering it would need "
                                 "tenant load or the reserve")
