"""Each ISO's rules for a price curve, checked before anything leaves the hub.

A curve that breaks a rule is refused with the rule named (``cap``, ``points`` ...) and
the interval it is in; one bad interval refuses the whole bid, as ERCOT refuses the whole
offer. The numbers come from ``MARKETS.md``: ERCOT's are from the Nodal Protocols
(4.4.9.x, 4.4.11); the CAISO and PJM figures marked *unverified* there are kept as
defaults that configuration can override.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid, OfferCurve


class CurveRules(BaseModel):
    """Limits one ISO puts on a bid's curves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iso: str
    floor: Decimal
    cap: Decimal  # offer cap ($/MWh) of the market the rules are for
    max_points: int
    min_mw: Decimal = Decimal(0)  # the curve's largest MW must reach this
    mw_places: int = 1
    price_places: int = 2
    max_equal_run: int | None = None  # at most this many consecutive points with the same price (or MW)
    interval_minutes: int = 60  # every curve covers exactly one interval of this length


ERCOT_DA = CurveRules(iso="ERCOT", floor=Decimal("-250.00"), cap=Decimal("5000.00"), max_points=10,
                      min_mw=Decimal("1.0"), max_equal_run=2)
ERCOT_RT = ERCOT_DA.model_copy(update={"cap": Decimal("2000.00")})  # RTSWCAP
# CAISO: hard cap; floor and point count unverified (MARKETS.md section 6)
CAISO_DA = CurveRules(iso="CAISO", floor=Decimal("-150.00"), cap=Decimal("2000.00"), max_points=11,
                      mw_places=2, price_places=2)
CAISO_RT = CAISO_DA.model_copy(update={"interval_minutes": 60})
# PJM: max($1,000, verified cost), up to $2,000; segment count unverified (MARKETS.md section 7)
PJM_DA = CurveRules(iso="PJM", floor=Decimal("-150.00"), cap=Decimal("1000.00"), max_points=10,
                    mw_places=1, price_places=2)
PJM_RT = PJM_DA

# the built-in ISOs' rules; every ISO's, a plugin's too, through kwhub.core.markets.rules.rules_for
DEFAULT_RULES: dict[tuple[str, str], CurveRules] = {
    ("ERCOT", "DA"): ERCOT_DA, ("ERCOT", "RT"): ERCOT_RT,
    ("CAISO", "DA"): CAISO_DA, ("CAISO", "RT"): CAISO_RT,
    ("PJM", "DA"): PJM_DA, ("PJM", "RT"): PJM_RT,
}


@dataclass(frozen=True)
class RuleViolation:
    """One broken rule: which rule, in which interval, and what was found."""

    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: rule {self.rule}: {self.message}"


class CurveRuleError(ValueError):
    """A bid that breaks its ISO's curve rules; ``violations`` lists every one."""

    def __init__(self, bid_id: str, violations: list[RuleViolation]) -> None:
        self.bid_id = bid_id
        self.violations = violations
        shown = "\n".join(f"  - {v}" for v in violations[:20])
        more = f"\n  ... and {len(violations) - 20} more" if len(violations) > 20 else ""
        super().__init__(f"bid {bid_id} refused, it breaks {len(violations)} curve rule(s):\n{shown}{more}")


def _places(d: Decimal) -> int:
    exp = d.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 99


def _run_too_long(values: list[Decimal], limit: int) -> bool:
    run = 1
    for a, b in zip(values, values[1:], strict=False):
        run = run + 1 if a == b else 1
        if run > limit:
            return True
    return False


def check_curve(curve: OfferCurve, rules: CurveRules, *, side: str = "offer", storage: bool = False,
                where: str = "") -> list[RuleViolation]:
    """The rules ``curve`` breaks (empty when it passes)."""
    out: list[RuleViolation] = []

    def bad(rule: str, msg: str) -> None:
        out.append(RuleViolation(rule, where, msg))

    pts = curve.points
    if not pts:
        bad("points", "the curve has no points")
        return out
    if len(pts) > rules.max_points:
        bad("points", f"{len(pts)} points, {rules.iso} allows at most {rules.max_points}")
    mws = [p.mw for p in pts]
    prices = [p.price for p in pts]
    for p in pts:
        if p.price < rules.floor:
            bad("floor", f"price {p.price} is below the floor {rules.floor}")
        if p.price > rules.cap:
            bad("cap", f"price {p.price} is above the cap {rules.cap}")
        if _places(p.price) > rules.price_places:
            bad("price_decimals", f"price {p.price} has more than {rules.price_places} decimals")
        if _places(p.mw) > rules.mw_places:
            bad("mw_decimals", f"MW {p.mw} has more than {rules.mw_places} decimal(s)")
        if p.mw < 0 and not storage:
            bad("negative_mw", f"MW {p.mw} is negative; only storage resources may offer below 0 MW")
    if any(b < a for a, b in zip(mws, mws[1:], strict=False)):
        bad("monotonic_mw", f"MW must not decrease along the curve: {[str(m) for m in mws]}")
    if side == "offer" and any(b < a for a, b in zip(prices, prices[1:], strict=False)):
        bad("monotonic_price", f"offer prices must not decrease: {[str(p) for p in prices]}")
    if side == "bid" and any(b > a for a, b in zip(prices, prices[1:], strict=False)):
        bad("monotonic_price", f"bid prices must not increase: {[str(p) for p in prices]}")
    if rules.max_equal_run is not None:
        if _run_too_long(prices, rules.max_equal_run):
            bad("equal_prices", f"more than {rules.max_equal_run} consecutive points with the same price")
        if _run_too_long(mws, rules.max_equal_run):
            bad("equal_mw", f"more than {rules.max_equal_run} consecutive points with the same MW")
    if rules.min_mw and max(mws) < rules.min_mw:
        bad("min_mw", f"the curve reaches {max(mws)} MW, {rules.iso} needs at least {rules.min_mw} MW")
    return out


def check_bid(bid: Bid, rules: CurveRules, tz: str) -> list[RuleViolation]:
    """Every rule ``bid`` breaks: each curve's shape, and its time on the trading day.

    The time rules: a curve covers exactly one interval of the rules' length, starts on
    an interval of the trading day in ``tz`` (so the DST days have 23 or 25 hours, and the
    repeated hour is its own interval), and no interval has two curves.
    """
    grid = DayGrid(bid.trading_date, tz, rules.interval_minutes)
    index = {int(s): i for i, s in enumerate(grid.starts.tolist())}
    out: list[RuleViolation] = []
    seen: set[int] = set()
    if not bid.curves and bid.self_schedule_mw is None:
        out.append(RuleViolation("empty", bid.bid_id, "the bid has neither curves nor a self-schedule"))
    for curve in bid.curves:
        start = int(curve.start.timestamp())
        i = index.get(start)
        where = grid.label(i) if i is not None else f"{bid.trading_date} {curve.start.astimezone(UTC).isoformat()}"
        if i is None:
            out.append(RuleViolation("interval", where, f"the curve does not start on an interval boundary of "
                                     f"trading day {bid.trading_date} in {tz}"))
        if int(curve.end.timestamp()) - start != rules.interval_minutes * 60:
            out.append(RuleViolation("interval", where, f"the curve covers {curve.start:%H:%M}-{curve.end:%H:%M} "
                                     f"UTC, not one {rules.interval_minutes}-minute interval"))
        if start in seen:
            out.append(RuleViolation("duplicate_interval", where, "a second curve for the same interval"))
        seen.add(start)
        out += check_curve(curve, rules, side=bid.side, storage=bid.storage, where=where)
    return out


def require_valid(bids: Iterable[Bid], rules_for: dict[tuple[str, str], CurveRules], tz: str) -> None:
    """Raise :class:`CurveRuleError` for the first bid that breaks a rule."""
    from kwhub.core.markets.rules import rules_for as registered  # the registry imports this module

    for bid in bids:
        rules = rules_for.get((bid.iso, bid.market)) or registered(bid.iso, bid.market)
        found = check_bid(bid, rules, tz)
        if found:
            raise CurveRuleError(bid.bid_id, found)

