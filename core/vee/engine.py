"""The VEE engine: run the configured rules over a channel's days, estimate, edit, record.

The engine is pure: it takes raw :class:`~kwhub.core.intervals.DayBlock` s (plus context: history
days, related channels, availability, register reads) and returns new blocks in the
``validated`` layer with a quality flag and the responsible rule per value, plus one
:class:`VeeEvent` per (rule, day, action). The raw blocks are never modified.

Rules work on a :class:`ChannelFrame`: the channel's days as a dense ``days x slots``
array that starts ``lookback`` days before the first day to validate (history from the
context) and ends one day after the last one (for right-hand neighbours). Each rule
returns a :class:`Finding` (a boolean mask over the frame and an action); the engine
applies findings in rule order, then estimates every slot marked for estimation
(:mod:`kwhub.core.vee.estimation`), then runs the ``post`` rules (sum checks, prolonged
estimation) on the repaired values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from kwhub.core.campus import Asset, Channel
from kwhub.core.intervals import (
    SECONDS_PER_DAY,
    ChannelSeries,
    DayBlock,
    IntervalDataError,
    day_start_epoch,
    epoch_to_day,
    slots_per_day,
)
from kwhub.core.quality import Quality
from kwhub.core.vee import estimation as est
from kwhub.core.vee.config import DEFAULT_GROUP, EstimationConfig, VeeConfig, VeeConfigError

Action = Literal["flag", "estimate", "edit"]
Phase = Literal["prepare", "validate", "post"]
EventAction = Literal["flagged", "estimated", "edited"]

_LEVEL = {"flag": 1, "edit": 2, "estimate": 3}
_USABLE = np.array([q <= Quality.EDITED for q in range(256)], dtype=bool)


class RuleConfig(BaseModel):
    """Base of every rule's settings: unknown keys are errors; ``enabled`` switches it off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


@dataclass
class Finding:
    """What one rule found on a frame.

    ``mask`` (bool, frame shape) marks the intervals; ``action`` says what happens to them:
    ``flag`` (quality SUSPECT where it was valid), ``estimate`` (replaced by an estimate)
    or ``edit`` (replaced by ``values`` and marked EDITED). ``detail`` goes into every
    event of the finding, ``day_detail`` (frame row -> dict) into that day's event only.
    """

    mask: np.ndarray
    action: Action = "flag"
    values: np.ndarray | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    day_detail: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class PreparedBlock:
    """A raw block brought to the channel's interval length by a ``prepare`` rule."""

    block: DayBlock
    edited: np.ndarray  # bool per slot: values the rule changed
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RegisterReads:
    """Cumulative register readings (kWh) at interval boundaries (UTC epoch seconds)."""

    epochs: np.ndarray
    readings: np.ndarray

    def __post_init__(self) -> None:
        self.epochs = np.asarray(self.epochs, dtype=np.int64)
        self.readings = np.asarray(self.readings, dtype=np.float64)
        if self.epochs.shape != self.readings.shape:
            raise IntervalDataError("register read epochs and readings differ in length", field="register_reads")


@dataclass
class PeriodReads:
    """Energy readings over periods of the validated channel: ``values[i]`` kWh over ``[starts[i], ends[i])``.

    Daily reads (23, 24 or 25-hour local days), billing-period reads: the sum check compares
    them with the channel's intervals.
    """

    starts: np.ndarray
    ends: np.ndarray
    values: np.ndarray
    quality: np.ndarray

    def __post_init__(self) -> None:
        self.starts = np.asarray(self.starts, dtype=np.int64)
        self.ends = np.asarray(self.ends, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.float64)
        self.quality = np.asarray(self.quality, dtype=np.uint8)
        if not (self.starts.shape == self.ends.shape == self.values.shape == self.quality.shape):
            raise IntervalDataError("period read arrays differ in length", field="period_reads")


MAX_FRAME_EXTENSION_DAYS = 400  # a period or register window reaches at most this far beyond the days


@dataclass
class DenseDays:
    """Consecutive days of one channel as dense ``(days, slots)`` arrays from ``first_day`` on."""

    first_day: date
    values: np.ndarray
    quality: np.ndarray


@dataclass
class VeeContext:
    """Everything besides the raw days that the rules may look at.

    ``history``: other days of the same channel (preferably the validated layer), before
    and after the days to validate. ``related``: blocks of other channels (check meters,
    sum-check members) by channel id. ``availability``: the asset's availability
    channel (fraction 0..1; below the zero rule's threshold means the asset was out).
    ``outages``: known outage spans ``(start_epoch, end_epoch)``. ``register_reads``:
    cumulative readings of the channel's register. ``incoming``: the series as received
    (with possible duplicates). ``asset``: the channel's asset (capacity, kind).
    ``now_epoch``: intervals ending after it are not due yet and are never called gaps.
    ``history_dense``: history of the channel as dense arrays at its interval length
    (an alternative to ``history`` for bulk callers; ``history`` blocks win where both exist).
    ``period_reads``: the channel's readings over periods (daily, billing), for the sum
    check. The frame reaches as far as the periods and register windows that overlap the
    validated days (at most ``MAX_FRAME_EXTENSION_DAYS``), see :meth:`VeeEngine.frame_span`.
    """

    history: list[DayBlock] = field(default_factory=list)
    related: dict[str, list[DayBlock]] = field(default_factory=dict)
    availability: list[DayBlock] = field(default_factory=list)
    outages: list[tuple[int, int]] = field(default_factory=list)
    register_reads: RegisterReads | None = None
    incoming: list[ChannelSeries] = field(default_factory=list)
    asset: Asset | None = None
    now_epoch: int | None = None
    history_dense: DenseDays | None = None
    period_reads: PeriodReads | None = None


@dataclass
class VeeEvent:
    """One rule's effect on one channel-day: ``count`` intervals flagged/estimated/edited."""

    rule_id: str
    channel_id: str
    day: date
    action: EventAction
    count: int
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id, "channel_id": self.channel_id, "day": self.day.isoformat(),
            "action": self.action, "count": self.count, "detail": self.detail,
        }


@dataclass
class ValidatedDays:
    """One channel's validated days as dense arrays: one row per day, in day order.

    ``rule_ids`` numbers each slot's rule (0: none) into that day's ``rule_names``;
    ``ruled`` tells which days any rule touched. With ``compact``, :meth:`blocks` gives
    the untouched days ``rule_ids=None`` (as the store keeps them).
    """

    channel_id: str
    interval_minutes: int
    days: list[date]
    values: np.ndarray
    quality: np.ndarray
    rule_ids: np.ndarray
    rule_names: list[tuple[str, ...]]
    ruled: np.ndarray
    compact: bool = False

    def blocks(self) -> list[DayBlock]:
        """The days as :class:`DayBlock` objects (layer ``validated``)."""
        ids: Sequence[np.ndarray | None] = list(self.rule_ids)
        if self.compact:
            ids = [r if t else None for r, t in zip(ids, self.ruled.tolist(), strict=True)]
        cid, minutes = self.channel_id, self.interval_minutes
        return [DayBlock(cid, d, minutes, v, q, r, nm, "validated")
                for d, v, q, r, nm in zip(self.days, self.values, self.quality, ids, self.rule_names, strict=True)]


class VeeOutcome:
    """Validated days (layer ``validated``) and the events that explain them.

    ``dense`` holds the days as arrays (what the store writes); ``validated`` gives the
    same days as :class:`DayBlock` objects, made on first use.
    """

    def __init__(self, validated: list[DayBlock] | None = None, events: list[VeeEvent] | None = None,
                 dense: ValidatedDays | None = None) -> None:
        self._validated = validated
        self.events: list[VeeEvent] = events if events is not None else []
        self.dense = dense

    @property
    def validated(self) -> list[DayBlock]:
        if self._validated is None:
            self._validated = self.dense.blocks() if self.dense is not None else []
        return self._validated

    def counts(self) -> dict[str, dict[str, int]]:
        """rule_id -> {flagged, estimated, edited} interval counts."""
        out: dict[str, dict[str, int]] = {}
        for e in self.events:
            c = out.setdefault(e.rule_id, {"flagged": 0, "estimated": 0, "edited": 0})
            c[e.action] += e.count
        return out


def regrid_block(block: DayBlock, target_minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """Bring a block's values to ``target_minutes`` (energy-preserving; vectorised).

    Values are spread evenly to the greatest common interval, then summed. A target slot
    with any missing part is missing; quality is the worst of its parts.
    """
    src = block.interval_minutes
    g = int(np.gcd(src, target_minutes))
    split = src // g
    merge = target_minutes // g
    vals = np.repeat(np.asarray(block.values, dtype=np.float64) / split, split)
    qual = np.repeat(np.asarray(block.quality, dtype=np.uint8), split)
    missing = (qual == Quality.MISSING) | ~np.isfinite(vals)
    n_target = slots_per_day(target_minutes)
    out_v = vals.reshape(n_target, merge).sum(axis=1)
    out_q = qual.reshape(n_target, merge).max(axis=1)
    gone = missing.reshape(n_target, merge).any(axis=1)
    out_v[gone] = np.nan
    out_q[gone] = Quality.MISSING
    return out_v, out_q


def _frozen(a: np.ndarray) -> np.ndarray:
    """``a`` made read-only (a frame's cached masks are shared by every rule that asks)."""
    a.flags.writeable = False
    return a


class Rule:
    """Base class of VEE rules: subclass, set ``rule_id`` and ``Config``, implement ``check``.

    ``phase``: ``prepare`` rules (only :meth:`prepare`) see each raw block before the
    frame is built; ``validate`` rules run before estimation; ``post`` rules after it.
    ``order`` sorts rules within a phase. A rule never mutates the frame; it returns a
    :class:`Finding` (or ``None`` when it found nothing or does not apply).
    """

    rule_id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    phase: ClassVar[Phase] = "validate"
    order: ClassVar[int] = 100
    Config: ClassVar[type[RuleConfig]] = RuleConfig

    def __init__(self, config: RuleConfig | dict[str, Any] | None = None) -> None:
        if config is None:
            config = {}
        self.config = config if isinstance(config, RuleConfig) else self.Config.model_validate(config)

    def history_days(self) -> int:
        """How many days before a validated day this rule wants in the frame."""
        return 0

    def related_channels(self, channel: Channel) -> set[str]:
        """Other channels whose blocks this rule needs in ``VeeContext.related``."""
        return set()

    def prepare(self, block: DayBlock, channel: Channel) -> PreparedBlock | None:
        """``prepare`` rules: return the block at the channel's interval length, or None."""
        return None

    def check(self, frame: ChannelFrame) -> Finding | None:
        """Inspect the frame and return what was found (``None``: nothing)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.rule_id} {self.config!r}>"


@dataclass
class ChannelFrame:
    """A channel's days as dense ``(days, slots)`` arrays, for the rules to inspect.

    ``values``/``quality`` are the current working state (after earlier rules' edits);
    ``raw_values`` the values as received. ``target[row]`` says whether the row is a day
    being validated (rules may look at every row; only target rows are changed).

    :attr:`present`, :attr:`usable` and :meth:`inside_data` are computed once per state
    and given out read-only: whoever changes ``values``/``quality`` (the engine, between
    rules) calls :meth:`changed` (``raw_values`` never changes once the frame is built).
    """

    channel: Channel
    days: list[date]
    interval_minutes: int
    values: np.ndarray
    quality: np.ndarray
    raw_values: np.ndarray
    target: np.ndarray
    context: VeeContext
    estimation: EstimationConfig
    due: np.ndarray
    _present: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _usable: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _inside: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def changed(self) -> None:
        """``values`` or ``quality`` changed: :attr:`present` and :attr:`usable` are computed anew."""
        self._present = self._usable = None

    @property
    def n_slots(self) -> int:
        return int(self.values.shape[1])

    @property
    def step_s(self) -> int:
        return self.interval_minutes * 60

    @property
    def start_epoch(self) -> int:
        return day_start_epoch(self.days[0])

    @property
    def present(self) -> np.ndarray:
        """A value exists (finite, not MISSING). Read-only."""
        got = self._present
        if got is None:
            got = self._present = _frozen(np.isfinite(self.values) & (self.quality != Quality.MISSING))
        return got

    @property
    def usable(self) -> np.ndarray:
        """A value that can be trusted as a neighbour (valid, estimated or edited). Read-only."""
        got = self._usable
        if got is None:
            got = self._usable = _frozen(np.isfinite(self.values) & _USABLE[self.quality])
        return got

    def inside_data(self) -> np.ndarray:
        """Bool (days, slots): from the first to the last slot with a received value in the frame.

        Estimation stays inside: nothing is made up before a channel's first reading or after
        its last one (as far as the frame reaches, ``lookback`` days back and one day ahead).
        Read-only.
        """
        if self._inside is not None:
            return self._inside
        flat = np.isfinite(self.raw_values).ravel()
        out = np.zeros(flat.size, dtype=bool)
        first = int(np.argmax(flat))
        if flat[first]:
            last = flat.size - 1 - int(np.argmax(flat[::-1]))
            out[first:last + 1] = True
        self._inside = _frozen(out.reshape(self.values.shape))
        return self._inside

    @property
    def target_mask(self) -> np.ndarray:
        """Bool (days, slots): slots of the days being validated."""
        return np.broadcast_to(self.target[:, None], self.values.shape)

    def row_of(self, day: date) -> int:
        return (day - self.days[0]).days

    def weekday(self) -> np.ndarray:
        """Weekday (Mon=0) of each row."""
        return (np.arange(len(self.days)) + self.days[0].weekday()) % 7

    def dense(self, blocks: Sequence[DayBlock]) -> tuple[np.ndarray, np.ndarray]:
        """Other blocks (any interval length) aligned to this frame; NaN/MISSING elsewhere."""
        vals = np.full(self.values.shape, np.nan)
        qual = np.full(self.values.shape, Quality.MISSING, dtype=np.uint8)
        if not blocks:
            return vals, qual
        n = len(self.days)
        for b in blocks:
            r = self.row_of(b.day)
            if not 0 <= r < n:
                continue
            if b.interval_minutes == self.interval_minutes:
                v, q = np.asarray(b.values, dtype=np.float64), np.asarray(b.quality, dtype=np.uint8)
            else:
                v, q = regrid_block(b, self.interval_minutes)
            vals[r], qual[r] = v, q
        qual[~np.isfinite(vals)] = Quality.MISSING
        vals[qual == Quality.MISSING] = np.nan
        return vals, qual

    def related(self, channel_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, quality) of another channel from the context, aligned to the frame."""
        return self.dense(self.context.related.get(channel_id, []))

    def availability(self) -> np.ndarray:
        """Availability fraction per slot (NaN where unknown)."""
        vals, _ = self.dense(self.context.availability)
        return vals

    def outage_mask(self) -> np.ndarray:
        """True where a known outage span covers the slot."""
        out = np.zeros(self.values.size, dtype=bool)
        if not self.context.outages:
            return out.reshape(self.values.shape)
        starts = self.start_epoch + self.step_s * np.arange(self.values.size, dtype=np.int64)
        spans = np.asarray(self.context.outages, dtype=np.int64).reshape(-1, 2)
        for a, b in spans:  # one vectorised comparison per outage span
            out |= (starts + self.step_s > a) & (starts < b)
        return out.reshape(self.values.shape)

    def register_boundaries(self) -> tuple[np.ndarray, np.ndarray]:
        """Register reads inside the frame as (flat boundary index, reading), sorted."""
        rr = self.context.register_reads
        if rr is None or len(rr.epochs) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        rel = rr.epochs - self.start_epoch
        ok = (rel % self.step_s == 0) & (rel >= 0) & (rel <= self.values.size * self.step_s)
        idx = rel[ok] // self.step_s
        order = np.argsort(idx, kind="stable")
        return idx[order], rr.readings[ok][order]


class VeeEngine:
    """Runs the registered rules, configured per channel group, over a channel's days."""

    def __init__(self, rules: dict[str, type[Rule]], config: VeeConfig | None = None) -> None:
        self.rule_classes = dict(rules)
        self.config = config or VeeConfig()
        problems = self.config.check_rules(self.rule_classes)
        if problems:
            raise VeeConfigError(problems)
        self._cache: dict[str, list[Rule]] = {}
        self._estimation: dict[str, EstimationConfig] = {}
        self._lookback: dict[str, int] = {}
        self._day_lists: dict[tuple[date, int], list[date]] = {}

    def rules_for(self, group: str) -> list[Rule]:
        """Enabled rule instances of a channel group, in phase and ``order`` order."""
        if group not in self._cache:
            g = group if group in self.config.groups else DEFAULT_GROUP
            out: list[Rule] = []
            for rid, cls in self.rule_classes.items():
                try:
                    rule = cls(self.config.rule_settings(g, rid))
                except ValidationError as exc:  # pragma: no cover - check_rules catches these
                    raise VeeConfigError([f"vee.groups.{g}.rules.{rid}: {exc}"]) from None
                if rule.config.enabled:
                    out.append(rule)
            phases = {"prepare": 0, "validate": 1, "post": 2}
            out.sort(key=lambda r: (phases[r.phase], r.order, r.rule_id))
            self._cache[group] = out
        return self._cache[group]

    def estimation_for(self, group: str) -> EstimationConfig:
        cfg = self._estimation.get(group)
        if cfg is None:
            cfg = self._estimation[group] = self.config.estimation(
                group if group in self.config.groups else DEFAULT_GROUP)
        return cfg

    def lookback_days(self, channel: Channel) -> int:
        """History days before the first validated day that the frame includes."""
        n = self._lookback.get(channel.group)
        if n is None:
            rules = self.rules_for(channel.group)
            n = self._lookback[channel.group] = max(
                [self.estimation_for(channel.group).lookback_days, *[r.history_days() for r in rules]])
        return n

    def related_channels(self, channel: Channel) -> set[str]:
        """Channels the enabled rules of this channel's group need as context."""
        out: set[str] = set()
        for r in self.rules_for(channel.group):
            out |= r.related_channels(channel)
        out.discard(channel.id)
        return out

    def frame_span(self, channel: Channel, days: Sequence[date], context: VeeContext | None = None,
                   ) -> tuple[date, date]:
        """First and last day of the frame for validating ``days`` (sorted) of ``channel``.

        ``lookback`` days before the first day and one day after the last, widened to whole
        period readings and register windows that overlap the days (the sum check needs all
        of their intervals), by at most ``MAX_FRAME_EXTENSION_DAYS``.
        """
        first = days[0] - timedelta(days=self.lookback_days(channel))
        last = days[-1] + timedelta(days=1)
        if context is None:
            return first, last
        lo = day_start_epoch(days[0])
        hi = day_start_epoch(days[-1]) + SECONDS_PER_DAY
        reach = MAX_FRAME_EXTENSION_DAYS * SECONDS_PER_DAY
        pr = context.period_reads
        if pr is not None and len(pr.starts):
            over = (pr.starts < hi) & (pr.ends > lo)
            if over.any():
                first = min(first, epoch_to_day(max(int(pr.starts[over].min()), lo - reach)))
                last = max(last, epoch_to_day(min(int(pr.ends[over].max()) - 1, hi + reach)))
        rr = context.register_reads
        if rr is not None and len(rr.epochs) >= 2:
            e = np.sort(rr.epochs)
            i = int(np.searchsorted(e, lo, side="right")) - 1
            j = int(np.searchsorted(e, hi, side="left"))
            if i >= 0:
                first = min(first, epoch_to_day(max(int(e[i]), lo - reach)))
            if j < len(e):
                last = max(last, epoch_to_day(min(int(e[j]) - 1, hi + reach)))
        return first, last

    # ------------------------------------------------------------------ the run

    def validate(self, channel: Channel, blocks: list[DayBlock], context: VeeContext | None = None) -> VeeOutcome:
        """Validate ``blocks`` (raw layer) of ``channel``; return validated blocks and events."""
        context = context or VeeContext()
        if not blocks:
            return VeeOutcome([], [])
        rules = self.rules_for(channel.group)
        events: list[VeeEvent] = []
        n_slots = slots_per_day(channel.interval_minutes)

        by_day: dict[date, DayBlock] = {}
        edits: dict[date, tuple[np.ndarray, str]] = {}
        for b in blocks:
            if b.channel_id != channel.id:
                raise IntervalDataError(f"block of {b.channel_id} given to validate {channel.id}", source=channel.id)
            if b.interval_minutes != channel.interval_minutes:
                prepared = None
                for prep_rule in rules:
                    if prep_rule.phase == "prepare":
                        prepared = prep_rule.prepare(b, channel)
                        if prepared is not None:
                            rid = prep_rule.rule_id
                            edits[b.day] = (prepared.edited, rid)
                            n = int(prepared.edited.sum())
                            if n:
                                events.append(VeeEvent(rid, channel.id, b.day, "edited", n, prepared.detail))
                            b = prepared.block
                            break
                if prepared is None:
                    raise IntervalDataError(
                        f"{b.day}: values at {b.interval_minutes} min for a {channel.interval_minutes}-min channel "
                        "and no enabled rule converts them",
                        source=channel.id, field="interval_minutes",
                    )
            elif len(b.values) != n_slots:
                raise IntervalDataError(f"{b.day}: {len(b.values)} values, expected {n_slots}", source=channel.id)
            by_day[b.day] = b
        days = sorted(by_day)
        values = np.empty((len(days), n_slots))
        quality = np.empty((len(days), n_slots), dtype=np.uint8)
        for i, d in enumerate(days):
            values[i] = by_day[d].values
            quality[i] = by_day[d].quality
        return self._run(channel, days, values, quality, context, edits, events)

    def validate_dense(self, channel: Channel, days: Sequence[date], values: np.ndarray, quality: np.ndarray,
                       context: VeeContext | None = None, *, compact: bool = False) -> VeeOutcome:
        """Like :meth:`validate`, for raw days given as dense arrays at the channel's interval length.

        ``days``: the days to validate (sorted, distinct); ``values``/``quality``: one row per
        day (``len(days) x slots``; NaN/MISSING where nothing was received). ``compact``:
        validated days that no rule touched carry ``rule_ids=None`` (as the store keeps them).
        """
        context = context or VeeContext()
        if not len(days):
            return VeeOutcome([], [])
        n_slots = slots_per_day(channel.interval_minutes)
        values = np.asarray(values, dtype=np.float64)
        quality = np.asarray(quality, dtype=np.uint8)
        if values.shape != (len(days), n_slots) or quality.shape != values.shape:
            raise IntervalDataError(f"dense days of {channel.id}: shape {values.shape}, expected "
                                    f"({len(days)}, {n_slots})", source=channel.id)
        return self._run(channel, list(days), values, quality, context, {}, [], compact=compact)

    def _run(self, channel: Channel, days: list[date], values: np.ndarray, quality: np.ndarray,
             context: VeeContext, edits: dict[date, tuple[np.ndarray, str]], events: list[VeeEvent],
             compact: bool = False) -> VeeOutcome:
        rules = self.rules_for(channel.group)
        rule_names = [r.rule_id for r in rules]
        rule_index = {rid: i + 1 for i, rid in enumerate(rule_names)}
        frame = self._frame(channel, days, values, quality, context)
        row_target = np.flatnonzero(frame.target)
        level = np.zeros(frame.values.shape, dtype=np.int8)
        owner = np.zeros(frame.values.shape, dtype=np.int16)  # 1 + index into rule_names
        to_estimate = np.zeros(frame.values.shape, dtype=bool)
        for d, (edited, rid) in edits.items():
            row = frame.row_of(d)
            owner[row, edited] = rule_index[rid]
            level[row, edited] = _LEVEL["edit"]
            frame.quality[row, edited] = np.maximum(frame.quality[row, edited], Quality.EDITED)
        frame.changed()
        target_due = frame.target_mask & frame.due
        frame_days = frame.days
        cid = channel.id

        def apply(rule: Rule, finding: Finding) -> None:
            mask = finding.mask & target_due
            counts = mask[row_target].sum(axis=1)
            hit = np.flatnonzero(counts)
            if not hit.size:
                return
            k = rule_index[rule.rule_id]
            lvl = _LEVEL[finding.action]
            take = mask & (level < lvl)
            owner[take] = k
            level[take] = lvl
            if finding.action == "flag":
                sus = mask & (frame.quality == Quality.VALID)
                frame.quality[sus] = Quality.SUSPECT
                frame.changed()
                name: EventAction = "flagged"
            elif finding.action == "edit":
                if finding.values is None:
                    raise ValueError(f"rule {rule.rule_id} returned an edit without values")
                frame.values[mask] = finding.values[mask]
                frame.quality[mask] = Quality.EDITED
                frame.changed()
                name = "edited"
            else:
                to_estimate[mask] = True
                name = "flagged"
            base, per_day = finding.detail, finding.day_detail
            for i, c in zip(hit.tolist(), counts[hit].tolist(), strict=True):
                r = int(row_target[i])
                extra = per_day.get(r)
                detail = {**base, **extra} if extra else dict(base)
                events.append(VeeEvent(rule.rule_id, cid, frame_days[r], name, c, detail))

        for rule in rules:
            if rule.phase == "validate":
                f = rule.check(frame)
                if f is not None:
                    apply(rule, f)

        if to_estimate.any():
            self._estimate(frame, to_estimate, owner, rule_names, events)

        for rule in rules:
            if rule.phase == "post":
                f = rule.check(frame)
                if f is not None:
                    apply(rule, f)

        validated = self._days(frame, row_target, owner, rule_names, compact)
        act = {"flagged": 0, "edited": 1, "estimated": 2}
        events.sort(key=lambda e: (e.day, rule_index[e.rule_id], act[e.action]))
        if validated is None:
            return VeeOutcome([], events)
        return VeeOutcome(None, events, dense=validated)

    @staticmethod
    def _days(frame: ChannelFrame, rows: np.ndarray, owner: np.ndarray, rule_names: list[str],
              compact: bool = False) -> ValidatedDays | None:
        """The validated days of the target rows (rule ids renumbered per day, vectorised).

        ``compact``: days that no rule touched get ``rule_ids=None`` instead of zeros.
        """
        if not rows.size:
            return None
        own = owner[rows]
        n, n_slots = own.shape
        rr, cc = np.nonzero(own)
        has = np.zeros((n, len(rule_names) + 1), dtype=bool)
        has[rr, own[rr, cc]] = True
        ruled = np.flatnonzero(has.any(axis=1))
        rule_ids = np.zeros((n, n_slots), dtype=np.uint8)
        names: list[tuple[str, ...]] = [()] * n
        if ruled.size:
            sub = has[ruled]
            remap = np.where(sub, np.cumsum(sub, axis=1), 0).astype(np.uint8)
            rule_ids[ruled] = np.take_along_axis(remap, own[ruled].astype(np.intp), axis=1)
            names_of: dict[bytes, tuple[str, ...]] = {}
            for i, key_row in zip(ruled.tolist(), np.packbits(sub, axis=1), strict=True):
                key = key_row.tobytes()
                got = names_of.get(key)
                if got is None:
                    got = names_of[key] = tuple(rule_names[k - 1] for k in np.flatnonzero(has[i]).tolist())
                names[i] = got
        vals = frame.values[rows]
        qual = frame.quality[rows]
        vals[qual == Quality.MISSING] = np.nan
        touched = np.zeros(n, dtype=bool)
        touched[ruled] = True
        all_days = frame.days
        return ValidatedDays(frame.channel.id, frame.channel.interval_minutes, [all_days[r] for r in rows.tolist()],
                             vals, qual, rule_ids, names, touched, compact)

    def _frame(self, channel: Channel, target_days: list[date], target_values: np.ndarray,
               target_quality: np.ndarray, context: VeeContext) -> ChannelFrame:
        first, last = self.frame_span(channel, target_days, context)
        n_days = (last - first).days + 1
        days = self._day_list(first, n_days)
        n_slots = slots_per_day(channel.interval_minutes)
        shape = (n_days, n_slots)
        dense = context.history_dense
        off = a = b = 0
        if dense is not None:
            if dense.values.shape[1:] != (n_slots,):
                raise IntervalDataError(f"dense history of {channel.id} has {dense.values.shape[1:]} slots, "
                                        f"expected {n_slots}", source=channel.id)
            off = (dense.first_day - first).days
            a, b = max(0, off), min(n_days, off + len(dense.values))
        if a == 0 and b == n_days:  # the dense history fills every row
            values, quality = np.empty(shape), np.empty(shape, dtype=np.uint8)
        else:
            values, quality = np.full(shape, np.nan), np.full(shape, Quality.MISSING, dtype=np.uint8)
        frame = ChannelFrame(
            channel=channel, days=days, interval_minutes=channel.interval_minutes,
            values=values, quality=quality, raw_values=values,  # (raw_values: a copy once filled)
            target=np.zeros(n_days, dtype=bool), context=context,
            estimation=self.estimation_for(channel.group), due=np.ones(shape, dtype=bool),
        )
        if dense is not None and a < b:
            frame.values[a:b] = dense.values[a - off:b - off]
            frame.quality[a:b] = dense.quality[a - off:b - off]
        targets = set(target_days)
        hist = [b for b in context.history if b.channel_id == channel.id and b.day not in targets]
        if hist:
            hv, hq = frame.dense(hist)
            hist_rows = sorted({frame.row_of(b.day) for b in hist if 0 <= frame.row_of(b.day) < n_days})
            frame.values[hist_rows], frame.quality[hist_rows] = hv[hist_rows], hq[hist_rows]
        rows = np.array([(d - first).days for d in target_days], dtype=np.intp)
        frame.values[rows] = target_values
        frame.quality[rows] = target_quality
        frame.target[rows] = True
        gone = ~np.isfinite(frame.values) | (frame.quality == Quality.MISSING)
        np.copyto(frame.values, np.nan, where=gone)
        np.copyto(frame.quality, np.uint8(Quality.MISSING), where=gone)
        frame.raw_values = frame.values.copy()
        frame.changed()
        frame._present = _frozen(~gone)  # (finite and not MISSING: what present computes)
        if context.now_epoch is not None:
            ends = day_start_epoch(first) + frame.step_s * (1 + np.arange(frame.values.size, dtype=np.int64))
            frame.due = (ends <= context.now_epoch).reshape(shape)
        return frame

    def _day_list(self, first: date, n_days: int) -> list[date]:
        """The frame's days (the same list for every channel of a run with the same span; never changed)."""
        cache = self._day_lists
        got = cache.get((first, n_days))
        if got is None:
            if len(cache) > 64:
                cache.clear()
            got = cache[(first, n_days)] = [first + timedelta(days=i) for i in range(n_days)]
        return got

    def _estimate(self, frame: ChannelFrame, to_estimate: np.ndarray, owner: np.ndarray,
                  rule_names: list[str], events: list[VeeEvent]) -> None:
        """Fill ``to_estimate`` slots; record 'estimated' events per owning rule and day."""
        cfg = frame.estimation
        if not cfg.enabled:
            return
        shape = frame.values.shape
        # never before the first or after the last reading: those slots stay missing
        flat_mask = (to_estimate & frame.inside_data()).ravel()
        anchors = frame.usable.ravel() & ~flat_mask
        reg_idx, reg_val = frame.register_boundaries()
        profile = est.proxy_profiles(
            frame.values, frame.usable & ~to_estimate, np.flatnonzero(to_estimate.any(axis=1)),
            days=cfg.proxy_days, same_weekday=cfg.same_weekday, min_days=cfg.min_proxy_days,
        )
        filled, method = est.estimate(
            frame.values.ravel(), anchors, flat_mask, profile.ravel(),
            max_linear_gap=cfg.max_linear_gap, scale_to_neighbours=cfg.scale_to_neighbours,
            scale_window=cfg.scale_window, long_gap_fallback=cfg.long_gap_fallback,
            register_idx=reg_idx if cfg.register_spread else None, register_val=reg_val,
        )
        filled = filled.reshape(shape)
        method = method.reshape(shape)
        done = to_estimate & (method > 0)
        frame.values[done] = filled[done]
        frame.quality[done] = Quality.ESTIMATED
        # what could not be estimated: gaps stay missing, rejected readings keep their value as suspect
        left = to_estimate & (method == 0)
        had = left & np.isfinite(frame.raw_values)
        frame.values[had] = frame.raw_values[had]
        frame.quality[had] = Quality.SUSPECT
        gone = left & ~had
        frame.values[gone] = np.nan
        frame.quality[gone] = Quality.MISSING
        frame.changed()

        # per (row, owning rule): how many slots each method filled (rows and rules ascending)
        sel = to_estimate & frame.target[:, None]
        r_idx, c_idx = np.nonzero(sel)
        if not r_idx.size:
            return
        n_rules = len(rule_names) + 1
        n_methods = max(est.METHOD_NAMES) + 1
        key = (r_idx.astype(np.int64) * n_rules + owner[r_idx, c_idx]) * n_methods + method[r_idx, c_idx]
        uk, cnt = np.unique(key, return_counts=True)
        pair = uk // n_methods
        meth = (uk % n_methods).tolist()
        cnt = cnt.tolist()
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]).tolist() + [len(uk)]
        cid = frame.channel.id
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            methods = {est.METHOD_NAMES[meth[j]]: cnt[j] for j in range(a, b) if meth[j] > 0}
            if not methods:
                continue
            p = int(pair[a])
            r, k = divmod(p, n_rules)
            detail: dict[str, Any] = {"methods": methods}
            if meth[a] == 0:
                detail["not_estimated"] = cnt[a]
            events.append(VeeEvent(rule_names[k - 1], cid, frame.days[r], "estimated", sum(methods.values()), detail))


def day_epochs(day: date, interval_minutes: int) -> np.ndarray:
    """UTC start epochs of every slot of ``day``."""
    return day_start_epoch(day) + interval_minutes * 60 * np.arange(SECONDS_PER_DAY // (interval_minutes * 60),
                                                                    dtype=np.int64)
