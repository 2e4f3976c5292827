"""The built-in VEE rules, registered through ``kwhub_register_vee_rules``.

Each rule is a :class:`~kwhub.core.vee.engine.Rule` with a ``rule_id``, a pydantic ``Config``
(``extra="forbid"``) holding its limits, and a vectorised ``check`` over the channel
frame. Settings are given per channel group in ``[vee.groups.<group>.rules.<rule_id>]``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from kwhub.core.campus import Channel
from kwhub.core.hookspecs import hookimpl
from kwhub.core.intervals import DayBlock
from kwhub.core.quality import Quality
from kwhub.core.vee.engine import (
    ChannelFrame,
    Finding,
    Phase,
    PreparedBlock,
    Rule,
    RuleConfig,
    regrid_block,
)
from kwhub.core.vee.estimation import runs

FlagOrEstimate = Literal["flag", "estimate"]

# Roles whose values follow consumption or output patterns; dispatch-driven channels
# (battery, grid tie) and availability fractions are not shape-checked by default.
PATTERN_ROLES = ["tenant_load", "shared_load", "generation", "check", "fuel", "other"]


def _pattern_roles() -> list[str]:
    return list(PATTERN_ROLES)


def _run_mask(flat: np.ndarray, min_len: int) -> np.ndarray:
    """Keep only the runs of True that are at least ``min_len`` long."""
    starts, ends = runs(flat)
    keep = (ends - starts) >= min_len
    d = np.zeros(len(flat) + 1, dtype=np.int32)
    np.add.at(d, starts[keep], 1)
    np.add.at(d, ends[keep], -1)
    return np.cumsum(d[:-1]) > 0


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's quantile interpolation, operation for operation (so the results are identical)."""
    diff = b - a
    out = a + diff * t
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out


def _smallest(rows_vals: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest values of each row, unordered (NaN counts as largest)."""
    if k >= rows_vals.shape[1]:
        return rows_vals
    return np.partition(rows_vals, k - 1, axis=1)[:, :k]


def window_percentiles(hist: np.ndarray, rows: np.ndarray, h: int, percentiles: list[float]) -> np.ndarray:
    """``np.nanpercentile`` (linear) of the finite values of ``hist[r - h:r]`` for each ``r`` in ``rows``.

    Returns ``(len(percentiles), len(rows))``, equal to calling ``np.nanpercentile`` on each
    window (every window must hold a finite value; ``hist`` holds NaN, never inf, where
    there is no value). A percentile near an end only needs the few smallest (largest)
    values of each day, so the windows are merged from those.
    """
    n_rows, cols = hist.shape
    rows = np.asarray(rows, dtype=np.intp)
    cum = np.concatenate(([0], np.cumsum(np.isfinite(hist).sum(axis=1))))
    n = cum[rows] - cum[np.maximum(rows - h, 0)]  # finite values per window
    qs = np.true_divide(percentiles, 100)
    out = np.empty((len(qs), len(rows)))
    at = np.arange(len(rows))
    gather = rows[:, None] + np.arange(h)[None, :]  # rows of the NaN-padded array in each window
    big: np.ndarray | None = None
    day_sorted = day_count = np.zeros((0, 0))
    for j, q in enumerate(qs.tolist()):
        vi = (n - 1) * np.float64(q)
        prev = np.floor(vi)
        above = vi >= n - 1
        gamma = vi - np.where(above, -1.0, prev)
        i1 = np.where(above, n - 1, prev).astype(np.intp)
        i2 = np.where(above, n - 1, prev + 1).astype(np.intp)
        need_low = int(i2.max()) + 1  # order statistics needed, counted from the bottom
        need_high = int((n - 1 - i1).max()) + 1  # ... from the top
        k = min(need_low, need_high)
        if k <= 64 and k < h * cols:
            top = need_high < need_low
            if not day_sorted.size:
                day_sorted = np.sort(hist, axis=1)  # NaN sorts last
                day_count = np.isfinite(day_sorted).sum(axis=1)
            kk = min(k, cols)
            if top:  # the kk largest of each day, negated (NaN where the day has fewer)
                idx = day_count[:, None] - 1 - np.arange(kk)[None, :]
                per_day = np.where(idx >= 0, -day_sorted[np.arange(n_rows)[:, None], np.maximum(idx, 0)], np.nan)
            else:
                per_day = day_sorted[:, :kk]
            padded = np.vstack([np.full((h, per_day.shape[1]), np.nan), per_day])
            win = padded[gather].reshape(len(rows), -1)
            srt = np.sort(_smallest(win, k), axis=1)
            if top:
                a, b = -srt[at, n - 1 - i1], -srt[at, n - 1 - i2]
            else:
                a, b = srt[at, i1], srt[at, i2]
        else:
            if big is None:
                padded = np.vstack([np.full((h, cols), np.nan), hist])
                big = np.sort(padded[gather].reshape(len(rows), -1), axis=1)  # NaN sorts last
            a, b = big[at, i1], big[at, i2]
        out[j] = _lerp(a, b, gamma)
    return out


class IntervalMismatchConfig(RuleConfig):
    """``convert``: re-grid energy to the channel's length (EDITED); ``reject``: treat as missing."""

    action: Literal["convert", "reject"] = "convert"


class IntervalMismatchRule(Rule):
    """Values arriving at another interval length than the channel's (e.g. 5-min on a 15-min channel).

    ``convert`` spreads/sums the energy onto the channel's grid (a target interval with a
    missing part stays missing) and marks the converted values EDITED; ``reject`` drops
    the day's values so that the gap rule estimates them.
    """

    rule_id: ClassVar[str] = "interval_mismatch"
    title: ClassVar[str] = "Interval-size mismatch"
    phase: ClassVar[Phase] = "prepare"
    Config = IntervalMismatchConfig
    config: IntervalMismatchConfig

    def prepare(self, block: DayBlock, channel: Channel) -> PreparedBlock | None:
        if block.interval_minutes == channel.interval_minutes:
            return None
        values, quality = regrid_block(block, channel.interval_minutes)
        present = quality != Quality.MISSING
        if self.config.action == "reject":
            values[:] = np.nan
            quality[:] = Quality.MISSING
            present[:] = False
        out = DayBlock(channel_id=block.channel_id, day=block.day, interval_minutes=channel.interval_minutes,
                       values=values, quality=quality, layer=block.layer, version=block.version)
        detail = {"received_minutes": block.interval_minutes, "channel_minutes": channel.interval_minutes,
                  "action": self.config.action}
        return PreparedBlock(out, present, detail)


class DuplicateConfig(RuleConfig):
    """Duplicates whose values differ by more than ``tolerance_kwh`` conflict."""

    tolerance_kwh: float = Field(default=1e-6, ge=0)
    action: FlagOrEstimate = "flag"


class DuplicateRule(Rule):
    """Conflicting duplicate readings in one incoming batch (same start, different values).

    Needs ``VeeContext.incoming`` (the series as received). Identical repeats are not an
    error; conflicting ones are flagged (or estimated with ``action = "estimate"``).
    """

    rule_id: ClassVar[str] = "duplicate"
    title: ClassVar[str] = "Conflicting duplicates"
    order: ClassVar[int] = 10
    Config = DuplicateConfig
    config: DuplicateConfig

    def check(self, frame: ChannelFrame) -> Finding | None:
        series = [s for s in frame.context.incoming if s.channel_id == frame.channel.id]
        if not series:
            return None
        starts = np.concatenate([s.starts for s in series])
        values = np.concatenate([s.values for s in series])
        if starts.size < 2:
            return None
        order = np.argsort(starts, kind="stable")
        st, va = starts[order], values[order]
        uniq, first, counts = np.unique(st, return_index=True, return_counts=True)
        vmax = np.maximum.reduceat(np.nan_to_num(va, nan=-np.inf), first)
        vmin = np.minimum.reduceat(np.nan_to_num(va, nan=np.inf), first)
        conflict = (counts > 1) & (vmax - vmin > self.config.tolerance_kwh)
        flat = np.zeros(frame.values.size, dtype=bool)
        slot = (uniq[conflict] - frame.start_epoch) // frame.step_s
        slot = slot[(slot >= 0) & (slot < flat.size)]
        flat[slot] = True
        if not flat.any():
            return None
        return Finding(flat.reshape(frame.values.shape), self.config.action,
                       detail={"identical_repeats": int(((counts > 1) & ~conflict).sum())})


class GapConfig(RuleConfig):
    """Missing intervals are estimated (``estimate = false``: only reported)."""

    estimate: bool = True


class GapRule(Rule):
    """Missing intervals (no value, or quality MISSING) that are due; they are estimated."""

    rule_id: ClassVar[str] = "gap"
    title: ClassVar[str] = "Gap (missing intervals)"
    order: ClassVar[int] = 20
    Config = GapConfig
    config: GapConfig

    def check(self, frame: ChannelFrame) -> Finding | None:
        mask = ~frame.present & frame.target_mask & frame.due
        if not mask.any():
            return None
        edge = np.diff(np.pad(mask.view(np.int8), ((0, 0), (1, 1))), axis=1)
        sr, sc = np.nonzero(edge == 1)
        _, ec = np.nonzero(edge == -1)  # row-major: the i-th end closes the i-th start
        rows, first, n_runs = np.unique(sr, return_index=True, return_counts=True)
        longest = np.maximum.reduceat(ec - sc, first)
        day_detail = {r: {"runs": n, "longest": m}
                      for r, n, m in zip(rows.tolist(), n_runs.tolist(), longest.tolist(), strict=True)}
        return Finding(mask, "estimate" if self.config.estimate else "flag", day_detail=day_detail)


class UnitConfig(RuleConfig):
    """Plausibility against capacity; ``capacity_kw`` overrides the asset's capacity."""

    capacity_kw: float | None = Field(default=None, gt=0)
    margin: float = Field(default=1.25, ge=1.0)
    fix_x1000: bool = False


class UnitRule(Rule):
    """Unit/multiplier sanity: a day's energy or an interval above what the capacity allows.

    Limits: capacity x hours x ``margin`` per day, capacity x interval x ``margin`` per
    interval. When the day total is 100 to 10,000 times the limit and dividing by 1000
    makes it plausible, the detail names a probable x1000 error (Wh read as kWh); with
    ``fix_x1000`` such days are divided by 1000 and marked EDITED instead of flagged.
    """

    rule_id: ClassVar[str] = "unit"
    title: ClassVar[str] = "Unit / multiplier sanity"
    order: ClassVar[int] = 75
    Config = UnitConfig
    config: UnitConfig

    def check(self, frame: ChannelFrame) -> Finding | None:
        if frame.channel.unit in ("MMBtu", "fraction") or frame.channel.role in ("fuel", "availability"):
            return None
        cap = self.config.capacity_kw
        asset = frame.context.asset
        if cap is None and asset is not None and asset.capacity_kw > 0:
            cap = asset.capacity_kw
        if cap is None:
            return None
        present = frame.present
        vals = np.where(present, np.abs(frame.values), 0.0)
        day_limit = cap * 24.0 * self.config.margin
        iv_limit = cap * frame.interval_minutes / 60.0 * self.config.margin
        totals = vals.sum(axis=1)
        bad_day = totals > day_limit
        ratio = totals / day_limit
        x1000 = bad_day & (ratio >= 100) & (ratio <= 10_000) & (totals / 1000 <= day_limit) \
            & (vals.max(axis=1) / 1000 <= iv_limit)
        mask = (bad_day[:, None] & present) | (present & (vals > iv_limit))
        if not mask.any():
            return None
        day_detail = {}
        for r in np.flatnonzero(mask.any(axis=1)):
            d: dict[str, Any] = {"day_kwh": round(float(totals[r]), 3), "limit_kwh": round(day_limit, 3),
                                 "capacity_kw": cap}
            if x1000[r]:
                d["probable"] = "x1000 (Wh recorded as kWh)"
            day_detail[int(r)] = d
        if self.config.fix_x1000 and (x1000 & frame.target).any():
            fix = x1000[:, None] & present
            values = np.where(fix, frame.values / 1000.0, frame.values)
            return Finding(fix & frame.target_mask, "edit", values=values, day_detail=day_detail)
        return Finding(mask, "flag", day_detail=day_detail)


class NegativeConfig(RuleConfig):
    """Values below ``-tolerance_kwh`` are negative."""

    tolerance_kwh: float = Field(default=0.0, ge=0)
    action: FlagOrEstimate = "flag"


class NegativeRule(Rule):
    """Negative consumption/generation: every channel has an explicit direction, so < 0 is wrong."""

    rule_id: ClassVar[str] = "negative"
    title: ClassVar[str] = "Negative value"
    order: ClassVar[int] = 40
    Config = NegativeConfig
    config: NegativeConfig

    def check(self, frame: ChannelFrame) -> Finding | None:
        mask = frame.present & (frame.values < -self.config.tolerance_kwh)
        return Finding(mask, self.config.action) if mask.any() else None


class ZeroConfig(RuleConfig):
    """Runs of ``min_run`` zeros or more are flagged unless the asset was out."""

    min_run: int = Field(default=4, ge=1)
    roles: list[str] = Field(default_factory=lambda: ["tenant_load", "shared_load", "generation", "check"])
    exclude_asset_kinds: list[str] = Field(default_factory=lambda: ["solar", "wind", "battery"])
    availability_below: float = Field(default=0.5, ge=0, le=1)
    action: FlagOrEstimate = "flag"


class ZeroRule(Rule):
    """Zero consumption or output, excused where an outage explains it.

    An interval is excused when the asset's availability channel is below
    ``availability_below`` or a known outage span covers it. Channels whose role is not
    in ``roles`` or whose asset kind is excluded (solar at night) are not checked.
    """

    rule_id: ClassVar[str] = "zero"
    title: ClassVar[str] = "Zero value"
    order: ClassVar[int] = 50
    Config = ZeroConfig
    config: ZeroConfig

    def check(self, frame: ChannelFrame) -> Finding | None:
        if frame.channel.role not in self.config.roles:
            return None
        asset = frame.context.asset
        if asset is not None and asset.kind in self.config.exclude_asset_kinds:
            return None
        zero = frame.present & (frame.values == 0)
        if not zero.any():
            return None
        zero = _run_mask(zero.ravel(), self.config.min_run).reshape(zero.shape)
        avail = frame.availability()
        excused = (np.isfinite(avail) & (avail < self.config.availability_below)) | frame.outage_mask()
        mask = zero & ~excused
        n_excused = (zero & excused & frame.target_mask).sum(axis=1)
        day_detail = {int(r): {"excused": int(n_excused[r])} for r in np.flatnonzero(n_excused)}
        if not mask.any():
            return None
        return Finding(mask, self.config.action, day_detail=day_detail)


class SpikeConfig(RuleConfig):
    """A day's intervals above ``ratio`` x its third-highest interval are spikes."""

    ratio: float = Field(default=3.0, gt=1.0)
    min_kwh: float = Field(default=0.0, ge=0)
    roles: list[str] = Field(default_factory=_pattern_roles)
    action: FlagOrEstimate = "flag"


class SpikeRule(Rule):
    """Spike: the highest interval of a day against the third-highest, with a ratio limit.

    Every interval of the day above ``ratio`` x the third-highest value is marked (so a
    double spike is caught too). Days whose third-highest value is not above ``min_kwh``
    (and at least zero) are skipped: there is no base to compare with.
    """

    rule_id: ClassVar[str] = "spike"
    title: ClassVar[str] = "Spike (highest vs third-highest)"
    order: ClassVar[int] = 60
    Config = SpikeConfig
    config: SpikeConfig

    def check(self, frame: ChannelFrame) -> Finding | None:
        if frame.channel.role not in self.config.roles:
            return None
        present = frame.present
        vals = np.where(present, frame.values, -np.inf)
        if vals.shape[1] < 3:
            return None
        third = -np.partition(-vals, 2, axis=1)[:, 2]
        base = np.maximum(third, self.config.min_kwh)
        ok_rows = np.isfinite(third) & (base > 0) & frame.target
        limit = self.config.ratio * base
        mask = ok_rows[:, None] & present & (vals > limit[:, None])
        if not mask.any():
            return None
        top = vals.max(axis=1)
        day_detail = {
            int(r): {"highest": float(top[r]), "third_highest": float(third[r]),
                     "ratio": round(float(top[r] / base[r]), 3), "limit_ratio": self.config.ratio}
            for r in np.flatnonzero(mask.any(axis=1))
        }
        return Finding(mask, self.config.action, day_detail=day_detail)


class StuckConfig(RuleConfig):
    """``min_run`` or more identical consecutive non-zero values mean a stuck register."""

    min_run: int = Field(default=6, ge=2)
    tolerance_kwh: float = Field(default=0.0, ge=0)
    roles: list[str] = Field(default_factory=_pattern_roles)
    action: FlagOrEstimate = "flag"


class StuckRule(Rule):
    """Stuck meter: the same non-zero value repeated for ``min_run`` intervals or more."""

    rule_id: ClassVar[str] = "stuck"
    title: ClassVar[str] = "Stuck meter (flat line)"
    order: ClassVar[int] = 65
    Config = StuckConfig
    config: StuckConfig

    def check(self, frame: ChannelFrame) -> Finding | None:
        if frame.channel.role not in self.config.roles:
            return None
        flat = frame.values.ravel()
        present = frame.present.ravel()
        same = (np.abs(np.diff(flat)) <= self.config.tolerance_kwh) & present[1:] & present[:-1] & (flat[1:] != 0)
        # a run of k equal neighbours pairs covers k + 1 intervals
        starts, ends = runs(same)
        keep = (ends - starts + 1) >= self.config.min_run
        d = np.zeros(flat.size + 1, dtype=np.int32)
        np.add.at(d, starts[keep], 1)
        np.add.at(d, ends[keep] + 1, -1)
        mask = np.cumsum(d[:-1]) > 0
        if not mask.any():
            return None
        return Finding(mask.reshape(frame.values.shape), self.config.action,
                       detail={"min_run": self.config.min_run})


class HighLowConfig(RuleConfig):
    """Band from the previous ``history_days`` days: [low pct x low factor, high pct x high factor]."""

    history_days: int = Field(default=14, ge=1, le=366)
    min_history_days: int = Field(default=3, ge=1)
    high_percentile: float = Field(default=99.0, gt=0, le=100)
    high_factor: float = Field(default=1.5, ge=1.0)
    low_percentile: float = Field(default=1.0, ge=0, lt=100)
    low_factor: float = Field(default=0.25, ge=0, le=1.0)
    basis: Literal["interval", "day"] = "interval"
    roles: list[str] = Field(default_factory=_pattern_roles)
    availability_below: float = Field(default=0.5, ge=0, le=1)
    action: FlagOrEstimate = "flag"


class HighLowRule(Rule):
    """High/low against the channel's history: outside a percentile band of the previous days.

    ``basis = "interval"`` compares each interval with the percentiles of all usable
    intervals of the previous ``history_days`` days; ``"day"`` compares the day's total
    with the previous days' totals and marks the whole day. The low side only applies
    when its bound is above zero, and not where the asset was out (availability below
    ``availability_below`` or a known outage span).
    """

    rule_id: ClassVar[str] = "high_low"
    title: ClassVar[str] = "High/low vs history"
    order: ClassVar[int] = 70
    Config = HighLowConfig
    config: HighLowConfig

    def history_days(self) -> int:
        return self.config.history_days

    def _bands(self, hist: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(high, low, enough history) per row, from the ``history_days`` rows before it (vectorised)."""
        c = self.config
        h = c.history_days
        has = np.isfinite(hist).any(axis=1)
        cum = np.concatenate(([0], np.cumsum(has)))
        days_with = cum[rows] - cum[np.maximum(rows - h, 0)]
        ok = days_with >= c.min_history_days
        hi = np.full(len(rows), np.inf)
        lo = np.zeros(len(rows))
        if ok.any():
            q = window_percentiles(hist, rows[ok], h, [c.high_percentile, c.low_percentile])
            hi[ok], lo[ok] = q[0] * c.high_factor, q[1] * c.low_factor
        return hi, lo, ok

    def check(self, frame: ChannelFrame) -> Finding | None:
        c = self.config
        if frame.channel.role not in c.roles:
            return None
        usable = frame.usable
        present = frame.present
        rows = np.flatnonzero(frame.target)
        if c.basis == "interval":
            hi, lo, ok = self._bands(np.where(usable, frame.values, np.nan), rows)
            vals = frame.values[rows]
        else:
            full_day = usable.all(axis=1)
            totals = np.where(full_day, np.where(usable, frame.values, 0.0).sum(axis=1), np.nan)
            hi, lo, ok = self._bands(totals[:, None], rows)
            vals = np.where(present[rows], frame.values[rows], 0.0).sum(axis=1, keepdims=True)
        p_rows = present[rows]
        ok &= p_rows.any(axis=1)
        sel = ok[:, None] & p_rows
        high_rows = sel & (vals > hi[:, None])
        low_rows = sel & (lo[:, None] > 0) & (vals < lo[:, None])
        if not (high_rows.any() or low_rows.any()):
            return None
        high = np.zeros(frame.values.shape, dtype=bool)
        low = np.zeros(frame.values.shape, dtype=bool)
        high[rows] = high_rows
        low[rows] = low_rows
        avail = frame.availability()
        out = (np.isfinite(avail) & (avail < c.availability_below)) | frame.outage_mask()
        if c.basis == "day":
            out = np.broadcast_to(out.any(axis=1)[:, None], out.shape)
        excused = low & out
        mask = high | (low & ~out)
        day_detail: dict[int, dict[str, Any]] = {}
        pos = np.full(len(frame.days), -1, dtype=np.intp)
        pos[rows] = np.arange(len(rows))
        n_excused = excused.sum(axis=1)
        for r in np.flatnonzero(mask.any(axis=1) | n_excused.astype(bool)).tolist():
            i = int(pos[r])  # flagged or excused rows are target rows with a band
            day_detail[r] = {"high": round(float(hi[i]), 4), "low": round(float(lo[i]), 4), "basis": c.basis,
                             "excused": int(n_excused[r])}
        return Finding(mask, c.action, day_detail=day_detail) if mask.any() else None


class SumCheckConfig(RuleConfig):
    """``checks``: check channel -> member channels ("-id" subtracts); tolerances per interval."""

    checks: dict[str, list[str]] = Field(default_factory=dict)
    tolerance_pct: float = Field(default=2.0, ge=0)
    tolerance_kwh: float = Field(default=0.5, ge=0)
    registers: bool = True


class SumCheckRule(Rule):
    """Sum check: channels vs a check meter, and intervals vs register reads, with tolerance.

    For each configured check the validated channel takes part in (as check meter or as a
    member), intervals where ``|check - sum(members)|`` exceeds
    ``max(tolerance_kwh, tolerance_pct % of |check|)`` are flagged. With ``registers``,
    each window between two register reads whose interval sum differs from the read
    difference by more than the tolerance is flagged. Runs after estimation.
    """

    rule_id: ClassVar[str] = "sum_check"
    title: ClassVar[str] = "Sum check"
    phase: ClassVar[Phase] = "post"
    order: ClassVar[int] = 110
    Config = SumCheckConfig
    config: SumCheckConfig

    def _involving(self, channel_id: str) -> dict[str, list[str]]:
        return {chk: members for chk, members in self.config.checks.items()
                if chk == channel_id or channel_id in [m.lstrip("-+") for m in members]}

    def related_channels(self, channel: Channel) -> set[str]:
        out: set[str] = set()
        for chk, members in self._involving(channel.id).items():
            out.add(chk)
            out |= {m.lstrip("-+") for m in members}
        out.discard(channel.id)
        return out

    def _series(self, frame: ChannelFrame, cid: str) -> np.ndarray:
        if cid == frame.channel.id:
            return np.where(frame.present, frame.values, np.nan)
        v, _ = frame.related(cid)
        return v

    def _tol(self, ref: np.ndarray) -> np.ndarray:
        return np.maximum(self.config.tolerance_kwh, np.abs(ref) * self.config.tolerance_pct / 100.0)

    def check(self, frame: ChannelFrame) -> Finding | None:
        mask = np.zeros(frame.values.shape, dtype=bool)
        detail: dict[str, Any] = {}
        day_detail: dict[int, dict[str, Any]] = {}
        for chk, members in self._involving(frame.channel.id).items():
            check = self._series(frame, chk)
            total = np.zeros(frame.values.shape)
            for m in members:
                sign = -1.0 if m.startswith("-") else 1.0
                total = total + sign * self._series(frame, m.lstrip("-+"))
            bad = np.isfinite(check) & np.isfinite(total) & (np.abs(check - total) > self._tol(check))
            mask |= bad
            for r in np.flatnonzero(bad.any(axis=1)):
                worst = float(np.nanmax(np.abs(check[r] - total[r])[bad[r]]))
                day_detail.setdefault(int(r), {})[f"check:{chk}"] = {"intervals": int(bad[r].sum()),
                                                                     "max_diff_kwh": round(worst, 4)}
        if self.config.registers:
            idx, val = frame.register_boundaries()
            flat = frame.values.ravel()
            if idx.size >= 2:
                finite = np.isfinite(flat)
                cum = np.concatenate(([0.0], np.cumsum(np.where(finite, flat, 0.0))))
                n_nan = np.concatenate(([0], np.cumsum(~finite)))
                sums = cum[idx[1:]] - cum[idx[:-1]]
                diffs = np.diff(val)
                complete = (n_nan[idx[1:]] - n_nan[idx[:-1]] == 0) & (idx[1:] > idx[:-1])
                bad_w = complete & (np.abs(sums - diffs) > self._tol(diffs))
                if bad_w.any():
                    d = np.zeros(flat.size + 1, dtype=np.int32)
                    np.add.at(d, idx[:-1][bad_w], 1)
                    np.add.at(d, idx[1:][bad_w], -1)
                    mask |= (np.cumsum(d[:-1]) > 0).reshape(mask.shape)
                    detail["register_windows"] = int(bad_w.sum())
                    detail["max_register_diff_kwh"] = round(float(np.abs(sums - diffs)[bad_w].max()), 4)
        return Finding(mask, "flag", detail=detail, day_detail=day_detail) if mask.any() else None


class ProlongedEstimationConfig(RuleConfig):
    """Longest acceptable run of estimates (None: the group's ``estimation.max_estimated_run``)."""

    max_intervals: int | None = Field(default=None, ge=1)


class ProlongedEstimationRule(Rule):
    """Prolonged estimation: more consecutive estimated intervals than allowed.

    Counts across days (a run continues from the previous days' validated layer) and
    includes estimates that arrived from the meter. The estimates are kept; the run is
    reported so that someone obtains real readings.
    """

    rule_id: ClassVar[str] = "prolonged_estimation"
    title: ClassVar[str] = "Prolonged estimation"
    phase: ClassVar[Phase] = "post"
    order: ClassVar[int] = 120
    Config = ProlongedEstimationConfig
    config: ProlongedEstimationConfig

    def check(self, frame: ChannelFrame) -> Finding | None:
        limit = self.config.max_intervals or frame.estimation.max_estimated_run
        flat = (frame.quality == Quality.ESTIMATED).ravel()
        mask = _run_mask(flat, limit + 1).reshape(frame.values.shape)
        if not (mask & frame.target_mask).any():
            return None
        starts, ends = runs(mask.ravel())
        return Finding(mask, "flag", detail={"max_intervals": limit, "longest_run": int((ends - starts).max())})


BUILTIN_RULES: tuple[type[Rule], ...] = (
    IntervalMismatchRule, DuplicateRule, GapRule, UnitRule, NegativeRule, ZeroRule, SpikeRule,
    StuckRule, HighLowRule, SumCheckRule, ProlongedEstimationRule,
)


@hookimpl
def kwhub_register_vee_rules(register: Any) -> None:
    """Register the built-in VEE rules."""
    for cls in BUILTIN_RULES:
        register(cls)
