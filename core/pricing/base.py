"""The pricing contract: price components turn a period's bill determinants into charges.

Settlement (``kwhub.core.settlement``) builds one :class:`PricingContext` per contract and
billing period and calls :func:`kwhub.core.pricing.lines.price_contract` with the contract's
components (built by :func:`kwhub.core.pricing.lines.build_components`). Each component
returns :class:`Charge` objects; :func:`kwhub.core.pricing.lines.charges_to_lines` turns them
into ``kwhub.core.invoice.InvoiceLine``.

The contract between settlement and pricing
-------------------------------------------
``PricingContext`` fields (all arrays have one value per interval of the period, in UTC
start order):

* ``contract`` (:class:`kwhub.core.campus.Contract`), ``period`` (:class:`kwhub.core.timeline.BillingPeriod`),
  ``interval_minutes``.
* ``starts``: int64 UTC epoch seconds of each interval start (see :func:`period_starts`).
* ``energy_kwh``: float64, the buyer's allocated/metered kWh for this contract. Never NaN
  (settlement passes cleaned data; a NaN raises :class:`PricingError`).
* ``energy_by_source``: ``{source asset id: float64 kWh}``, summing to ``energy_kwh``.
* ``demand_kw``: float64 kW of the load channel(s) (kWh x 60 / minutes); defaults to the
  demand implied by ``energy_kwh``.
* ``history``: ``{"YYYY-MM": PeriodHistory}`` of earlier periods, for demand ratchets.
  :func:`summarize_period` builds the entry for the period just priced.
* ``index_series``: ``{name: IndexSeries}`` daily price indices (fuel-indexed prices).
* ``availability``: ``{asset id: float64 fraction 0..1}`` per interval.
* ``grid_import_cost`` (Decimal or float, currency units) and ``grid_import_kwh``: the
  grid import cost and energy allocated to this buyer, for pass-through.
* ``fees_shares``: ``{party id: share}`` for fixed fees shared among parties (a component
  may carry its own ``shares`` instead).
* ``contract_year``: 1 in the first 12 months from ``contract.start`` (``YYYY-MM``), 2 in
  the next 12... (computed when not given; 1 when the contract has no start).
* ``policy``: :class:`kwhub.core.money.MoneyPolicy` from the contract's currency, precision and
  rounding (computed when not given).
* ``period_share``: 1, or, when an amendment splits the period, the share of the billing
  period's local days this context prices (:mod:`kwhub.core.pricing.by_version`); amounts
  per billing period (fees, $/kW-month, per-period minimums, damages) scale by it.
* ``market_revenue``: the period's ISO market revenue
  (:class:`kwhub.core.pricing.market_credit.MarketRevenue`: latest statement versions, sign
  flipped once), loaded by the hub when a contract has a ``market_revenue_credit`` component.
* ``allocated_kwh_total`` / ``allocated_starts``: ``{source: float64 kWh per interval}``
  allocated to all tenants over the whole billing period, and those intervals' starts (set
  for allocation-based contracts; the denominator of a pro-rata market revenue credit).

Floats are used for the kernels (one vectorised pass per component over the period's
arrays). From the charge on, money is Decimal: :meth:`PriceComponent.charge` converts
the float quantity once (``kwhub.core.money.to_decimal``), rounds quantity and unit price with
the policy, and computes ``amount = policy.amount(quantity x unit_price)``. So every
charge satisfies ``amount == round(quantity x unit_price)`` exactly, which the invoice
formats check; capped or pass-through amounts are expressed as ``1 x amount``.

Escalation (design choice)
--------------------------
There is no separate "escalator" component. Components with a price accept
``escalation_pct_per_year`` (and ``escalation = "compound" | "simple"``): the price used
in contract year *n* is ``base x (1 + pct/100) ** (n - 1)`` (compound) or
``base x (1 + pct/100 x (n - 1))`` (simple). The escalated unit price and the factor are
reported as determinants (``base_price``, ``contract_year``, ``escalation_factor``).

Writing a component
-------------------
Subclass :class:`PriceComponent`, set ``kind`` and a nested pydantic ``Config``
(``extra="forbid"``; subclass :class:`ComponentConfig` or :class:`EscalatingConfig`),
implement ``compute(ctx) -> list[Charge]`` and register the class through the
``kwhub_register_price_components`` hook. A component with ``stage = 1`` runs after the
stage-0 components and sees their charges in ``ctx.prior_charges`` (used by surcharges).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from kwhub.core.campus import Contract
from kwhub.core.invoice import ChargeType
from kwhub.core.money import MoneyPolicy, money_str, to_decimal
from kwhub.core.pricing.index_series import IndexSeries
from kwhub.core.pricing.tou import LocalCalendar
from kwhub.core.timeline import BillingPeriod

if TYPE_CHECKING:
    from kwhub.core.pricing.market_credit import MarketRevenue

Unit = Literal["kWh", "MWh", "kW", "month", "each"]


class PricingError(ValueError):
    """A component or context that cannot be priced; the message names what and where."""


@dataclass(frozen=True)
class PeriodHistory:
    """What a demand ratchet needs to remember of one earlier billing period."""

    billing_demand_kw: float
    peak_kw: float
    energy_kwh: float


@dataclass
class Charge:
    """One priced line: ``amount == policy.amount(quantity x unit_price)``.

    ``determinants`` holds the bill determinants as exact decimal strings (e.g.
    ``energy_kwh``, ``intervals``, ``span``, ``peak_kw``, ``ratchet_kw``,
    ``billing_demand_kw``, ``index_avg``, ``heat_rate``, ``tou_period``).
    """

    component_id: str
    kind: str
    description: str
    charge_type: ChargeType
    quantity: Decimal
    unit: Unit
    unit_price: Decimal
    amount: Decimal
    source_asset: str = ""
    determinants: dict[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # the sources whose energy this charge prices (empty: not an energy charge)
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)  # its intervals (None: all)


def period_starts(period: BillingPeriod, interval_minutes: int) -> np.ndarray:
    """UTC epoch-second starts of every interval of ``period`` (int64)."""
    step = interval_minutes * 60
    return np.arange(period.span.start_epoch, period.span.end_epoch, step, dtype=np.int64)


def money_policy(contract: Contract) -> MoneyPolicy:
    """The money policy of a contract (currency, precision, rounding)."""
    return MoneyPolicy(currency=contract.currency, places=contract.precision, rounding=contract.rounding)


def _year_month(label: str) -> tuple[int, int] | None:
    try:
        y, m = (int(x) for x in label.split("-"))
    except ValueError:
        return None
    return (y, m) if 1 <= m <= 12 else None


def period_month_label(period: BillingPeriod) -> str:
    """``YYYY-MM`` of a period (its label when it is one, else its first local day's month)."""
    ym = _year_month(period.label)
    if ym is None:
        ym = (period.first_day.year, period.first_day.month)
    return f"{ym[0]:04d}-{ym[1]:02d}"


def contract_year_of(contract: Contract, period: BillingPeriod) -> int:
    """Contract year (1-based) of ``period`` counted from ``contract.start`` (``YYYY-MM``)."""
    if not contract.start:
        return 1
    start = _year_month(contract.start)
    if start is None:
        raise PricingError(f"contract {contract.id}: start {contract.start!r} is not YYYY-MM")
    y, m = _year_month(period_month_label(period))  # type: ignore[misc]
    months = (y * 12 + m) - (start[0] * 12 + start[1])
    if months < 0:
        raise PricingError(f"contract {contract.id}: period {period.label} is before the contract start {contract.start}")
    return months // 12 + 1


def det(value: Any) -> str:
    """A determinant as an exact decimal string (floats via ``repr``, never scientific)."""
    kind = type(value)  # the common exact types first (a run writes some thirty determinants)
    if kind is str:
        return value
    if kind is float:
        return money_str(Decimal(repr(value)))
    if kind is Decimal:
        return money_str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, (Decimal, float, int)):
        return money_str(to_decimal(value))
    return str(value)


@dataclass
class PricingContext:
    """Everything a price component may read for one contract and billing period."""

    contract: Contract
    period: BillingPeriod
    interval_minutes: int
    starts: np.ndarray
    energy_kwh: np.ndarray
    energy_by_source: dict[str, np.ndarray] = field(default_factory=dict)
    demand_kw: np.ndarray | None = None
    history: dict[str, PeriodHistory] = field(default_factory=dict)
    index_series: dict[str, IndexSeries] = field(default_factory=dict)
    availability: dict[str, np.ndarray] = field(default_factory=dict)
    grid_import_cost: Decimal | float = Decimal("0")
    grid_import_kwh: float = 0.0
    fees_shares: dict[str, Decimal | float] = field(default_factory=dict)
    contract_year: int | None = None
    policy: MoneyPolicy | None = None
    prior_charges: list[Charge] = field(default_factory=list)
    claims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    grid_price_per_mwh: Decimal | None = None
    period_share: Decimal = Decimal(1)  # the share of the billing period's days priced (< 1: a contract version's part)
    market_revenue: MarketRevenue | None = None  # the period's ISO market revenue, when loaded
    #: every tenant's allocated kWh per source and interval of the whole billing period (at
    #: ``allocated_starts``; not cut when an amendment splits the period)
    allocated_kwh_total: dict[str, np.ndarray] = field(default_factory=dict)
    allocated_starts: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = f"contract {self.contract.id} period {self.period.label}"
        self.starts = np.asarray(self.starts, dtype=np.int64)
        n = self.starts.shape[0]
        self.energy_kwh = np.asarray(self.energy_kwh, dtype=np.float64)
        if self.energy_kwh.shape != (n,):
            raise PricingError(f"{where}: energy_kwh has shape {self.energy_kwh.shape}, starts has {n} intervals")
        if np.isnan(self.energy_kwh).any():
            raise PricingError(f"{where}: energy_kwh contains NaN at {int(np.isnan(self.energy_kwh).sum())} intervals")
        if self.demand_kw is None:
            self.demand_kw = self.energy_kwh * (60.0 / self.interval_minutes)
        else:
            self.demand_kw = np.asarray(self.demand_kw, dtype=np.float64)
            if self.demand_kw.shape != (n,):
                raise PricingError(f"{where}: demand_kw has shape {self.demand_kw.shape}, starts has {n} intervals")
        for label, arrays in (("energy_by_source", self.energy_by_source), ("availability", self.availability)):
            for key, arr in list(arrays.items()):
                arr = np.asarray(arr, dtype=np.float64)
                if arr.shape != (n,):
                    raise PricingError(f"{where}: {label}[{key!r}] has shape {arr.shape}, starts has {n} intervals")
                arrays[key] = arr
        if self.policy is None:
            self.policy = money_policy(self.contract)
        if self.contract_year is None:
            self.contract_year = contract_year_of(self.contract, self.period)

    @property
    def money(self) -> MoneyPolicy:
        assert self.policy is not None
        return self.policy

    @property
    def n_intervals(self) -> int:
        return int(self.starts.shape[0])

    @cached_property
    def calendar(self) -> LocalCalendar:
        """Local-time arrays of the interval starts in the contract's time zone (cached)."""
        return LocalCalendar.from_starts(self.starts, self.contract.timezone)

    @property
    def span_text(self) -> str:
        s, e = self.period.span.start, self.period.span.end
        return f"{s.isoformat()}/{e.isoformat()}"

    def claimed_sources(self, component_id: str, fallback: list[str] | None) -> list[str] | None:
        """The sources a component prices: its claim in the settlement's energy plan
        (:mod:`kwhub.core.contract_energy`), else ``fallback`` (its own ``sources`` setting)."""
        if component_id in self.claims:
            return list(self.claims[component_id])
        return fallback

    def energy_of(self, sources: list[str] | None) -> np.ndarray:
        """The buyer's kWh per interval, restricted to ``sources`` when given."""
        if not sources:
            return self.energy_kwh
        missing = [s for s in sources if s not in self.energy_by_source]
        if missing:
            known = ", ".join(sorted(self.energy_by_source)) or "none"
            raise PricingError(f"no allocated energy for source(s) {', '.join(missing)} (known: {known})")
        total = np.zeros(self.n_intervals, dtype=np.float64)
        for s in sources:
            total += self.energy_by_source[s]
        return total

    def per_period(self, amount: Decimal, dets: dict[str, Any]) -> Decimal:
        """``amount`` (due per billing period) for the part of the period this context prices;
        records ``period_share`` in ``dets`` when it is a part."""
        if self.period_share == 1:
            return amount
        dets["period_share"] = self.period_share
        return amount * self.period_share

    def utc_text(self, epoch_s: int) -> str:
        return datetime.fromtimestamp(int(epoch_s), tz=UTC).isoformat()


class ComponentConfig(BaseModel):
    """Settings every component accepts; subclasses add their own (unknown keys are errors).

    Schemas are built when a component's settings are first validated, not when the
    class is defined: a command that prices nothing does not pay for every component.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    description: str = ""


class EscalatingConfig(ComponentConfig):
    """Settings of a component whose price escalates by contract year."""

    escalation_pct_per_year: Decimal = Decimal("0")
    escalation: Literal["compound", "simple"] = "compound"


class PriceComponent:
    """Base class of contract price components.

    ``kind`` names the component in configuration; ``Config`` validates its settings;
    ``compute`` returns the charges of one period. ``stage`` orders evaluation (stage-1
    components see the stage-0 charges in ``ctx.prior_charges``).
    """

    kind: ClassVar[str] = ""
    stage: ClassVar[int] = 0
    default_description: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]] = ComponentConfig
    #: True for components that bill energy: each claims a part of the contract's energy
    #: (see :mod:`kwhub.core.contract_energy`) so that no kWh is billed twice.
    prices_energy: ClassVar[bool] = False
    #: the energy such a component prices when its ``sources`` setting is empty
    #: (``"grid"``, ``"battery"`` or ``"generation"``); None: what the other components leave.
    default_sources: ClassVar[str | None] = None

    def __init__(self, component_id: str, config: BaseModel | Mapping[str, Any] | None = None) -> None:
        self.component_id = component_id
        self.config: Any  # an instance of the subclass's Config
        if isinstance(config, self.Config):
            self.config = config
        else:
            try:
                self.config = self.Config.model_validate(dict(config or {}))
            except ValidationError as exc:
                raise PricingError(f"component {component_id!r} ({self.kind}): {format_validation_error(exc)}") from None

    def compute(self, ctx: PricingContext) -> list[Charge]:
        """Return this component's charges for ``ctx`` (override)."""
        raise PricingError(f"{type(self).__name__} does not implement compute()")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.component_id!r})"

    # -- helpers for subclasses -------------------------------------------------
    def describe(self, fallback: str) -> str:
        text = getattr(self.config, "description", "") or self.default_description or fallback
        return text

    def sources(self, ctx: PricingContext) -> list[str] | None:
        """The sources this component prices (None: all of the context's energy)."""
        return ctx.claimed_sources(self.component_id, getattr(self.config, "sources", None))

    def escalate(self, ctx: PricingContext, base: Decimal) -> tuple[Decimal, dict[str, str]]:
        """The price of ``base`` in the context's contract year, and its determinants."""
        cfg = self.config
        pct = Decimal(getattr(cfg, "escalation_pct_per_year", 0) or 0)
        year = int(ctx.contract_year or 1)
        if pct == 0:
            return base, {}
        rate = pct / Decimal(100)
        if getattr(cfg, "escalation", "compound") == "simple":
            factor = Decimal(1) + rate * (year - 1)
        else:
            factor = (Decimal(1) + rate) ** (year - 1)
        return base * factor, {
            "base_price": det(base),
            "contract_year": str(year),
            "escalation_pct_per_year": det(pct),
            "escalation_factor": det(factor),
        }

    def charge(
        self,
        ctx: PricingContext,
        *,
        description: str,
        charge_type: ChargeType,
        quantity: Decimal | float | int,
        unit: Unit,
        unit_price: Decimal | float | int,
        source_asset: str = "",
        determinants: Mapping[str, Any] | None = None,
        sources: tuple[str, ...] | list[str] | None = None,
        mask: np.ndarray | None = None,
    ) -> Charge:
        """Build a :class:`Charge`: round quantity and unit price, then the amount, once.

        Energy charges pass the ``sources`` they price and, when they cover part of the
        period, the boolean ``mask`` of their intervals (owner statements and energy
        accounting follow the energy through them).
        """
        pol = ctx.money
        q = pol.quantity(to_decimal(quantity))
        p = pol.unit_price(to_decimal(unit_price))
        amount = pol.amount(q * p)
        dets = {"component": self.component_id, "span": ctx.span_text}
        dets.update({k: det(v) for k, v in (determinants or {}).items()})
        return Charge(
            component_id=self.component_id,
            kind=self.kind,
            description=description,
            charge_type=charge_type,
            quantity=q,
            unit=unit,
            unit_price=p,
            amount=amount,
            source_asset=source_asset,
            determinants=dets,
            sources=tuple(sources or ()),
            mask=mask,
        )


def format_validation_error(exc: ValidationError) -> str:
    """``field: message; field: message`` from a pydantic error."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(settings)"
        parts.append(f"{loc}: {err.get('msg', '')}")
    return "; ".join(parts)


def summarize_period(ctx: PricingContext, charges: list[Charge], component_id: str | None = None) -> PeriodHistory:
    """The :class:`PeriodHistory` of a priced period, to feed later ratchets.

    ``billing_demand_kw`` is taken from the demand charge (``component_id``, or the
    highest of all demand charges); without one it is the period's peak kW.
    """
    assert ctx.demand_kw is not None
    peak = float(ctx.demand_kw.max()) if ctx.n_intervals else 0.0
    billing = [
        float(c.determinants["billing_demand_kw"])
        for c in charges
        if "billing_demand_kw" in c.determinants and (component_id is None or c.component_id == component_id)
    ]
    return PeriodHistory(
        billing_demand_kw=max(billing) if billing else peak,
        peak_kw=peak,
        energy_kwh=float(ctx.energy_kwh.sum()),
    )

