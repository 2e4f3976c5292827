"""Turn a dispatch plan into offer curves that pass the ISO's rules and the guardrails.

Per interval, each source's export headroom becomes a block of the curve: solar at its
offer price, the battery at its cycle cost, and each gas unit at its marginal cost (heat
rate x gas index + VOM), cheapest first. The headroom is what the plan left after the
campus load, the ancillary products and the reserve margin; the reserve is taken from
the most expensive units. MW are rounded *down* and prices *up* to the ISO's decimals,
so an offer never exceeds the surplus and never sells below cost; blocks priced over the
cap are left out (and reported); more blocks than the ISO's point limit are merged at
the higher price. The units' share of the load is put on the cheapest units first, whichever
unit the plan happened to load (its cost is the same either way). An interval whose curve stays under the ISO's minimum MW is not offered
(and reported). Every bid then passes :func:`kwhub.core.markets.curve_rules.check_bid` and
:func:`check_guardrails` before it is returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np

from kwhub.core.markets.curve_rules import CurveRuleError, CurveRules, check_bid
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid, CurvePoint, OfferCurve
from kwhub.core.markets.optimizer import DispatchPlan
from kwhub.core.markets.surplus import GenUnit, Surplus


class GuardrailError(ValueError):
    """A bid that would need tenant load (or the reserve) to deliver."""


@dataclass
class BuiltBids:
    """The bids of one day and what was left out, per interval label."""

    bids: list[Bid]
    notes: list[str] = field(default_factory=list)


def _dec(x: float, places: int, rounding: str) -> Decimal:
    # round away float noise first (8.4 x 3 + 4 is 29.200000000000003), then to the ISO's decimals
    return Decimal(repr(round(float(x), 6))).quantize(Decimal(1).scaleb(-places), rounding=rounding)


def _blocks_for(t: int, plan: DispatchPlan, surplus: Surplus, units: list[GenUnit], gas_price: float,
                solar_price: float, battery_price: float) -> list[tuple[float, float]]:
    """(price, MW) blocks of interval ``t``, cheapest first, summing to at most the surplus."""
    costs = np.array([u.marginal_cost(gas_price) for u in units])
    headroom = np.maximum(surplus.unit_available_mw[:, t] - plan.unit_products[:, :, t].sum(axis=1), 0.0)
    # the load the plan puts on the units is served by the cheapest first: the LP is indifferent
    # to which unit carries it when both also export, but the offer must price the MW it sells
    # at the cost of the unit that would make them
    load_left = float(plan.unit_load[:, t].sum())
    for gi in np.argsort(costs, kind="stable"):
        take = min(headroom[gi], load_left)
        headroom[gi] -= take
        load_left -= take
    # the reserve stays on the most expensive units
    reserve_left = float(surplus.reserve_mw[t])
    for gi in np.argsort(-costs, kind="stable"):
        take = min(headroom[gi], reserve_left)
        headroom[gi] -= take
        reserve_left -= take
    blocks = [(solar_price, float(max(surplus.solar_mw[t] - plan.solar_load[t], 0.0))),
              (battery_price, float(plan.battery_discharge_export[t]))]
    blocks += [(float(costs[i]), float(headroom[i])) for i in range(len(units))]
    blocks = sorted((b for b in blocks if b[1] > 1e-9), key=lambda b: b[0])
    limit = float(surplus.surplus_mw[t])
    out: list[tuple[float, float]] = []
    total = 0.0
    for price, mw in blocks:
        mw = min(mw, limit - total)
        if mw <= 1e-9:
            break
        out.append((price, mw))
        total += mw
    return out


def curve_points(blocks: list[tuple[float, float]], rules: CurveRules) -> tuple[list[CurvePoint], list[str]]:
    """ISO-ready points (cumulative MW, price) of price-sorted blocks; notes say what was dropped."""
    notes: list[str] = []
    merged: list[tuple[Decimal, float]] = []
    for price, mw in blocks:
        p = max(_dec(price, rules.price_places, ROUND_CEILING), rules.floor)
        if p > rules.cap:
            notes.append(f"{mw:.1f} MW at {p} $/MWh is over the {rules.iso} cap {rules.cap}: not offered")
            continue
        if merged and merged[-1][0] == p:
            merged[-1] = (p, merged[-1][1] + mw)
        else:
            merged.append((p, mw))
    while len(merged) > rules.max_points:  # merge the pair with the smallest price step, at the higher price
        steps = [merged[i + 1][0] - merged[i][0] for i in range(len(merged) - 1)]
        i = steps.index(min(steps))
        merged[i:i + 2] = [(merged[i + 1][0], merged[i][1] + merged[i + 1][1])]
    points: list[CurvePoint] = []
    cum = 0.0
    for block_price, mw in merged:
        cum += mw
        q = _dec(cum, rules.mw_places, ROUND_FLOOR)
        if points and q <= points[-1].mw:
            continue  # a block thinner than the MW resolution
        if q <= 0:
            continue
        points.append(CurvePoint(mw=q, price=block_price))
    return points, notes


def build_energy_offers(day: date, tz: str, iso: str, resource: str, plan: DispatchPlan, surplus: Surplus,
                        units: list[GenUnit], gas_price: np.ndarray, rules: CurveRules, *, bid_id: str,
                        solar_price: float = 0.0, battery_price: float = 0.0, market: str = "DA") -> BuiltBids:
    """The day's energy offer for ``resource`` from ``plan`` (see the module doc)."""
    grid = DayGrid(day, tz, rules.interval_minutes)
    if len(grid) != len(surplus.load_mw):
        raise ValueError(f"{day} in {tz} has {len(grid)} intervals, the forecast {len(surplus.load_mw)}")
    gas = np.broadcast_to(np.asarray(gas_price, dtype=np.float64), (len(grid),))
    curves: list[OfferCurve] = []
    notes: list[str] = []
    step = rules.interval_minutes * 60
    for t in range(len(grid)):
        blocks = _blocks_for(t, plan, surplus, units, float(gas[t]), solar_price, battery_price)
        points, dropped = curve_points(blocks, rules)
        notes += [f"{grid.label(t)}: {d}" for d in dropped]
        if not points or points[-1].mw < rules.min_mw:
            if blocks:
                notes.append(f"{grid.label(t)}: surplus {sum(b[1] for b in blocks):.1f} MW is below the "
                             f"{iso} minimum of {rules.min_mw} MW: not offered")
            continue
        start = datetime.fromtimestamp(int(grid.starts[t]), tz=UTC)
        end = datetime.fromtimestamp(int(grid.starts[t]) + step, tz=UTC)
        curves.append(OfferCurve(start=start, end=end, points=tuple(points)))
    bids: list[Bid] = []
    if curves:
        bid = Bid(bid_id=bid_id, iso=iso, market=market, resource=resource, trading_date=day,  # type: ignore[arg-type]
                  curves=tuple(curves))
        found = check_bid(bid, rules, tz)
        if found:
            raise CurveRuleError(bid.bid_id, found)
        check_guardrails(bid, surplus, grid)
        bids.append(bid)
    return BuiltBids(bids, notes)


def check_guardrails(bid: Bid, surplus: Surplus, grid: DayGrid) -> None:
    """Refuse a bid that offers more in any interval than the surplus (load and reserve first)."""
    index = {int(s): i for i, s in enumerate(grid.starts.tolist())}
    for curve in bid.curves:
        i = index.get(int(curve.start.timestamp()))
        if i is None:
            raise GuardrailError(f"bid {bid.bid_id}: {curve.start.isoformat()} is not an interval of {grid.day}")
        limit = Decimal(repr(round(float(surplus.surplus_mw[i]), 6)))  # float noise, as the builder rounds it
        if curve.max_mw > limit:
            raise GuardrailError(f"bid {bid.bid_id} {grid.label(i)}: offers {curve.max_mw} MW but the surplus is "
                                 f"{surplus.surplus_mw[i]:.1f} MW ({surplus.explain(i)}); delivering it would need "
                                 "tenant load or the reserve")
