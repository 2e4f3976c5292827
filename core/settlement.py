"""Settlement: from a period's interval matrix to a priced, hashed run statement.

A run is (contract, billing period in local time, version kind ``initial`` | ``final`` |
``true_up``, sequence). This module is pure (no SQL): :mod:`kwhub.hub.settle.service`
loads the data, calls these functions and stores the result.

1. :func:`contract_channels` says which channels a contract's run depends on: its load
   channels, plus every channel of the campus balance when the contract prices by
   source (the allocation couples all of them), plus availability channels of the
   assets its components name.
2. :func:`build_context` turns the matrix (and the allocation) into a
   :class:`~kwhub.core.pricing.base.PricingContext` for the contract.
3. :func:`compute_run` prices it (:func:`kwhub.core.pricing.lines.price_contract`) and returns
   the full lines and the determinants.
4. :func:`delta_lines` compares the full lines with the previous version's, line by line
   per component: a later version bills only the difference, as an adjustment invoice
   (net positive) or a credit note (net negative; its amounts are what is credited).
5. :func:`build_statement` assembles the canonical statement; :func:`canonical_json`
   serialises it byte-for-byte reproducibly and :func:`statement_hash` hashes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import orjson

from kwhub.core.accounting import Account, buyer_accounts, unbilled_of
from kwhub.core.allocation import AllocationResult, SharedMethod
from kwhub.core.campus import Campus, Channel, Contract, ReviewChecks
from kwhub.core.carbon_amounts import LineEmissions
from kwhub.core.carbon_factors import CarbonSetup
from kwhub.core.contract_energy import LOAD, ContractEnergy, EnergyPlan, plan_energy
from kwhub.core.contract_versions import contract_versions, terms_record, versions_in_period
from kwhub.core.input_limits import ABSURD_KWH
from kwhub.core.intervals import IntervalMatrix
from kwhub.core.invoice import (
    DocumentKind,
    DocumentReference,
    Invoice,
    InvoiceLine,
    PartyRef,
    TaxSubtotal,
    tax_subtotals,
)
from kwhub.core.line_emissions import PeriodBasis, attach
from kwhub.core.money import MoneyPolicy, money_str, to_decimal
from kwhub.core.pricing.base import (
    Charge,
    PeriodHistory,
    PricingContext,
    det,
    money_policy,
    summarize_period,
)
from kwhub.core.pricing.by_version import price_by_version
from kwhub.core.pricing.index_series import IndexSeries
from kwhub.core.pricing.lines import build_components, charges_to_lines, price_contract
from kwhub.core.pricing.tou import LocalCalendar
from kwhub.core.quality import Quality
from kwhub.core.review import ChannelStats
from kwhub.core.tax_categories import legacy_tax_key
from kwhub.core.timeline import BillingPeriod

VersionKind = Literal["initial", "final", "true_up"]
STATEMENT_SCHEMA = "kwhub.settlement.statement/2"
BALANCE_ROLES = ("tenant_load", "shared_load", "generation", "grid_import", "grid_export",
                 "battery_charge", "battery_discharge")
_UNIT_TO_KWH = {"kWh": 1.0, "Wh": 0.001, "MWh": 1000.0}


class SettlementError(ValueError):
    """A run that cannot be computed; the message names contract, period and cause."""


@dataclass
class SettlementOptions:
    """How runs read and treat data.

    ``layer``: the store layer to settle from (``validated``); ``fallback_raw``: read the
    raw layer for channel-days that have no validated content; ``missing``: ``error``
    refuses intervals without data, ``zero`` counts them as 0 kWh (and reports them);
    ``shared``: how the shared load is carried by tenants; ``grid_price_per_mwh``: cost of
    grid import for pass-through lines; ``index_series``: price indices by name.
    ``review_policy`` / ``review_checks``: the hub-wide review gate (``[review]``; a
    contract's own ``review`` overrides them, see :mod:`kwhub.core.review`).
    """

    layer: str = "validated"
    fallback_raw: bool = False
    missing: Literal["error", "zero"] = "error"
    shared: SharedMethod = "pro_rata"
    grid_price_per_mwh: Decimal | None = None
    index_series: dict[str, IndexSeries] = field(default_factory=dict)
    fees_shares: dict[str, Decimal | float] = field(default_factory=dict)
    review_policy: Literal["auto", "manual"] = "auto"
    review_checks: ReviewChecks | None = None
    carbon: CarbonSetup | None = None  # [emissions]: put the emissions of the billed energy on the lines
    #: the period's ISO market revenue (``kwhub.core.pricing.market_credit.MarketRevenue``), for
    #: ``market_revenue_credit`` components; the hub sets it per period through ``market_revenue_loader``
    market_revenue: Any = None
    #: ``(database, period label) -> MarketRevenue``: how the hub loads it (None: no markets configured)
    market_revenue_loader: Any = None


@dataclass(frozen=True)
class InputRef:
    """One channel-day a run read."""

    channel_id: str
    day: date
    layer: str
    version: int
    content_hash: str

    def as_row(self) -> list[Any]:
        return [self.channel_id, self.day.isoformat(), self.layer, self.version, self.content_hash]


@dataclass(frozen=True)
class InputSummary:
    """What a run statement records of the inputs: the same fields
    :func:`build_statement` derives from a list of :class:`InputRef`, precomputed
    (the service keeps a run's channel-days packed, not as one object per day)."""

    count: int
    digest: str
    channels: list[str]
    layers: list[str]


@dataclass(frozen=True)
class RunKey:
    """Identity of a run; ``run_id`` is deterministic."""

    contract_id: str
    period: str
    version_kind: str
    seq: int = 1

    @property
    def run_id(self) -> str:
        return f"{self.contract_id}:{self.period}:{self.version_kind}:{self.seq}"

    @property
    def invoice_id(self) -> str:
        return f"inv:{self.run_id}"


@dataclass
class RunComputation:
    """What pricing produced for one contract and period."""

    contract: Contract
    period: BillingPeriod
    context: PricingContext
    charges: list[Charge]
    lines: list[InvoiceLine]
    history: PeriodHistory
    allocation: dict[str, Any]
    missing_intervals: int = 0
    energy: ContractEnergy | None = None
    accounts: list[Account] = field(default_factory=list)
    attribution: list[dict[str, str]] = field(default_factory=list)  # per full line: {source: kWh}
    channels: list[ChannelStats] = field(default_factory=list)
    campus: dict[str, Any] | None = None
    carbon: dict[str, Any] | None = None  # the frozen carbon basis the lines' emissions came from
    terms: dict[str, Any] | None = None  # the contract versions used (kwhub.core.contract_versions.terms_record)


# --------------------------------------------------------------------------- channels


@dataclass(frozen=True)
class _CampusMaps:
    channels: dict[str, Channel]
    assets: dict[str, Any]
    tenant_loads: dict[str, list[str]]


_MAPS: list[tuple[Campus, _CampusMaps]] = []


def _maps(campus: Campus) -> _CampusMaps:
    """Lookups of a campus, made once per campus object (runs of one settle share them)."""
    if _MAPS and _MAPS[0][0] is campus:
        return _MAPS[0][1]
    loads: dict[str, list[str]] = {}
    for c in campus.channels:
        if c.role == "tenant_load":
            loads.setdefault(c.party, []).append(c.id)
    maps = _CampusMaps({c.id: c for c in campus.channels}, {a.id: a for a in campus.assets}, loads)
    _MAPS[:] = [(campus, maps)]
    return maps


def tenant_channels(campus: Campus, party: str) -> list[str]:
    """The ``tenant_load`` channels of a party."""
    return list(_maps(campus).tenant_loads.get(party, []))


def load_channels(campus: Campus, contract: Contract) -> list[str]:
    """The contract's own load channels (``load_channels``, else the buyer's tenant loads)."""
    return list(contract.load_channels) or tenant_channels(campus, contract.buyer)


def needs_allocation(plan: EnergyPlan, contract: Contract) -> bool:
    """True when the contract bills allocated energy (so its run depends on the allocation)."""
    return plan.of(contract.id).basis == "allocation"


def component_assets(contract: Contract) -> list[str]:
    """Assets named by the contract (its sources and components' ``asset`` settings)."""
    out = list(contract.sources)
    for spec in contract.components:
        asset = spec.settings().get("asset")
        if isinstance(asset, str) and asset not in out:
            out.append(asset)
    return out


def contract_channels(campus: Campus, contract: Contract, plan: EnergyPlan | None = None) -> list[str]:
    """Every channel the contract's run reads, in campus order: its load channels, every
    channel of the campus balance when it bills allocated energy (the allocation couples
    all of them), the output channels of the sources it buys metered, and the
    availability channels of the assets its components name."""
    plan = plan or plan_energy(campus)
    ce = plan.of(contract.id)
    wanted = set(load_channels(campus, contract))
    if ce.basis == "allocation":
        wanted |= {c.id for c in campus.channels if c.role in BALANCE_ROLES}
    elif ce.basis == "metered_sources":
        wanted |= {c.id for c in campus.channels if c.asset in ce.scope and c.role in _SOURCE_ROLES}
    assets = set(component_assets(contract))
    wanted |= {c.id for c in campus.channels if c.role == "availability" and c.asset in assets}
    unknown = sorted(wanted - {c.id for c in campus.channels})
    if unknown:
        raise SettlementError(f"contract {contract.id!r}: unknown channel(s) {', '.join(unknown)}")
    return [c.id for c in campus.channels if c.id in wanted]


_SOURCE_ROLES = ("generation", "battery_discharge", "grid_import")


def kwh_factor(channel: Channel, interval_minutes: int) -> float:
    """Factor from a channel's unit to kWh per interval (power units integrate over the interval)."""
    if channel.unit in _UNIT_TO_KWH:
        return _UNIT_TO_KWH[channel.unit]
    if channel.unit == "kW":
        return interval_minutes / 60.0
    if channel.unit == "MW":
        return 1000.0 * interval_minutes / 60.0
    return 1.0


def regrid(values: np.ndarray, factor: int, how: Literal["sum", "mean"] = "sum") -> np.ndarray:
    """Aggregate ``(channels, N * factor)`` to ``(channels, N)`` by sum or mean (NaN stays NaN)."""
    if factor == 1:
        return values
    c, n = values.shape
    if n % factor:
        raise SettlementError(f"{n} intervals do not split into groups of {factor}")
    v = values.reshape(c, n // factor, factor)
    return v.sum(axis=2) if how == "sum" else v.mean(axis=2)


# --------------------------------------------------------------------------- context


def _row_index(matrix: IntervalMatrix) -> dict[str, int]:
    """``{channel: row}`` of the matrix (kept on the matrix while its channel list is the same)."""
    ids = matrix.channel_ids
    cached = matrix.__dict__.get("_row_index")
    if cached is not None and cached[0] is ids and cached[1] == len(ids):
        return cached[2]
    index = {cid: i for i, cid in enumerate(ids)}
    matrix.__dict__["_row_index"] = (ids, len(ids), index)
    return index


def _select_rows(values: np.ndarray, rows: list[int]) -> np.ndarray:
    """``values[rows]``; a view when the rows are consecutive."""
    if rows[-1] - rows[0] == len(rows) - 1 and rows == list(range(rows[0], rows[-1] + 1)):
        return values[rows[0]:rows[-1] + 1]
    return values[rows]


def _rows(matrix: IntervalMatrix, ids: Iterable[str]) -> np.ndarray:
    index = _row_index(matrix)
    rows = [index[c] for c in ids if c in index]
    if not rows:
        return np.zeros(matrix.n_intervals)
    sub = _select_rows(matrix.values, rows)
    total = sub.sum(axis=0)  # what nansum adds when there is no NaN
    if np.isnan(total).any():
        return np.nansum(sub, axis=0)
    return total


def missing_report(matrix: IntervalMatrix, channel_ids: Sequence[str]) -> dict[str, int]:
    """``{channel: intervals without data}`` for channels with gaps."""
    index = _row_index(matrix)
    rows = [index[c] for c in channel_ids if c in index]
    if not rows:
        return {}
    facts = _row_facts(matrix, rows)
    if facts is not None:
        missing = facts.missing[rows]
        gappy = np.flatnonzero(missing)
        return {matrix.channel_ids[rows[g]]: int(missing[g]) for g in gappy.tolist()}
    sub = _select_rows(matrix.values, rows)
    gappy = np.flatnonzero(np.isnan(sub.sum(axis=1)))  # a row with a NaN sums to NaN
    if not len(gappy):
        return {}
    counts = np.isnan(sub[gappy]).sum(axis=1)
    return {matrix.channel_ids[rows[g]]: int(n) for g, n in zip(gappy.tolist(), counts, strict=True) if n}


@dataclass(frozen=True)
class _RowFacts:
    """Per-row statistics of a whole matrix, computed in one pass per statistic and shared by the
    runs of a period (each picks its channels' rows): kWh (NaN skipped), intervals without data,
    the interval of the highest value and that value, the worst quality code, and whether every
    value lies within :data:`ABSURD_KWH`."""

    values: np.ndarray  # the array they were computed from (identity, not content)
    kwh: np.ndarray
    missing: np.ndarray
    at: np.ndarray
    peak: np.ndarray
    worst: np.ndarray
    sane: bool

    @property
    def clean(self) -> bool:
        """Every value is a number within bounds (no NaN, no infinity)."""
        return self.sane and not self.missing.any()


def share_row_statistics(matrix: IntervalMatrix) -> None:
    """Compute the per-row statistics of ``matrix`` once (energy, gaps, peaks, worst quality,
    bounds) and keep them on it, for the runs of several contracts over the same matrix to pick
    their channels' rows from (:func:`channel_stats`, :func:`missing_report`; a period's
    settlement calls this before its runs). The matrix must not change afterwards."""
    _row_facts(matrix)


def _row_facts(matrix: IntervalMatrix, rows: Sequence[int] | None = None) -> _RowFacts | None:
    """The matrix's :class:`_RowFacts`: those kept on the matrix by :func:`share_row_statistics`,
    else made now when the caller needs most of its rows (``rows`` None: all), else None
    (computing every row for a few would not pay)."""
    v = matrix.values
    cached = matrix.__dict__.get("_row_facts")
    if cached is not None and cached.values is v:
        return cached
    k, n = v.shape
    if (rows is not None and len(rows) * 2 < k) or not n:
        return None
    kwh, at, low, worst = _row_passes(v, matrix.quality)
    gappy = np.flatnonzero(np.isnan(kwh))  # a row with a NaN sums to NaN: only those need a closer look
    missing = np.zeros(k, dtype=np.int64)
    if gappy.size:
        sub = v[gappy]
        nan = np.isnan(sub)
        missing[gappy] = nan.sum(axis=1)
        kwh[gappy] = np.nansum(sub, axis=1)
        at[gappy] = np.where(nan, -np.inf, sub).argmax(axis=1)
    peak = v[np.arange(k), at]
    high = np.fmax.reduce(peak) if k else 0.0
    sane = bool(high <= ABSURD_KWH and low >= -ABSURD_KWH)  # NaN (a row without any data) compares False
    facts = _RowFacts(v, kwh, missing, at, peak, worst, sane)
    matrix.__dict__["_row_facts"] = facts
    return facts


_ROW_BLOCK = 16  # rows per block of :func:`_row_passes`: a month of quarter-hours, ~0.4 MB, stays in cache


def _row_passes(v: np.ndarray, quality: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Per row of ``v``: the sum (NaN when the row holds one), the position of the largest value
    (of a row without NaN), and the worst quality code; and the smallest value of ``v`` (NaN
    skipped; NaN when there is no number at all). Made block of rows by block, every statistic
    of a block while it is in the cache: one trip through memory instead of one per statistic
    (a period's matrix is a view of a longer span's, far larger than any cache). Each row's
    figures are those of the same reductions over the whole matrix."""
    k = v.shape[0]
    if not k:
        return v.sum(axis=1), v.argmax(axis=1), v.min(), quality.max(axis=1)
    kwh = np.empty(k, dtype=v.dtype)
    at = np.empty(k, dtype=np.intp)
    worst = np.empty(k, dtype=quality.dtype)
    lows = np.empty((k + _ROW_BLOCK - 1) // _ROW_BLOCK, dtype=v.dtype)
    for j, i in enumerate(range(0, k, _ROW_BLOCK)):
        block = v[i:i + _ROW_BLOCK]
        block.sum(axis=1, out=kwh[i:i + _ROW_BLOCK])
        block.argmax(axis=1, out=at[i:i + _ROW_BLOCK])
        quality[i:i + _ROW_BLOCK].max(axis=1, out=worst[i:i + _ROW_BLOCK])
        low = block.min()
        if low != low:  # a NaN in the block: its smallest number
            with np.errstate(invalid="ignore"):
                low = np.fmin.reduce(block, axis=None)
        lows[j] = low
    with np.errstate(invalid="ignore"):
        return kwh, at, float(np.fmin.reduce(lows)), worst


def build_context(
    campus: Campus,
    contract: Contract,
    period: BillingPeriod,
    matrix: IntervalMatrix,
    allocation: AllocationResult | None,
    options: SettlementOptions,
    history: Mapping[str, PeriodHistory] | None = None,
    plan: EnergyPlan | None = None,
) -> tuple[PricingContext, dict[str, Any]]:
    """The pricing context of ``contract`` for ``period`` and an allocation summary.

    The energy follows the contract's basis in the energy plan
    (:mod:`kwhub.core.contract_energy`): the buyer's allocated energy by source, the metered
    output of the sources an IPP sells, or the metered load. ``energy_by_source`` holds
    every stream of the buyer; ``energy_kwh`` the part the contract sells (its scope);
    ``claims`` which component prices which streams.
    """
    where = f"contract {contract.id!r} period {period.label}"
    plan = plan or plan_energy(campus)
    ce = plan.of(contract.id)
    n = matrix.n_intervals
    step = matrix.interval_minutes * 60
    starts = matrix.start_epoch + step * np.arange(n, dtype=np.int64)
    own = load_channels(campus, contract)
    own_kwh: np.ndarray | None = None
    by_source: dict[str, np.ndarray] = {}
    alloc_summary: dict[str, Any] = {"method": "metered", "tenant": None}
    grid_kwh = 0.0
    allocated_total: dict[str, np.ndarray] = {}
    if ce.basis == "allocation":
        if allocation is None or allocation.kwh is None:
            raise SettlementError(f"{where}: the contract bills allocated energy, but no allocation was computed")
        t = allocation.tenant_index(contract.buyer)
        shares = allocation.shares(contract.buyer)
        if credits_market_revenue(contract):  # the denominator of a pro-rata credit: every tenant's kWh
            every = allocation.kwh.sum(axis=0)  # (sources, intervals)
            allocated_total = {src: every[j] for j, src in enumerate(allocation.sources)}
        sources: dict[str, Any] = {}
        for j, src in enumerate(allocation.sources):
            total = float(allocation.totals[t, j])
            if total == 0.0 and src not in ce.scope:
                continue
            by_source[src] = allocation.kwh[t, j]
            if allocation.source_roles and allocation.source_roles[j] == "grid_import":
                grid_kwh += total
            sources[src] = {"kwh": det(total), "loss_kwh": det(float(allocation.loss_kwh[t, j])),
                            "share_of_source": det(shares[src])}
        bal = allocation.balance
        alloc_summary = {
            "method": allocation.method, "tenant": contract.buyer, "loss_factor": det(allocation.loss_factor),
            "sources": sources,
            "shared_kwh": det(float(allocation.shared[t].sum())) if allocation.shared is not None else "0",
            "imbalance_intervals": int(bal.violations.size) if bal is not None else 0,
            "max_abs_imbalance_kwh": det(float(np.abs(bal.imbalance).max())) if bal is not None and n else "0",
        }
    elif ce.basis == "metered_sources":
        for src in ce.scope:
            chans = [c.id for c in campus.channels if c.asset == src and c.role in _SOURCE_ROLES]
            if not chans:
                raise SettlementError(f"{where}: source asset {src!r} has no generation channel")
            by_source[src] = _rows(matrix, chans)
        alloc_summary = {"method": "metered_sources", "tenant": None,
                         "sources": {s: {"kwh": det(float(a.sum()))} for s, a in by_source.items()}}
    else:
        if not own:
            raise SettlementError(f"{where}: no load channels (set contract.load_channels or tenant_load channels of {contract.buyer!r})")
        own_kwh = _rows(matrix, own)
        by_source[LOAD] = own_kwh
    scoped = [by_source[s] for s in ce.scope if s in by_source]
    energy = np.sum(scoped, axis=0) if scoped else np.zeros(n)
    if own and own_kwh is None:
        own_kwh = _rows(matrix, own)
    demand = own_kwh * (60.0 / matrix.interval_minutes) if own and own_kwh is not None else None
    availability: dict[str, np.ndarray] = {}
    for asset in component_assets(contract):
        chans = [c.id for c in campus.channels if c.role == "availability" and c.asset == asset]
        index = _row_index(matrix)
        rows = [index[c] for c in chans if c in index]
        if rows:
            availability[asset] = np.nanmean(matrix.values[rows], axis=0) if len(rows) > 1 else matrix.values[rows[0]]
    grid_cost: Decimal = Decimal("0")
    if options.grid_price_per_mwh is not None and grid_kwh:
        grid_cost = to_decimal(grid_kwh) / Decimal(1000) * options.grid_price_per_mwh
    facts = matrix.__dict__.get("_row_facts")
    # metered energy is sums of the matrix's own rows: when they hold no NaN or infinity there is nothing to replace
    clean = ce.basis != "allocation" and facts is not None and facts.values is matrix.values and facts.clean

    def fix(a: np.ndarray) -> np.ndarray:
        return a if clean else np.nan_to_num(a)
    ctx = PricingContext(
        contract=contract, period=period, interval_minutes=matrix.interval_minutes, starts=starts,
        energy_kwh=fix(energy), energy_by_source={k: fix(v) for k, v in by_source.items()},
        demand_kw=None if demand is None else fix(demand), history=dict(history or {}),
        index_series=dict(options.index_series), availability=availability,
        grid_import_cost=grid_cost, grid_import_kwh=grid_kwh, fees_shares=dict(options.fees_shares),
        claims=dict(ce.claims), grid_price_per_mwh=options.grid_price_per_mwh,
        market_revenue=options.market_revenue, allocated_kwh_total=allocated_total,
        allocated_starts=starts if allocated_total else None,
    )
    # contracts of one period share the local calendar of the interval starts
    ctx.__dict__["calendar"] = local_calendar(matrix.start_epoch, n, matrix.interval_minutes, contract.timezone)
    return ctx, alloc_summary


def credits_market_revenue(contract: Contract) -> bool:
    """Whether the contract (or an amendment) has a ``market_revenue_credit`` component."""
    kinds = [spec.kind for spec in contract.components] + [c.kind for a in contract.amendments for c in a.components]
    return "market_revenue_credit" in kinds


@lru_cache(maxsize=16)
def local_calendar(start_epoch: int, n: int, interval_minutes: int, tz: str) -> LocalCalendar:
    """The (cached) local calendar of ``n`` intervals from ``start_epoch`` in zone ``tz``."""
    starts = start_epoch + interval_minutes * 60 * np.arange(n, dtype=np.int64)
    return LocalCalendar.from_starts(starts, tz)




def channel_stats(campus: Campus, matrix: IntervalMatrix, channel_ids: Sequence[str]) -> list[ChannelStats]:
    """Interval counts by quality, energy and peak of each energy channel (one pass per statistic
    over the channels' rows together; fuel and availability channels are left out)."""
    index = _row_index(matrix)
    skip = _not_energy(campus)
    ids = [cid for cid in channel_ids if cid in index and cid not in skip]
    if not ids:
        return []
    rows = [index[c] for c in ids]
    n = matrix.n_intervals
    k = len(ids)
    facts = _row_facts(matrix, rows)
    if facts is not None:
        kwh, missing, at = facts.kwh[rows], facts.missing[rows], facts.at[rows]
        peak = facts.peak[rows] * (60.0 / matrix.interval_minutes)
        flagged = np.flatnonzero(facts.worst[rows] > Quality.VALID)
    else:
        v = _select_rows(matrix.values, rows)
        kwh = v.sum(axis=1)
        gappy = np.flatnonzero(np.isnan(kwh))  # a row with a NaN sums to NaN: only those need a closer look
        missing = np.zeros(k, dtype=np.int64)
        if gappy.size:
            sub = v[gappy]
            missing[gappy] = np.isnan(sub).sum(axis=1)
            kwh[gappy] = np.nansum(sub, axis=1)
            filled = v.copy()
            filled[gappy] = np.where(np.isnan(sub), -np.inf, sub)
        else:
            filled = v
        at = filled.argmax(axis=1) if n else np.zeros(k, dtype=np.int64)
        peak = filled[np.arange(k), at] * (60.0 / matrix.interval_minutes) if n else np.zeros(k)
        flagged = (np.flatnonzero(_select_rows(matrix.quality, rows).max(axis=1) > Quality.VALID) if n
                   else np.zeros(0, dtype=np.int64))
    counts = np.zeros((3, k), dtype=np.int64)
    if flagged.size:
        qf = matrix.quality[[rows[i] for i in flagged.tolist()]]
        for j, code in enumerate((Quality.ESTIMATED, Quality.EDITED, Quality.SUSPECT)):
            counts[j, flagged] = np.count_nonzero(qf == code, axis=1)
    step = matrix.interval_minutes * 60
    # the UTC start of each peak interval, as datetime.isoformat() spells it, all at once
    stamps = np.datetime_as_string((matrix.start_epoch + at.astype(np.int64) * step).astype("datetime64[s]"))
    max_at = [f"{x}+00:00" for x in stamps.tolist()]
    estimated = (counts[0] + counts[1]).tolist()
    suspect = counts[2].tolist()
    kwh_l, peak_l, missing_l = kwh.tolist(), peak.tolist(), missing.tolist()
    limit_of = _limits(campus).get
    unknown = (None, "")
    # fields in ChannelStats order (channel, intervals, missing, estimated, suspect, kwh, max_kw, max_at,
    # limit_kw, limit_source): by position, the 50-odd objects of a run are made at half the cost
    return [ChannelStats(cid, n, m, e, s, kw, pk if m < n else 0.0, at, *limit_of(cid, unknown))
            for cid, m, e, s, kw, pk, at in zip(ids, missing_l, estimated, suspect, kwh_l, peak_l, max_at, strict=True)]


def _not_energy(campus: Campus) -> frozenset[str]:
    """The channels :func:`channel_stats` leaves out (availability, fuel and ``fraction`` channels;
    made once per campus object)."""
    maps = _maps(campus)
    cached = maps.__dict__.get("_not_energy")
    if cached is None:
        cached = maps.__dict__["_not_energy"] = frozenset(
            cid for cid, ch in maps.channels.items() if ch.role in ("availability", "fuel") or ch.unit == "fraction")
    return cached


def _limits(campus: Campus) -> dict[str, tuple[float, str]]:
    """``{channel: (physical limit kW, where it comes from)}`` of the channels that have one:
    the channel's ``max_kw``, else its asset's ``capacity_kw`` (made once per campus object)."""
    maps = _maps(campus)
    cached = maps.__dict__.get("_limits")
    if cached is not None:
        return cached
    out: dict[str, tuple[float, str]] = {}
    for cid, ch in maps.channels.items():
        if ch.max_kw:
            out[cid] = (float(ch.max_kw), "channel max_kw")
        elif ch.asset in maps.assets and maps.assets[ch.asset].capacity_kw > 0:
            out[cid] = (float(maps.assets[ch.asset].capacity_kw), f"asset {ch.asset} capacity_kw")
    maps.__dict__["_limits"] = out
    return out


def _refuse_corrupt(matrix: IntervalMatrix, channel_ids: Sequence[str], where: str) -> None:
    index = _row_index(matrix)
    rows = [index[c] for c in channel_ids if c in index]
    if not rows:
        return
    facts = _row_facts(matrix, rows)
    if facts is not None and facts.sane:  # every value of the matrix is within bounds
        return
    sub = _select_rows(matrix.values, rows)
    # two passes that allocate nothing (fmax/fmin skip NaN, which is no data); only a hit
    # looks for where it is
    if not sub.size or (np.fmax.reduce(sub, axis=None) <= ABSURD_KWH
                        and np.fmin.reduce(sub, axis=None) >= -ABSURD_KWH):
        return
    with np.errstate(invalid="ignore"):
        bad = np.abs(sub) > ABSURD_KWH  # inf too; NaN (no data) compares False
    if bad.any():
        r, col = (int(x[0]) for x in np.nonzero(bad))
        start = matrix.start_epoch + col * matrix.interval_minutes * 60
        raise SettlementError(
            f"{where}: channel {matrix.channel_ids[rows[r]]} holds {float(sub[r, col])!r} kWh in the interval starting "
            f"{datetime.fromtimestamp(start, tz=UTC).isoformat()}, which no meter can measure; correct the data "
            "(re-ingest the file or edit the value) and settle again")


def _attribution(charges: Sequence[Charge], ctx: PricingContext) -> list[dict[str, str]]:
    """Per charge, the kWh of each source its energy came from (empty for non-energy charges)."""
    out = []
    for ch in charges:
        item: dict[str, str] = {}
        for src in ch.sources:
            arr = ctx.energy_by_source.get(src)
            if arr is None:
                continue
            item[src] = det(float(arr[ch.mask].sum() if ch.mask is not None else arr.sum()))
        out.append(item)
    return out


def compute_run(
    campus: Campus,
    contract: Contract,
    period: BillingPeriod,
    matrix: IntervalMatrix,
    allocation: AllocationResult | None,
    options: SettlementOptions,
    history: Mapping[str, PeriodHistory] | None = None,
    components: Any | None = None,
    channels: Sequence[str] | None = None,
    plan: EnergyPlan | None = None,
    campus_section: dict[str, Any] | None = None,
    carbon: PeriodBasis | None = None,
    memo: dict[Any, Any] | None = None,
) -> RunComputation:
    """Price one contract for one period; ``components`` is a registry or ``{kind: class}``.

    ``channels``: :func:`contract_channels` of the contract when the caller has them;
    ``plan``: the campus' :class:`~kwhub.core.contract_energy.EnergyPlan`; ``campus_section``:
    :func:`kwhub.core.accounting.campus_accounts` of the period's allocation, recorded in
    allocation-based runs; ``carbon``: the period's carbon basis, from which each energy
    line of an allocation-based run gets the emissions of the energy it bills
    (:mod:`kwhub.core.line_emissions`). A period in which the contract's own meters hold no data
    at all is refused, never billed from estimates or zeros. ``memo``: a dict the caller keeps
    over the runs of one settle, in which the contract's terms versions and built components
    are kept for its later periods (the contracts must not change meanwhile).
    """
    plan = plan or plan_energy(campus, components)
    ce = plan.of(contract.id)
    where = f"contract {contract.id!r} period {period.label}"
    chans = list(channels) if channels is not None else contract_channels(campus, contract, plan)
    _refuse_corrupt(matrix, chans, where)
    gaps = missing_report(matrix, chans)
    if gaps and options.missing == "error":
        listed = ", ".join(f"{c} ({k} intervals)" for c, k in sorted(gaps.items()))
        raise SettlementError(f"{where}: intervals without {options.layer} data: {listed}")
    stats = channel_stats(campus, matrix, chans)
    own = _own_channels(campus, contract, ce)
    if own and all(s.measured == 0 for s in stats if s.channel in own):
        raise SettlementError(
            f"{where}: no measured data at all in {', '.join(sorted(own))} for the period; there is nothing to "
            "bill (ingest the meter data first; a period without data is never billed from estimates or zeros)")
    ctx, alloc_summary = build_context(campus, contract, period, matrix, allocation, options, history, plan)
    parts = versions_in_period(contract, period, ctx.starts, _memo(memo, ("versions", contract.id),
                                                                   lambda: contract_versions(contract)))
    if contract.amendments:
        charges, lines = price_by_version(parts, ctx, components)
    else:
        built = _memo(memo, ("components", contract.id), lambda: build_components(contract, components))
        charges = price_contract(built, ctx)
        lines = charges_to_lines(charges, ctx.money, period, tax_category=contract.tax_category,
                                 tax_percent=contract.tax_percent, tax_exemption=contract.tax_exemption)
    carbon_section = None
    if carbon is not None and ce.basis == "allocation":
        lines, masks = attach(lines, charges, ctx.energy_by_source, carbon)
        carbon_section = {**carbon.statement_section(), "line_intervals": masks}
    totals = {src: float(arr.sum()) for src, arr in ctx.energy_by_source.items()}
    accounts = buyer_accounts(plan, ce, totals)
    return RunComputation(contract, period, ctx, charges, lines, summarize_period(ctx, charges), alloc_summary,
                          missing_intervals=sum(gaps.values()), energy=ce, accounts=accounts,
                          attribution=_attribution(charges, ctx), channels=stats,
                          campus=campus_section if ce.basis == "allocation" else None,
                          carbon=carbon_section, terms=terms_record(parts))


def _memo(memo: dict[Any, Any] | None, key: Any, make: Any) -> Any:
    """``memo[key]``, made by ``make()`` when absent (always made when there is no memo)."""
    if memo is None:
        return make()
    value = memo.get(key)
    if value is None:
        value = memo[key] = make()
    return value


def _own_channels(campus: Campus, contract: Contract, ce: ContractEnergy) -> list[str]:
    """The channels that measure the contract's own energy (its load, or the plants it buys)."""
    if ce.basis == "metered_sources":
        return [c.id for c in campus.channels if c.asset in ce.scope and c.role in _SOURCE_ROLES]
    return load_channels(campus, contract)


def unbilled_rows(comp: RunComputation) -> list[Any]:
    """The run's unbilled energy as the review gate reads it."""
    return unbilled_of(comp.accounts)


# --------------------------------------------------------------------------- deltas


def line_key(line: InvoiceLine | Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """Lines of two versions match on (component, source asset, description, tax category, tax rate)."""
    if isinstance(line, InvoiceLine):
        return (line.component_id, line.source_asset, line.description,
                legacy_tax_key(line.tax_category, line.tax_percent), money_str(line.tax_percent.normalize()))
    pct = Decimal(str(line.get("tax_percent", "0")))
    return (str(line["component_id"]), str(line["source_asset"]), str(line["description"]),
            legacy_tax_key(str(line.get("tax_category", "S")), pct), money_str(pct.normalize()))


def line_from_json(data: Mapping[str, Any]) -> InvoiceLine:
    """An :class:`InvoiceLine` from its statement JSON."""
    return InvoiceLine.model_validate(dict(data))


def delta_lines(new: Sequence[InvoiceLine], old: Sequence[InvoiceLine], policy: MoneyPolicy) -> list[InvoiceLine]:
    """Lines billing ``new - old``, per matching line (:func:`line_key`); unchanged lines are left out.

    Every correction line shows quantities:

    * same unit price: the quantity change at that price; should ``round(change x price)``
      differ from the change of the rounded amounts, one more line ``1 x difference``
      carries that rounding difference, so the lines still sum to new minus old;
    * another unit price (an index restated, a fee changed): the old line reversed
      (``-old quantity x old price``) and the new line billed (``new quantity x new price``);
    * a line only one version has: billed, or reversed, whole;
    * a line whose energy and amount are unchanged but whose emissions changed (restated
      fuel data, another factor edition): a zero-amount line carrying the emissions'
      difference.

    Each correction line carries the change of the line's emissions (new minus old).
    """
    old_by = {line_key(x): x for x in old}
    new_by = {line_key(x): x for x in new}
    keys = [line_key(x) for x in new] + [k for k in (line_key(x) for x in old) if k not in new_by]
    out: list[InvoiceLine] = []
    zero = Decimal("0")

    def add(ref: InvoiceLine, label: str, qty: Decimal, unit: str, price: Decimal, amount: Decimal,
            dets: dict[str, str], emissions: LineEmissions | None = None) -> None:
        out.append(ref.model_copy(update={
            "number": len(out) + 1, "description": f"{ref.description} ({label})", "quantity": qty, "unit": unit,
            "unit_price": price, "amount": amount, "determinants": dets, "charge_type": ref.charge_type,
            "emissions": emissions,
            # a line issued as S at 0 % (before kwhub refused it) is corrected as Z, which bills the same
            "tax_category": "Z" if ref.tax_category == "S" and ref.tax_percent == 0 else ref.tax_category,
        }))

    for key in keys:
        n, o = new_by.get(key), old_by.get(key)
        ref = n or o
        assert ref is not None
        q1, a1 = (n.quantity, n.amount) if n else (zero, zero)
        q0, a0 = (o.quantity, o.amount) if o else (zero, zero)
        if a1 == a0 and q1 == q0 and (n is None or o is None or n.unit_price == o.unit_price):
            if n is not None and o is not None and n.emissions is not None and n.emissions != o.emissions:
                # the same energy and money, other emissions (restated fuel data, another factor edition): a
                # zero-amount line carries the difference, so the documents still add up to the report
                restated = n.emissions.minus(o.emissions) if o.emissions is not None else n.emissions
                add(n, "emissions restated", zero, n.unit, n.unit_price, zero,
                    {**n.determinants, "adjusts_line": n.description}, restated)
            continue
        dets = dict(n.determinants) if n else dict(o.determinants) if o else {}
        dets.update({
            "adjusts_line": ref.description,
            "previous_quantity": money_str(q0), "previous_amount": money_str(a0),
            "new_quantity": money_str(q1), "new_amount": money_str(a1),
            "previous_unit_price": money_str(o.unit_price) if o else "",
            "new_unit_price": money_str(n.unit_price) if n else "",
        })
        if n is not None and o is not None and n.unit_price == o.unit_price and n.unit == o.unit:
            dq, price = q1 - q0, n.unit_price
            part = policy.amount(dq * price)
            if dq != 0:
                delta = n.emissions.minus(o.emissions) if n.emissions and o.emissions else n.emissions
                add(ref, "adjustment", dq, ref.unit, price, part, dets, delta)
            rest = (a1 - a0) - (part if dq != 0 else zero)
            if rest:
                add(ref, "rounding difference", Decimal(1), "each", rest, rest,
                    {**dets, "rounding_difference": money_str(rest)})
            continue
        if o is not None:
            add(o, "reversal of previous", -o.quantity, o.unit, o.unit_price, -o.amount, dets,
                o.emissions.scaled(-1) if o.emissions else None)
        if n is not None:
            add(n, "restated", n.quantity, n.unit, n.unit_price, n.amount, dets, n.emissions)
    return out


def as_credit(lines: Sequence[InvoiceLine]) -> list[InvoiceLine]:
    """Credit-note lines: the same deltas with the sign turned (amounts credited).

    The quantity turns, the unit price stays; a ``1 x amount`` line turns its price; the
    emissions turn with the energy.
    """
    out = []
    for ln in lines:
        upd: dict[str, Any]
        if ln.unit == "each" and ln.quantity == 1:
            upd = {"unit_price": -ln.unit_price, "amount": -ln.amount}
        else:
            upd = {"quantity": -ln.quantity, "amount": -ln.amount}
        if ln.emissions is not None:
            upd["emissions"] = ln.emissions.scaled(-1)
        out.append(ln.model_copy(update=upd))
    return out


def document_kind(lines: Sequence[InvoiceLine], has_previous: bool,
                  net: Decimal | None = None) -> DocumentKind | None:
    """``invoice`` for a first version, else ``adjustment`` / ``credit_note`` by the net delta
    (``net``: the change of the document total, taxes included, when known)."""
    if not has_previous:
        return "invoice"
    if not lines:
        return None
    if net is None:
        net = sum((ln.amount for ln in lines), Decimal("0"))
    return "credit_note" if net < 0 else "adjustment"


def full_taxes(lines: Sequence[InvoiceLine], policy: MoneyPolicy) -> list[TaxSubtotal]:
    """Tax per (category, rate) of a complete set of lines, rounded once per category."""
    return tax_subtotals(lines, policy)


def correction_taxes(new: Sequence[InvoiceLine], old: Sequence[InvoiceLine], policy: MoneyPolicy) -> list[TaxSubtotal]:
    """Tax of a correction per (category, rate): ``round(new tax) - round(old tax)``, never the
    tax of the difference, so that the original plus its corrections is what a fresh
    invoice on the final data shows, to the cent (DOMAIN: the arithmetic of a correction)."""
    before = {(legacy_tax_key(t.category, t.percent), t.percent.normalize()): t for t in full_taxes(old, policy)}
    after = {(legacy_tax_key(t.category, t.percent), t.percent.normalize()): t for t in full_taxes(new, policy)}
    out = []
    zero = Decimal("0")
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        taxable = (a.taxable_amount if a else zero) - (b.taxable_amount if b else zero)
        tax = (a.tax_amount if a else zero) - (b.tax_amount if b else zero)
        if taxable or tax:
            ref = a or b
            assert ref is not None
            out.append(TaxSubtotal(category=ref.category, percent=ref.percent, taxable_amount=taxable, tax_amount=tax,
                                   exemption_reason=ref.exemption_reason, exemption_code=ref.exemption_code))
    return out


def credit_taxes(taxes: Sequence[TaxSubtotal]) -> list[TaxSubtotal]:
    """A correction's taxes as a credit note states them (signs turned)."""
    return [t.model_copy(update={"taxable_amount": -t.taxable_amount, "tax_amount": -t.tax_amount}) for t in taxes]


@dataclass
class DraftDocument:
    """What a run would issue: kind, lines and taxes (None for a run that changes nothing)."""

    kind: DocumentKind | None
    lines: list[InvoiceLine]
    taxes: list[TaxSubtotal]

    @property
    def line_total(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), Decimal("0"))

    @property
    def tax_total(self) -> Decimal:
        return sum((t.tax_amount for t in self.taxes), Decimal("0"))

    @property
    def total(self) -> Decimal:
        return self.line_total + self.tax_total

    def totals_json(self) -> dict[str, str]:
        return {"line_total": money_str(self.line_total), "tax_total": money_str(self.tax_total),
                "total": money_str(self.total)}


def draft_document(new: Sequence[InvoiceLine], old: Sequence[InvoiceLine] | None, policy: MoneyPolicy) -> DraftDocument:
    """The document a run issues: the full lines for a first version; for a later version the
    differences (:func:`delta_lines`, :func:`correction_taxes`) as an adjustment invoice or,
    when the total goes down, a credit note stating the credited amounts."""
    if old is None:
        return DraftDocument("invoice", list(new), full_taxes(new, policy))
    lines = delta_lines(new, old, policy)
    taxes = correction_taxes(new, old, policy)
    net = sum((ln.amount for ln in lines), Decimal("0")) + sum((t.tax_amount for t in taxes), Decimal("0"))
    if not lines and not taxes:
        return DraftDocument(None, [], [])
    kind = document_kind(lines or [], True, net)
    if kind == "credit_note":
        return DraftDocument(kind, as_credit(lines), credit_taxes(taxes))
    return DraftDocument(kind, lines, taxes)


# --------------------------------------------------------------------------- statement


def canonical_json(obj: Any, float_free: Sequence[str] = ()) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal content gives equal bytes.

    The bytes are those of ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``. Without floats (statements carry quantities as exact strings) orjson
    writes exactly those bytes, much faster; a float (which the two spell differently, e.g.
    ``1e-05`` and ``1e-5``), or anything orjson refuses, takes the standard library.
    ``float_free``: top-level keys of ``obj`` whose values hold no float by construction (not
    looked through).
    """
    if isinstance(obj, dict) and not _has_float([v for k, v in obj.items() if k not in float_free]):
        try:
            return orjson.dumps(obj, default=_orjson_default, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            pass
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default).encode("utf-8")


def _has_float(obj: Any) -> bool:
    """Whether ``obj`` holds anything but dicts, lists, tuples, str, int, bool, None, Decimal and
    dates (which both encoders write alike; a subclass of those counts as other). Keys are not
    looked at: orjson refuses a key that is not a string, and the standard library then writes it."""
    stack = [obj]
    pop, push = stack.pop, stack.extend
    while stack:
        v = pop()
        tv = type(v)
        if tv is dict:
            push(v.values())
        elif tv is list or tv is tuple:
            push(v)
        elif not (tv is str or tv is int or v is None or tv is bool or tv is Decimal or tv is date):
            return True
    return False


def _orjson_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money_str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money_str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (np.floating, np.integer)):
        return det(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def statement_hash(statement_bytes: bytes) -> str:
    """SHA-256 of the canonical statement."""
    return hashlib.sha256(statement_bytes).hexdigest()


def channel_digests(inputs: Iterable[InputRef]) -> dict[str, str]:
    """SHA-256 per channel over its sorted ``day|layer|version|hash`` rows."""
    rows: dict[str, list[str]] = {}
    for r in inputs:
        rows.setdefault(r.channel_id, []).append(f"{r.day.isoformat()}|{r.layer}|{r.version}|{r.content_hash}\n")
    return {ch: hashlib.sha256("".join(sorted(v)).encode("utf-8")).hexdigest() for ch, v in rows.items()}


def inputs_digest(inputs: Iterable[InputRef], per_channel: Mapping[str, str] | None = None) -> str:
    """SHA-256 over the sorted ``channel:channel digest`` lines of the inputs."""
    refs = list(inputs)
    digests = per_channel if per_channel is not None else channel_digests(refs)
    channels = sorted({r.channel_id for r in refs})
    return hashlib.sha256("".join(f"{ch}:{digests[ch]}\n" for ch in channels).encode("utf-8")).hexdigest()


def line_json(line: InvoiceLine) -> dict[str, Any]:
    """A line as canonical JSON data (Decimals as exact strings)."""
    return orjson.loads(line.model_dump_json())


def totals_json(lines: Sequence[InvoiceLine], policy: MoneyPolicy) -> dict[str, str]:
    """Line, tax and grand totals of ``lines`` (as :func:`kwhub.core.invoice.compute_totals` computes them)."""
    line_total = sum((ln.amount for ln in lines), Decimal("0"))
    tax_total = sum((t.tax_amount for t in tax_subtotals(lines, policy)), Decimal("0"))
    return {"line_total": money_str(line_total), "tax_total": money_str(tax_total),
            "total": money_str(line_total + tax_total)}


def build_statement(
    key: RunKey,
    comp: RunComputation,
    inputs: Sequence[InputRef] | InputSummary,
    layer: str,
    doc: DraftDocument,
    previous_run: str | None,
    digests: Mapping[str, str] | None = None,
    missing_policy: str = "error",
) -> dict[str, Any]:
    """The run statement: everything needed to re-derive the amounts, nothing time-dependent.

    ``digests`` are precomputed :func:`channel_digests` (shared by the runs of a period);
    ``inputs`` may be an :class:`InputSummary` of them instead of the rows. ``doc``: the
    :func:`draft_document` of the run's lines under the contract's money policy (a first
    version's totals are taken from it).
    """
    ctx = comp.context
    pol = ctx.money
    per = comp.period
    assert ctx.demand_kw is not None
    first = doc.kind == "invoice" and len(doc.lines) == len(comp.lines) and all(
        a is b for a, b in zip(doc.lines, comp.lines, strict=True))
    # a first version's document is the full lines with full_taxes: the same totals, computed once
    totals = doc.totals_json() if first else totals_json(comp.lines, pol)
    lines = [line_json(x) for x in comp.lines]
    as_json = {id(x): j for x, j in zip(comp.lines, lines, strict=True)}  # a first version's document repeats them
    if not isinstance(inputs, InputSummary):
        inputs = InputSummary(len(inputs), inputs_digest(inputs, digests), sorted({r.channel_id for r in inputs}),
                              sorted({r.layer for r in inputs}))
    out = {
        "schema": STATEMENT_SCHEMA,
        "run": {"id": key.run_id, "contract": key.contract_id, "period": key.period,
                "version_kind": key.version_kind, "seq": key.seq, "layer": layer, "previous_run": previous_run},
        "contract": {"id": comp.contract.id, "seller": comp.contract.seller, "buyer": comp.contract.buyer,
                     "currency": pol.currency, "rounding": pol.rounding, "amount_places": pol.amount_places,
                     "timezone": comp.contract.timezone, "contract_year": ctx.contract_year},
        "span": {"start": per.span.start.isoformat(), "end": per.span.end.isoformat(),
                 "first_day": per.first_day.isoformat(), "last_day": per.last_day.isoformat(),
                 "interval_minutes": ctx.interval_minutes, "intervals": ctx.n_intervals},
        "inputs": {"count": inputs.count, "digest": inputs.digest, "channels": list(inputs.channels),
                   "layers": list(inputs.layers), "missing_intervals": comp.missing_intervals,
                   "missing_policy": missing_policy},
        "channels": {s.channel: s.as_json() for s in comp.channels},
        "energy": comp.energy.as_json() if comp.energy is not None else None,
        "allocation": comp.allocation,
        "accounting": [r.as_json() for r in comp.accounts],
        "determinants": {"energy_kwh": det(float(ctx.energy_kwh.sum())),
                         "peak_kw": det(float(ctx.demand_kw.max()) if ctx.n_intervals else 0.0)},
        "history": {"billing_demand_kw": det(comp.history.billing_demand_kw), "peak_kw": det(comp.history.peak_kw),
                    "energy_kwh": det(comp.history.energy_kwh)},
        "lines": lines,
        "attribution": comp.attribution,
        "totals": totals,
        "document": {"kind": doc.kind, "lines": [as_json.get(id(x)) or line_json(x) for x in doc.lines],
                     "taxes": [json.loads(t.model_dump_json()) for t in doc.taxes], "totals": doc.totals_json()},
    }
    if comp.campus is not None:
        out["campus"] = comp.campus
    if comp.carbon is not None:
        out["carbon"] = comp.carbon
    if comp.terms is not None:
        out["terms"] = comp.terms
    return out


def history_from_statement(statement: Mapping[str, Any]) -> PeriodHistory:
    """The :class:`PeriodHistory` a statement recorded (for later ratchets)."""
    h = statement["history"]
    return PeriodHistory(float(h["billing_demand_kw"]), float(h["peak_kw"]), float(h["energy_kwh"]))


def party_ref(campus: Campus, party_id: str) -> PartyRef:
    """A document party from the campus party (id only when unknown)."""
    try:
        p = campus.party(party_id)
    except KeyError:
        return PartyRef(id=party_id, name=party_id)
    return PartyRef(id=p.id, name=p.name, tax_id=p.tax_id, tax_scheme=p.tax_scheme, address=p.address, email=p.email,
                    endpoint_id=p.endpoint_id, endpoint_scheme=p.endpoint_scheme, payment=p.payment)


def draft_invoice(
    campus: Campus,
    key: RunKey,
    contract: Contract,
    period: BillingPeriod,
    doc: DraftDocument,
    today: date,
) -> Invoice:
    """The document a run would issue, before approval: no number yet (``DRAFT``), dated
    ``today``; :func:`issue_draft` numbers and dates it when the run is approved."""
    assert doc.kind is not None
    buyer_ref = ""
    try:
        buyer_ref = campus.party(contract.buyer).buyer_reference
    except KeyError:
        pass
    lines = [ln if ln.number == i else ln.model_copy(update={"number": i}) for i, ln in enumerate(doc.lines, 1)]
    return Invoice(
        id=key.invoice_id, number="DRAFT", kind=doc.kind, version=1,
        seller=party_ref(campus, contract.seller), buyer=party_ref(campus, contract.buyer),
        issue_date=today, due_date=today + timedelta(days=contract.payment_days),
        period_start=period.first_day, period_end=period.last_day, currency=contract.currency,
        buyer_reference=buyer_ref, contract_id=contract.id, run_id=key.run_id, lines=lines,
        taxes=list(doc.taxes), line_total=doc.line_total, tax_total=doc.tax_total, total=doc.total,
    )


def issue_draft(draft: Invoice, number: str, issue_date: date, version_kind: str,
                original: DocumentReference | None = None, version: int = 1) -> Invoice:
    """The issued document of an approved draft: number, issue and due dates, the reference
    to the original for a correction. Lines, taxes and totals stay exactly as reviewed."""
    notes = {"invoice": "", "adjustment": "Adjustment of", "credit_note": "Credit note for"}
    note = f"{notes[draft.kind]} invoice {original.number} ({version_kind} settlement)" if original else ""
    payment_days = (draft.due_date - draft.issue_date).days
    return draft.model_copy(update={
        "number": number, "issue_date": issue_date, "due_date": issue_date + timedelta(days=payment_days),
        "references": [original] if original else [], "note": note, "version": version,
    })


def build_invoice(
    campus: Campus,
    key: RunKey,
    comp: RunComputation,
    kind: DocumentKind,
    lines: Sequence[InvoiceLine],
    number: str,
    issue_date: date,
    original: DocumentReference | None = None,
    version: int = 1,
) -> Invoice:
    """The document of a first version (full lines, totals under the contract's money policy)."""
    contract = comp.contract
    doc = DraftDocument(kind, list(lines), full_taxes(lines, money_policy(contract)))
    draft = draft_invoice(campus, key, contract, comp.period, doc, issue_date)
    return issue_draft(draft, number, issue_date, key.version_kind, original, version)
