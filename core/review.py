"""The review gate: plausibility checks a settlement run passes before anything is issued.

A run first produces a *draft* document. :func:`run_checks` looks at what the run read
and computed and returns one :class:`CheckResult` per named check; a run whose checks
all pass can be approved by policy (``[review] policy = "auto"``), any failure *holds*
it for a person, with the reasons. Utilities call this the bill review or high/low bill
exception queue. The checks and their settings (``[review.checks]``, per contract
``[contracts.review.checks]``):

``period_ended``       the billing period is over (no setting)
``measured_data``      the run's channels hold data in the period (no setting; a period
                       without any reading is refused outright, this check covers the
                       channels of a run that have none)
``missing_intervals``  intervals without data (counted as 0 kWh under ``missing = "zero"``)
                       at most ``missing_intervals_max`` (0)
``estimated_share``    estimated or edited intervals at most ``estimated_share_max_pct`` (10)
                       percent of the run's channel-intervals
``suspect_intervals``  intervals that VEE marked suspect at most ``suspect_intervals_max`` (0)
``physical_limit``     no interval above its channel's physical limit: ``max_kw`` of the
                       channel, else the ``capacity_kw`` of its asset, times
                       ``physical_limit_margin`` (1.1)
``unit_factor``        no channel whose mean interval value moved by a factor of
                       ``unit_factor_min`` (500) or more against its previous period, the
                       mark of Wh read as kWh (or the reverse)
``negative_quantity``  no billed quantity below zero (credits are their own charge types)
``movement``           the total moves at most ``movement_max_pct`` (50) percent from the
                       previous period of the same contract
``unbilled_energy``    every allocated kWh is billed, or declared not billed with a reason
                       (``contract.not_billed``), within ``unbilled_tolerance_kwh`` (1)
``contract_terms``     the terms in force for this period and the previous one are those their
                       settled runs used: an edit of a contract's terms (or amendments) that
                       changes an invoiced period holds the run, naming the run and what
                       changed (no setting; see :mod:`kwhub.core.contract_versions`)

``disabled`` lists checks to skip. Pure: the hub gathers :class:`ReviewInputs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from kwhub.core.campus import ReviewChecks

CHECK_NAMES: tuple[str, ...] = (
    "period_ended", "measured_data", "missing_intervals", "estimated_share", "suspect_intervals",
    "physical_limit", "unit_factor", "negative_quantity", "movement", "unbilled_energy", "contract_terms",
)

DEFAULT_CHECKS = ReviewChecks(
    estimated_share_max_pct=Decimal("10"), suspect_intervals_max=0, missing_intervals_max=0,
    movement_max_pct=Decimal("50"), physical_limit_margin=Decimal("1.1"), unit_factor_min=Decimal("500"),
    unbilled_tolerance_kwh=Decimal("1"),
)

Policy = Literal["auto", "manual"]


def effective_checks(*layers: ReviewChecks | None) -> ReviewChecks:
    """Thresholds with later layers overriding earlier ones field by field (defaults first)."""
    merged: dict[str, Any] = DEFAULT_CHECKS.model_dump()
    disabled: list[str] = []
    for layer in layers:
        if layer is None:
            continue
        for k, v in layer.model_dump(exclude_unset=True).items():
            if k == "disabled":
                disabled += [d for d in v if d not in disabled]
            elif v is not None:
                merged[k] = v
    merged["disabled"] = disabled
    unknown = [d for d in disabled if d not in CHECK_NAMES]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)} (checks: {', '.join(CHECK_NAMES)})")
    return ReviewChecks.model_validate(merged)


class ChannelStats(NamedTuple):
    """What a run read of one channel: interval counts by quality and its extremes.

    Immutable; a named tuple rather than a frozen dataclass because a run makes one per channel
    it reads (50-odd), and a tuple is made at a quarter of the cost."""

    channel: str
    intervals: int
    missing: int
    estimated: int
    suspect: int
    kwh: float
    max_kw: float
    max_at: str  # UTC start of the interval with the highest kW
    limit_kw: float | None  # physical limit (channel max_kw, else asset capacity), None when unknown
    limit_source: str = ""

    @property
    def measured(self) -> int:
        return self.intervals - self.missing

    @property
    def mean_kwh(self) -> float:
        return self.kwh / self.measured if self.measured else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"intervals": self.intervals, "missing": self.missing, "estimated": self.estimated,
                "suspect": self.suspect, "kwh": repr(self.kwh), "max_kw": repr(self.max_kw), "max_at": self.max_at,
                "limit_kw": None if self.limit_kw is None else repr(self.limit_kw), "limit_source": self.limit_source}


@dataclass(frozen=True)
class Unbilled:
    """Energy allocated to the buyer that no component bills."""

    source: str
    kwh: float
    reason: str
    declared: bool  # the contract says explicitly that it is not billed


@dataclass
class ReviewInputs:
    """Everything the checks look at for one run."""

    period_label: str
    period_end_epoch: int
    now_epoch: int
    channels: Sequence[ChannelStats]
    line_quantities: Sequence[tuple[str, str, Decimal]]  # (description, charge type, quantity)
    line_total: Decimal
    previous_total: Decimal | None = None  # full line total of the previous period's run
    previous_period: str = ""
    previous_mean_kwh: Mapping[str, float] = field(default_factory=dict)  # channel -> mean kWh per interval
    unbilled: Sequence[Unbilled] = ()
    currency: str = "USD"
    terms_changes: Sequence[str] = ()  # "terms changed since run X: ..." per settled run whose terms changed


@dataclass(frozen=True)
class CheckResult:
    """One named check: passed or not, with a message that says what was found and what to do."""

    name: str
    passed: bool
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"check": self.name, "passed": self.passed, "message": self.message}


def _pct(part: float, whole: float) -> Decimal:
    return (Decimal(repr(part)) * 100 / Decimal(repr(whole))).quantize(Decimal("0.01")) if whole else Decimal(0)


def _listing(items: Iterable[str], limit: int = 5) -> str:
    items = list(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def run_checks(inp: ReviewInputs, checks: ReviewChecks) -> list[CheckResult]:
    """Run every enabled check (see module docs) in :data:`CHECK_NAMES` order."""
    c = effective_checks(checks)
    out: list[CheckResult] = []

    def add(name: str, passed: bool, message: str) -> None:
        if name not in c.disabled:
            out.append(CheckResult(name, passed, message))

    ended = inp.now_epoch >= inp.period_end_epoch
    add("period_ended", ended, f"period {inp.period_label} has ended" if ended else
        f"period {inp.period_label} has not ended yet; settle it once it is over (or approve an early bill on purpose)")
    chans = inp.channels
    # one pass over the channels gathers what the channel checks look at
    empty: list[str] = []
    gaps: list[str] = []
    suspect: list[ChannelStats] = []
    over: list[ChannelStats] = []
    jumps: list[str] = []
    missing = total = est = n_suspect = 0
    margin = float(c.physical_limit_margin or 1)
    factor = float(c.unit_factor_min or 500)
    prev_means = inp.previous_mean_kwh
    for s in chans:
        m, n = s.missing, s.intervals
        measured = n - m
        if n and measured == 0:
            empty.append(s.channel)
        if m:
            missing += m
            gaps.append(f"{s.channel}: {m}")
        total += n
        est += s.estimated
        if s.suspect:
            suspect.append(s)
            n_suspect += s.suspect
        if s.limit_kw is not None and s.max_kw > s.limit_kw * margin:
            over.append(s)
        prev = prev_means.get(s.channel) if prev_means else None
        if prev and measured:
            mean = s.kwh / measured
            if mean and prev > 0 and mean > 0:
                ratio = mean / prev
                if ratio >= factor or ratio <= 1 / factor:
                    jumps.append(f"{s.channel} x{ratio:,.1f} against {inp.previous_period}")
    add("measured_data", not empty, "every channel has measured data" if not empty else
        f"no measured data at all for {_listing(empty)}: check that their meter files were ingested")
    add("missing_intervals", missing <= (c.missing_intervals_max or 0),
        f"{missing} intervals without data" + (
            f" were counted as 0 kWh ({_listing(gaps)}); "
            "ingest the missing data or approve with a reason" if missing else ""))
    share = _pct(est, total)
    limit = c.estimated_share_max_pct or Decimal(0)
    add("estimated_share", share <= limit,
        f"{est} of {total} channel-intervals estimated or edited ({share} %, limit {limit} %)"
        + ("" if share <= limit else "; review the estimates (`kwhub vee report`) or get actual data"))
    add("suspect_intervals", n_suspect <= (c.suspect_intervals_max or 0),
        f"{n_suspect} suspect intervals" + (
            f" ({_listing(f'{s.channel}: {s.suspect}' for s in suspect)}); see `kwhub vee report` for the rule "
            "that flagged them" if n_suspect else ""))
    add("physical_limit", not over,
        "no interval above its channel's physical limit" if not over else
        "above the physical limit: " + _listing(
            f"{s.channel} {s.max_kw:,.1f} kW at {s.max_at} > {s.limit_kw:,.1f} kW ({s.limit_source}) x {margin}"
            for s in over) + "; check the meter's unit and multiplier")
    add("unit_factor", not jumps, "no channel changed its level by a unit factor" if not jumps else
        "level changed by a unit factor: " + _listing(jumps) + "; a Wh/kWh or multiplier mix-up is likely")
    negative = [f"{d} ({q})" for d, t, q in inp.line_quantities
                if q < 0 and t in ("energy", "demand", "capacity", "take_or_pay", "pass_through")]
    add("negative_quantity", not negative, "no negative billed quantity" if not negative else
        "negative billed quantities: " + _listing(negative) + "; check the channel directions and signs")
    if inp.previous_total is not None and inp.previous_total != 0:
        move = ((inp.line_total - inp.previous_total) * 100 / abs(inp.previous_total)).quantize(Decimal("0.1"))
        lim = c.movement_max_pct or Decimal(0)
        add("movement", abs(move) <= lim,
            f"total {inp.line_total} {inp.currency} is {move:+} % against {inp.previous_total} in "
            f"{inp.previous_period} (limit {lim} %)" + ("" if abs(move) <= lim else "; confirm the change"))
    else:
        add("movement", True, "no previous period to compare with")
    tol = float(c.unbilled_tolerance_kwh or 0)
    loose = [u for u in inp.unbilled if not u.declared and abs(u.kwh) > tol]
    add("unbilled_energy", not loose, "every allocated kWh is billed or declared not billed" if not loose else
        "allocated energy nobody bills: " + _listing(f"{u.source} {u.kwh:,.3f} kWh ({u.reason})" for u in loose)
        + "; price it in a contract or declare it in the contract's not_billed")
    add("contract_terms", not inp.terms_changes, "the terms are those the settled runs used" if not inp.terms_changes
        else "; ".join(inp.terms_changes) + "; if the change applies from a later day, write it as an amendment "
        "(docs/configuration.md, 'Contract amendments'), else approve to bill the period under the new terms")
    return out


def held_reasons(results: Iterable[CheckResult]) -> list[str]:
    """The messages of the failed checks, prefixed with the check name."""
    return [f"{r.name}: {r.message}" for r in results if not r.passed]
