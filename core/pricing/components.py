"""Built-in price components, registered through ``kwhub_register_price_components``.

Each component reads one :class:`~kwhub.core.pricing.base.PricingContext`, makes one
vectorised pass over the period's arrays (sums, ``bincount`` per TOU period or local day,
a masked maximum) and returns :class:`~kwhub.core.pricing.base.Charge` objects with their bill
determinants. Kinds:

``fixed_energy``            $/MWh on all energy, a subset of sources, or per source asset
``tou_energy``              $/MWh per TOU period (season, day type, local hour, holidays)
``fuel_indexed``            per local day: heat rate x daily gas index + adder, floor/cap
``demand``                  $/kW-month on billing demand (peak, TOU window, ratchet)
``capacity``                $/kW-month on contracted kW
``fixed_fee``               a fixed amount split by fixed shares among parties
``take_or_pay``             shortfall below a minimum volume x price
``availability_guarantee``  liquidated damages per point below guaranteed availability
``grid_pass_through``       the grid import cost allocated to the buyer
``percentage_surcharge``    a percentage of earlier lines (e.g. a franchise fee)
``market_revenue_credit``   a share of ISO market revenue credited to the buyer (:mod:`~kwhub.core.pricing.market_credit`)

Prices escalate through ``escalation_pct_per_year`` (see :mod:`kwhub.core.pricing.base`).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kwhub.core.hookspecs import hookimpl
from kwhub.core.invoice import ChargeType
from kwhub.core.money import to_decimal
from kwhub.core.pricing.base import (
    Charge,
    ComponentConfig,
    EscalatingConfig,
    PriceComponent,
    PricingContext,
    PricingError,
    period_month_label,
)
from kwhub.core.pricing.index_series import IndexSeriesError, MissingPolicy
from kwhub.core.pricing.market_credit import MarketRevenueCredit
from kwhub.core.pricing.tou import DayType, TouError, TouRule, TouSchedule, all_day_types
from kwhub.core.timeline import previous_periods

KWH_PER_MWH = Decimal(1000)


def _mwh(kwh: float) -> Decimal:
    """Exact MWh of a float kWh sum."""
    return to_decimal(float(kwh)) / KWH_PER_MWH


# --------------------------------------------------------------------------- energy


class FixedEnergy(PriceComponent):
    """A fixed $/MWh energy price, on all energy or per source asset.

    ``per_source = true`` (or any ``source_prices``) bills one line per source asset of
    ``ctx.energy_by_source`` (restricted to ``sources`` when given), each at its own price
    (``source_prices[asset]``, else ``price_per_mwh``); sources without energy get no
    line. Otherwise one line bills the energy of ``sources`` (all energy by default).
    """

    kind = "fixed_energy"
    default_description = "Energy"
    prices_energy = True

    class Config(EscalatingConfig):
        price_per_mwh: Decimal
        per_source: bool = False
        sources: list[str] | None = None
        source_prices: dict[str, Decimal] = Field(default_factory=dict)

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        claimed = self.sources(ctx)
        if cfg.per_source or cfg.source_prices:
            sources = claimed or sorted(ctx.energy_by_source)
            if not sources:
                raise PricingError("per-source pricing needs ctx.energy_by_source")
            out = []
            for src in sources:
                kwh = float(ctx.energy_of([src]).sum())
                if kwh == 0.0:
                    continue
                out.append(self._line(ctx, kwh, cfg.source_prices.get(src, cfg.price_per_mwh), src, (src,)))
            return out
        srcs = tuple(claimed) if claimed else tuple(ctx.energy_by_source)
        return [self._line(ctx, float(ctx.energy_of(claimed).sum()), cfg.price_per_mwh, "", srcs)]

    def _line(self, ctx: PricingContext, kwh: float, base: Decimal, source: str,
              sources: tuple[str, ...]) -> Charge:
        price, esc = self.escalate(ctx, base)
        desc = self.describe("Energy")
        return self.charge(
            ctx,
            description=f"{desc} ({source})" if source else desc,
            charge_type="energy",
            quantity=_mwh(kwh),
            unit="MWh",
            unit_price=price,
            source_asset=source,
            determinants={"energy_kwh": kwh, "intervals": ctx.n_intervals, "price_per_mwh": price, **esc},
            sources=sources,
        )


class TouEnergy(PriceComponent):
    """$/MWh by time-of-use period; one line per period that has intervals.

    Settings are a :class:`~kwhub.core.pricing.tou.TouSchedule` (``rules``, ``default_period``,
    ``seasons``, ``holidays``, ``extra_holidays``) plus ``prices`` per period name.
    """

    kind = "tou_energy"
    default_description = "Energy"
    prices_energy = True

    class Config(EscalatingConfig, TouSchedule):
        prices: dict[str, Decimal]
        sources: list[str] | None = None

        @model_validator(mode="after")
        def _prices_cover_periods(self) -> TouEnergy.Config:
            names = self.period_names
            missing = [p for p in names if p not in self.prices]
            unused = [p for p in self.prices if p not in names]
            if missing:
                raise ValueError(f"prices: no price for period(s) {', '.join(missing)}")
            if unused:
                raise ValueError(f"prices: period(s) {', '.join(unused)} appear in no rule and are not the default")
            return self

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        try:
            names, idx = cfg.classify(ctx.calendar)
        except TouError as exc:
            raise PricingError(str(exc)) from None
        claimed = self.sources(ctx)
        srcs = tuple(claimed) if claimed else tuple(ctx.energy_by_source)
        energy = ctx.energy_of(claimed)
        # as Python floats and ints: the per-period figures are read a few times each
        kwh = np.bincount(idx, weights=energy, minlength=len(names)).tolist()
        count = np.bincount(idx, minlength=len(names)).tolist()
        hours_per_interval = Decimal(ctx.interval_minutes) / Decimal(60)
        out = []
        desc = self.describe("Energy")
        for i, name in enumerate(names):
            if count[i] == 0:
                continue
            price, esc = self.escalate(ctx, cfg.prices[name])
            out.append(
                self.charge(
                    ctx,
                    description=f"{desc} {name.replace('_', '-')}",
                    charge_type="energy",
                    quantity=_mwh(kwh[i]),
                    unit="MWh",
                    unit_price=price,
                    determinants={
                        "tou_period": name,
                        "energy_kwh": kwh[i],
                        "intervals": count[i],
                        "hours": hours_per_interval * count[i],
                        "holidays": cfg.holidays,
                        "timezone": ctx.contract.timezone,
                        "price_per_mwh": price,
                        **esc,
                    },
                    sources=srcs,
                    mask=idx == i,
                )
            )
        return out


class FuelIndexed(PriceComponent):
    """Per local day: price = heat_rate x index + adder, bounded by floor and cap.

    ``index`` names a series of ``ctx.index_series`` (daily $/MMBtu). Each local day with
    energy is one line: that day's MWh x that day's price. ``missing_index = "previous"``
    prices a day without publication at the latest earlier index price. The adder
    escalates with ``escalation_pct_per_year``; floor and cap do not.
    """

    kind = "fuel_indexed"
    default_description = "Energy, fuel-indexed"
    prices_energy = True

    class Config(EscalatingConfig):
        index: str
        heat_rate_mmbtu_per_mwh: Decimal = Field(gt=0)
        adder_per_mwh: Decimal = Decimal("0")
        floor_per_mwh: Decimal | None = None
        cap_per_mwh: Decimal | None = None
        missing_index: MissingPolicy = "error"
        sources: list[str] | None = None

        @model_validator(mode="after")
        def _floor_below_cap(self) -> FuelIndexed.Config:
            if self.floor_per_mwh is not None and self.cap_per_mwh is not None and self.floor_per_mwh > self.cap_per_mwh:
                raise ValueError(f"floor_per_mwh {self.floor_per_mwh} is above cap_per_mwh {self.cap_per_mwh}")
            return self

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        series = ctx.index_series.get(cfg.index)
        if series is None:
            known = ", ".join(sorted(ctx.index_series)) or "none"
            raise PricingError(f"index series {cfg.index!r} is not loaded (loaded: {known})")
        cal = ctx.calendar
        claimed = self.sources(ctx)
        srcs = tuple(claimed) if claimed else tuple(ctx.energy_by_source)
        energy = ctx.energy_of(claimed)
        day_kwh = np.bincount(cal.day_index, weights=energy, minlength=len(cal.days))
        day_count = np.bincount(cal.day_index, minlength=len(cal.days))
        priced = [i for i in range(len(cal.days)) if day_kwh[i] != 0.0]
        try:
            quotes = series.prices_for([cal.days[i] for i in priced], cfg.missing_index)
        except IndexSeriesError as exc:
            raise PricingError(str(exc)) from None
        adder, esc = self.escalate(ctx, cfg.adder_per_mwh)
        hr = cfg.heat_rate_mmbtu_per_mwh
        desc = self.describe("Energy, fuel-indexed")
        out = []
        for i, (index_price, quoted_day) in zip(priced, quotes, strict=True):
            day: date = cal.days[i]
            raw = hr * index_price + adder
            price, limit = raw, "none"
            if cfg.floor_per_mwh is not None and raw < cfg.floor_per_mwh:
                price, limit = cfg.floor_per_mwh, "floor"
            if cfg.cap_per_mwh is not None and raw > cfg.cap_per_mwh:
                price, limit = cfg.cap_per_mwh, "cap"
            dets = {
                "day": day.isoformat(),
                "energy_kwh": float(day_kwh[i]),
                "intervals": int(day_count[i]),
                "index": series.name,
                "index_price": index_price,
                "heat_rate": hr,
                "adder_per_mwh": adder,
                "formula_price": raw,
                "price_limit": limit,
                **esc,
            }
            if quoted_day != day:
                dets["index_day"] = quoted_day.isoformat()
            if cfg.floor_per_mwh is not None:
                dets["floor_per_mwh"] = cfg.floor_per_mwh
            if cfg.cap_per_mwh is not None:
                dets["cap_per_mwh"] = cfg.cap_per_mwh
            out.append(
                self.charge(
                    ctx,
                    description=f"{desc} {day.isoformat()}",
                    charge_type="energy",
                    quantity=_mwh(day_kwh[i]),
                    unit="MWh",
                    unit_price=price,
                    determinants=dets,
                    sources=srcs,
                    mask=cal.day_index == i,
                )
            )
        return out


# --------------------------------------------------------------------------- demand / capacity


class DemandWindow(BaseModel):
    """The TOU window in which the demand peak is measured."""

    model_config = ConfigDict(extra="forbid")

    months: list[int | str] | None = None
    day_types: list[DayType] = Field(default_factory=all_day_types)
    hours: list[tuple[float, float]] = Field(default_factory=lambda: [(0.0, 24.0)])
    holidays: str = "NERC"
    extra_holidays: list[date] = Field(default_factory=list)

    def schedule(self) -> TouSchedule:
        rule = TouRule(period="window", months=self.months, day_types=self.day_types, hours=self.hours)
        return TouSchedule(rules=[rule], default_period="outside", holidays=self.holidays, extra_holidays=self.extra_holidays)


class Demand(PriceComponent):
    """$/kW-month on billing demand.

    Peak = highest interval kW of ``ctx.demand_kw`` in the period (within ``window`` when
    given). Ratchet = ``ratchet_pct`` % of the highest ``ratchet_basis`` value
    (``billing_demand`` or ``peak``) of the previous ``ratchet_months`` periods found in
    ``ctx.history``. Billing demand = max(peak, ratchet, ``minimum_kw``).
    """

    kind = "demand"
    default_description = "Demand"

    class Config(EscalatingConfig):
        price_per_kw_month: Decimal
        window: DemandWindow | None = None
        ratchet_pct: Decimal = Field(default=Decimal("0"), ge=0, le=100)
        ratchet_months: int = Field(default=11, ge=0, le=120)
        ratchet_basis: Literal["billing_demand", "peak"] = "billing_demand"
        minimum_kw: Decimal = Field(default=Decimal("0"), ge=0)

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        assert ctx.demand_kw is not None
        kw = ctx.demand_kw
        dets: dict[str, object] = {}
        if cfg.window is not None:
            try:
                mask = cfg.window.schedule().window_mask(ctx.calendar, ["window"])
            except TouError as exc:
                raise PricingError(str(exc)) from None
            kw = np.where(mask, kw, -np.inf)
            dets["window_intervals"] = int(mask.sum())
        if kw.size and np.isfinite(kw).any():
            at = int(np.argmax(kw))
            peak = to_decimal(float(kw[at]))
            dets["peak_interval_start"] = ctx.utc_text(ctx.starts[at])
        else:
            peak = Decimal("0")
        billing, basis = peak, "peak"
        ratchet = Decimal("0")
        if cfg.ratchet_pct > 0 and cfg.ratchet_months > 0:
            labels = previous_periods(period_month_label(ctx.period), cfg.ratchet_months)
            seen = [(lab, ctx.history[lab]) for lab in labels if lab in ctx.history]
            if seen:
                attr = "billing_demand_kw" if cfg.ratchet_basis == "billing_demand" else "peak_kw"
                ref_label, ref = max(seen, key=lambda item: (getattr(item[1], attr), item[0]))
                ref_kw = to_decimal(float(getattr(ref, attr)))
                ratchet = ref_kw * cfg.ratchet_pct / Decimal(100)
                dets.update({"ratchet_reference_kw": ref_kw, "ratchet_reference_period": ref_label})
            dets.update({"ratchet_pct": cfg.ratchet_pct, "ratchet_months": cfg.ratchet_months, "ratchet_kw": ratchet})
            if ratchet > billing:
                billing, basis = ratchet, "ratchet"
        if cfg.minimum_kw > billing:
            billing, basis = cfg.minimum_kw, "minimum"
            dets["minimum_kw"] = cfg.minimum_kw
        price, esc = self.escalate(ctx, cfg.price_per_kw_month)
        dets.update({"peak_kw": peak, "billing_demand_kw": billing, "billing_basis": basis, "price_per_kw_month": price, **esc})
        price = ctx.per_period(price, dets)
        return [
            self.charge(
                ctx,
                description=self.describe("Demand"),
                charge_type="demand",
                quantity=billing,
                unit="kW",
                unit_price=price,
                determinants=dets,
            )
        ]


class Capacity(PriceComponent):
    """$/kW-month on contracted capacity; ``proration = "days"`` for partial months."""

    kind = "capacity"
    default_description = "Capacity reservation"

    class Config(EscalatingConfig):
        contracted_kw: Decimal = Field(ge=0)
        price_per_kw_month: Decimal
        proration: Literal["none", "days"] = "none"

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        price, esc = self.escalate(ctx, cfg.price_per_kw_month)
        dets: dict[str, object] = {"contracted_kw": cfg.contracted_kw, "price_per_kw_month": price, **esc}
        if cfg.proration == "days":
            first = ctx.period.first_day
            nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
            month_days = (nxt - date(first.year, first.month, 1)).days
            days = len(ctx.period.local_days())
            fraction = Decimal(days) / Decimal(month_days)
            price = price * fraction
            dets.update({"days": days, "month_days": month_days, "month_fraction": fraction})
        else:
            price = ctx.per_period(price, dets)
        return [
            self.charge(
                ctx,
                description=self.describe("Capacity reservation"),
                charge_type="capacity",
                quantity=cfg.contracted_kw,
                unit="kW",
                unit_price=price,
                determinants=dets,
            )
        ]


# --------------------------------------------------------------------------- fees and minimums


def allocate_by_shares(total: Decimal, shares: dict[str, Decimal], places: int) -> dict[str, Decimal]:
    """Split ``total`` (already rounded to ``places``) by ``shares`` so the parts sum exactly.

    Largest-remainder method: each party gets its share rounded down to the currency
    unit; the leftover units go one each to the largest remainders (ties: party id).
    """
    unit = Decimal(1).scaleb(-places)
    sign = -1 if total < 0 else 1
    units = int((abs(total) / unit).to_integral_value())
    raw = {p: Decimal(units) * s for p, s in shares.items()}
    base = {p: int(v.to_integral_value(rounding=ROUND_FLOOR)) for p, v in raw.items()}
    left = units - sum(base.values())
    for p in sorted(raw, key=lambda p: (-(raw[p] - base[p]), p))[:left]:
        base[p] += 1
    return {p: sign * Decimal(n) * unit for p, n in base.items()}


@lru_cache(maxsize=64)
def _checked_shares(given: tuple[tuple[str, str], ...]) -> dict[str, Decimal]:
    """``{party: share}`` of a fee's ``(party, share as written)`` pairs (a float's text is its
    ``repr``, as :func:`~kwhub.core.money.to_decimal` reads it); refuses negative shares and shares
    that do not sum to 1. Kept for the runs of one settle (the result must not be changed)."""
    shares = {p: Decimal(s) for p, s in given}
    if any(s < 0 for s in shares.values()):
        raise PricingError(f"shares must not be negative: {shares}")
    share_sum = sum(shares.values(), Decimal(0))
    if abs(share_sum - 1) > Decimal("1e-9"):
        raise PricingError(f"shares sum to {share_sum}, not 1")
    return shares


@lru_cache(maxsize=64)
def _split(given: tuple[tuple[str, str], ...], total: str, places: int) -> dict[str, Decimal]:
    """:func:`allocate_by_shares` of ``total`` (as text) by the checked shares of ``given``, kept:
    each contract of a shared fee bills its part of the same split (the result must not be changed)."""
    return allocate_by_shares(Decimal(total), _checked_shares(given), places)


class FixedFee(PriceComponent):
    """A fixed amount per period (O&M fee, shared substation, cooling plant...).

    ``total_amount`` is split among parties by ``shares`` (or ``ctx.fees_shares``); the
    shares must sum to 1. The split is exact to the cent (largest remainder), so the
    parties' lines add up to the total. This contract's line is ``party``'s part
    (default: the contract's buyer), billed as 1 x amount.
    """

    kind = "fixed_fee"
    default_description = "Fixed fee"

    class Config(EscalatingConfig):
        total_amount: Decimal
        shares: dict[str, Decimal] = Field(default_factory=dict)
        party: str | None = None
        unit: Literal["month", "each"] = "month"
        charge_type: ChargeType = "fee"

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        party = cfg.party or ctx.contract.buyer
        # every contract sharing the fee holds the same shares: checked and split once for all
        given = tuple((p, str(s)) for p, s in (cfg.shares or ctx.fees_shares).items()) or ((party, "1"),)
        shares = _checked_shares(given)
        if party not in shares:
            raise PricingError(f"party {party!r} has no share (shares: {', '.join(sorted(shares))})")
        total, esc = self.escalate(ctx, cfg.total_amount)
        part: dict[str, object] = {}
        total = ctx.money.amount(ctx.per_period(total, part))
        parts = _split(given, str(total), ctx.money.amount_places)
        return [
            self.charge(
                ctx,
                description=self.describe("Fixed fee"),
                charge_type=cfg.charge_type,
                quantity=1,
                unit=cfg.unit,
                unit_price=parts[party],
                determinants={
                    "total_amount": total,
                    "party": party,
                    "share": shares[party],
                    "parties": len(shares),
                    "allocation": "largest_remainder",
                    **esc,
                    **part,
                },
            )
        ]


class TakeOrPay(PriceComponent):
    """Shortfall below a minimum volume, billed at ``price_per_mwh``; no line when met.

    Give ``minimum_mwh`` per period, or ``minimum_mwh_per_day`` (x local days of the
    period, so short periods scale). Delivered = energy of ``sources`` (all by default).
    """

    kind = "take_or_pay"
    default_description = "Take-or-pay shortfall"

    class Config(EscalatingConfig):
        price_per_mwh: Decimal
        minimum_mwh: Decimal | None = Field(default=None, ge=0)
        minimum_mwh_per_day: Decimal | None = Field(default=None, ge=0)
        sources: list[str] | None = None

        @model_validator(mode="after")
        def _one_minimum(self) -> TakeOrPay.Config:
            if (self.minimum_mwh is None) == (self.minimum_mwh_per_day is None):
                raise ValueError("give exactly one of minimum_mwh, minimum_mwh_per_day")
            return self

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        days = len(ctx.period.local_days())
        part: dict[str, object] = {}
        minimum = ctx.per_period(cfg.minimum_mwh, part) if cfg.minimum_mwh is not None else cfg.minimum_mwh_per_day * days
        kwh = float(ctx.energy_of(cfg.sources).sum())
        delivered = _mwh(kwh)
        shortfall = minimum - delivered
        if shortfall <= 0:
            return []
        price, esc = self.escalate(ctx, cfg.price_per_mwh)
        return [
            self.charge(
                ctx,
                description=self.describe("Take-or-pay shortfall"),
                charge_type="take_or_pay",
                quantity=shortfall,
                unit="MWh",
                unit_price=price,
                determinants={
                    "minimum_mwh": minimum,
                    "delivered_kwh": kwh,
                    "delivered_mwh": delivered,
                    "shortfall_mwh": shortfall,
                    "days": days,
                    "price_per_mwh": price,
                    **esc,
                    **part,
                },
            )
        ]


class AvailabilityGuarantee(PriceComponent):
    """Liquidated damages when an asset's availability is below the guarantee.

    Measured availability = mean of ``ctx.availability[asset]`` over the period, in %,
    rounded to the policy's quantity places. Each percentage point (fractions count)
    below ``guaranteed_pct`` credits ``ld_per_point``; ``cap_amount`` caps the credit
    (then the line is 1 x -cap). No line when the guarantee is met.
    """

    kind = "availability_guarantee"
    default_description = "Availability guarantee credit"

    class Config(ComponentConfig):
        asset: str
        guaranteed_pct: Decimal = Field(gt=0, le=100)
        ld_per_point: Decimal = Field(ge=0)
        cap_amount: Decimal | None = Field(default=None, ge=0)

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        series = ctx.availability.get(cfg.asset)
        if series is None:
            known = ", ".join(sorted(ctx.availability)) or "none"
            raise PricingError(f"no availability data for asset {cfg.asset!r} (have: {known})")
        if series.size == 0:
            raise PricingError(f"availability of {cfg.asset!r} has no intervals")
        if np.isnan(series).any():
            raise PricingError(f"availability of {cfg.asset!r} has {int(np.isnan(series).sum())} NaN intervals")
        if (series < 0).any() or (series > 1).any():
            raise PricingError(f"availability of {cfg.asset!r} must be within 0..1")
        measured = ctx.money.quantity(to_decimal(float(series.mean())) * 100)
        points = cfg.guaranteed_pct - measured
        if points <= 0:
            return []
        part: dict[str, object] = {}
        ld = ctx.per_period(cfg.ld_per_point, part)
        cap = ctx.per_period(cfg.cap_amount, {}) if cfg.cap_amount is not None else None
        uncapped = points * ld
        dets: dict[str, object] = {
            **part,
            "asset": cfg.asset,
            "guaranteed_pct": cfg.guaranteed_pct,
            "measured_pct": measured,
            "shortfall_points": points,
            "ld_per_point": cfg.ld_per_point,
            "intervals": int(series.size),
            "uncapped_amount": -uncapped,
        }
        desc = self.describe("Availability guarantee credit")
        if cap is not None and uncapped > cap:
            dets["cap_amount"] = cap
            return [
                self.charge(ctx, description=f"{desc} (capped)", charge_type="availability_credit", quantity=1,
                            unit="each", unit_price=-cap, source_asset=cfg.asset, determinants=dets)
            ]
        return [
            self.charge(ctx, description=desc, charge_type="availability_credit", quantity=points,
                        unit="each", unit_price=-ld, source_asset=cfg.asset, determinants=dets)
        ]


class GridPassThrough(PriceComponent):
    """The cost of the grid import allocated to this buyer, optionally marked up.

    In a settlement run the component prices the grid energy it claims (by default every
    grid-import source; see :mod:`kwhub.core.contract_energy`) at ``ctx.grid_price_per_mwh``
    (``[settlement] grid_price_per_mwh``); grid energy without a price is an error, never
    a zero line. Outside a run it bills ``ctx.grid_import_cost`` for
    ``ctx.grid_import_kwh``. Billed as 1 x cost (``unit = "each"``, exact) or as MWh x
    average price (``"MWh"``).
    """

    kind = "grid_pass_through"
    default_description = "Grid import pass-through"
    prices_energy = True
    default_sources = "grid"

    class Config(ComponentConfig):
        markup_pct: Decimal = Decimal("0")
        unit: Literal["each", "MWh"] = "each"
        sources: list[str] | None = None

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        claimed: tuple[str, ...] = ()
        if self.component_id in ctx.claims:
            claimed = ctx.claims[self.component_id]
            kwh = float(ctx.energy_of(list(claimed)).sum()) if claimed else 0.0
            if kwh and ctx.grid_price_per_mwh is None:
                raise PricingError(f"{kwh} kWh of grid import to bill, but no grid price: set "
                                   "[settlement] grid_price_per_mwh")
            base_cost = _mwh(kwh) * (ctx.grid_price_per_mwh or Decimal(0))
        else:
            kwh = float(ctx.grid_import_kwh)
            base_cost = to_decimal(ctx.grid_import_cost)
        cost = base_cost * (1 + cfg.markup_pct / Decimal(100))
        if cost == 0 and kwh == 0.0:
            return []
        mwh = _mwh(kwh)
        dets: dict[str, object] = {"grid_import_kwh": kwh, "grid_import_cost": base_cost, "markup_pct": cfg.markup_pct}
        if ctx.grid_price_per_mwh is not None:
            dets["grid_price_per_mwh"] = ctx.grid_price_per_mwh
        if mwh:
            dets["avg_price_per_mwh"] = ctx.money.unit_price(cost / mwh)
        desc = self.describe("Grid import pass-through")
        if cfg.unit == "MWh":
            if not mwh:
                raise PricingError("grid import cost without grid import energy cannot be billed per MWh")
            return [self.charge(ctx, description=desc, charge_type="pass_through", quantity=mwh, unit="MWh",
                                unit_price=cost / mwh, determinants=dets, sources=claimed)]
        return [self.charge(ctx, description=desc, charge_type="pass_through", quantity=1, unit="each",
                            unit_price=ctx.money.amount(cost), determinants=dets, sources=claimed)]


class PercentageSurcharge(PriceComponent):
    """A percentage of earlier lines (e.g. a 3 % franchise fee on energy lines).

    Runs after the other components (``stage = 1``); the base is the sum of the rounded
    amounts of the charges whose ``charge_type`` is in ``applies_to`` (and whose
    component id is in ``components`` when given). Billed as base x rate.
    """

    kind = "percentage_surcharge"
    stage: ClassVar[int] = 1
    default_description = "Surcharge"

    class Config(ComponentConfig):
        percent: Decimal
        applies_to: list[ChargeType] = Field(default_factory=lambda: list[ChargeType](["energy"]))
        components: list[str] | None = None
        charge_type: ChargeType = "other"

    def compute(self, ctx: PricingContext) -> list[Charge]:
        cfg = self.config
        picked = [
            c for c in ctx.prior_charges
            if c.charge_type in cfg.applies_to and (cfg.components is None or c.component_id in cfg.components)
        ]
        base = sum((c.amount for c in picked), Decimal("0"))
        if not picked or base == 0:
            return []
        rate = cfg.percent / Decimal(100)
        return [
            self.charge(
                ctx,
                description=self.describe(f"Surcharge {cfg.percent}%"),
                charge_type=cfg.charge_type,
                quantity=base,
                unit="each",
                unit_price=rate,
                determinants={"percent": cfg.percent, "base_amount": base, "base_lines": len(picked),
                              "applies_to": ",".join(cfg.applies_to)},
            )
        ]


BUILTIN_COMPONENTS: tuple[type[PriceComponent], ...] = (
    FixedEnergy,
    TouEnergy,
    FuelIndexed,
    Demand,
    Capacity,
    FixedFee,
    TakeOrPay,
    AvailabilityGuarantee,
    GridPassThrough,
    PercentageSurcharge,
    MarketRevenueCredit,
)


def builtin_components() -> dict[str, type[PriceComponent]]:
    """``{kind: class}`` of the built-in components (what the hook registers)."""
    return {c.kind: c for c in BUILTIN_COMPONENTS}


@hookimpl
def kwhub_register_price_components(register) -> None:
    """Register the built-in price components."""
    for cls in BUILTIN_COMPONENTS:
        register(cls)
