"""The built-in VEE rules, registered through ``kwhub_register_vee_rules``.

Each rule is a :class:`~kwhub.core.vee.engine.Rule` with a ``rule_id``, a pydantic ``Config``
(``extra="forbid"``) holding its limits, and a vectorised ``check`` over the channel
frame. Settings are given per channel group in ``[vee.groups.<group>.rules.<rule_id>]``.
"""

from __future__ import annotations

from datetime import UTC, datetime
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


def _window_smallest(sorted_rows: np.ndarray, starts: np.ndarray, h: int, k: int) -> np.ndarray:
    """The ``k`` smallest values (ascending, NaN last) of the windows ``sorted_rows[s:s + h]``.

    ``sorted_rows`` holds each row's values ascending (NaN last). The k smallest of 2^j
    consecutive rows are built level by level (each level merges two of the previous), and
    a window of ``h`` rows joins one block per set bit of ``h``: a few short sorts instead
    of one partition over every value of every window. Order statistics are exact, so the
    percentiles are the same numbers.
    """
    n = sorted_rows.shape[0]
    levels = [sorted_rows[:, :k]]
    for j in range(1, h.bit_length()):
        w = 1 << (j - 1)
        prev = levels[-1]
        m = prev.shape[1]
        both = np.full((n, 2 * m), np.nan)
        both[:, :m] = prev
        both[:n - w, m:] = prev[w:]
        both.sort(axis=1)
        levels.append(both[:, :k])
    parts = []
    at = np.asarray(starts, dtype=np.intp)
    for j in range(h.bit_length() - 1, -1, -1):
        if h >> j & 1:
            parts.append(levels[j][at])
            at = at + (1 << j)
    cand = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    cand.sort(axis=1)
    return cand[:, :k]


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
            srt = _window_smallest(padded, rows, h, k)
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
    """Missing intervals (no value, or quality MISSING) that are due; they are estimated.

    Only gaps strictly between readings are estimated: intervals before the channel's
    first reading or after its last one are reported (``outside_data`` in the day's
    event) and stay missing, so VEE never makes up data at the ends.
    """

    rule_id: ClassVar[str] = "gap"
    title: ClassVar[str] = "Gap (missing intervals)"
    order: ClassVar[int] = 20
    Config = GapConfig
    config: GapConfig

    def check(self, frame: ChannelFrame) -> Finding | None:
        mask = ~frame.present & frame.target_mask & frame.due
        if not mask.any():
            return None
        inner = mask & frame.inside_data()
        edge = np.diff(np.pad(inner.view(np.int8), ((0, 0), (1, 1))), axis=1)
        sr, sc = np.nonzero(edge == 1)
        _, ec = np.nonzero(edge == -1)  # row-major: the i-th end closes the i-th start
        day_detail: dict[int, dict[str, Any]] = {}
        if sr.size:
            rows, first, n_runs = np.unique(sr, return_index=True, return_counts=True)
            longest = np.maximum.reduceat(ec - sc, first)
            day_detail = {r: {"runs": n, "longest": m}
                          for r, n, m in zip(rows.tolist(), n_runs.tolist(), longest.tolist(), strict=True)}
        outside = (mask & ~inner).sum(axis=1)
        for r in np.flatnonzero(outside).tolist():
            day_detail.setdefault(r, {})["outside_data"] = int(outside[r])
        return Finding(mask, "estimate" if self.config.estimate else "flag", day_detail=day_detail)


NOT_ENERGY_UNITS = ("MMBtu", "fraction")
NOT_ENERGY_ROLES = ("fuel", "availability")


def is_energy(channel: Channel) -> bool:
    """True for channels whose values are kWh (fuel and availability channels are not)."""
    return channel.unit not in NOT_ENERGY_UNITS and channel.role not in NOT_ENERGY_ROLES


def physical_limit(frame: ChannelFrame, capacity_margin: float) -> tuple[float, float, str] | None:
    """(limit kW, limit kWh per interval, where it comes from) of the frame's channel, or None.

    The channel's ``max_kw`` (breaker or CT rating) is the limit as is; without it, the
    asset's ``capacity_kw`` times ``capacity_margin``.
    """
    ch = frame.channel
    if ch.max_kw:
        kw, source = float(ch.max_kw), f"max_kw {ch.max_kw:g} kW of the channel"
    else:
        asset = frame.context.asset
        if asset is None or asset.capacity_kw <= 0:
            return None
        kw = float(asset.capacity_kw) * capacity_margin
        source = f"capacity_kw {asset.capacity_kw:g} kW of asset {asset.id} x {capacity_margin:g}"
    return kw, kw * frame.interval_minutes / 60.0, source


class UnitConfig(RuleConfig):
    """A day at about 1000 x (or 1/1000 of) the channel's usual level is a unit or multiplier error.

    ``tolerance``: how far from exactly 1000 the ratio may be (3: 333..3000). The usual
    level is the median of the previous ``history_days`` days (at least ``min_history_days``
    with trusted values); without enough history, a day whose median is above the physical
    limit (channel ``max_kw``, else asset capacity x ``capacity_margin``) and fits it once
    divided by 1000 is a Wh-as-kWh day. ``action``: ``flag`` (SUSPECT), ``estimate``, or
    ``fix`` (divide or multiply by 1000, marked EDITED).
    """

    history_days: int = Field(default=28, ge=1, le=366)
    min_history_days: int = Field(default=3, ge=1)
    tolerance: float = Field(default=3.0, gt=1.0, le=30.0)
    capacity_margin: float = Field(default=1.25, ge=1.0)
    action: Literal["flag", "estimate", "fix"] = "flag"


class UnitRule(Rule):
    """Unit of measure / multiplier: whole days at a factor near 1,000 against the channel.

    Wh values in a kWh column (or kWh in a column read as Wh, MWh read as kWh) make every
    value of the file 1000 times too large or too small. Each day whose median value is
    about 1000 (or 1/1000) times the median of the channel's previous days, or, without
    enough history, whose median is physically impossible but fits the limit once divided
    by 1000, is marked as a whole (every value of the day) with a message saying what to do.
    A day within the physical limit is never called x1000 (a hall ramping up from idle).
    """

    rule_id: ClassVar[str] = "unit"
    title: ClassVar[str] = "Unit of measure / multiplier (factor 1000)"
    order: ClassVar[int] = 30
    Config = UnitConfig
    config: UnitConfig

    def history_days(self) -> int:
        return self.config.history_days

    def check(self, frame: ChannelFrame) -> Finding | None:
        if not is_energy(frame.channel):
            return None
        c = self.config
        rows = np.flatnonzero(frame.target)
        present = frame.present
        vals = frame.values[rows]
        positive = present[rows] & (vals > 0)
        if not positive.any():
            return None
        day_max = np.where(present[rows], vals, -np.inf).max(axis=1)
        before = ~frame.target
        before[: max(0, int(rows[0]) - c.history_days)] = False
        hv = frame.values[before]
        trusted = (hv > 0) & (frame.quality[before] <= Quality.EDITED)  # NaN > 0 is False
        ref = float(np.median(hv[trusted])) if trusted.any(axis=1).sum() >= c.min_history_days else np.nan
        limit = physical_limit(frame, c.capacity_margin)
        lim_kwh = limit[1] if limit is not None else np.nan
        # a day's median lies between its smallest and largest positive value: only days that
        # can reach a band (or the limit) need their median
        t = c.tolerance
        day_min = np.where(positive, vals, np.inf).min(axis=1)
        reach = (day_max >= ref * 1000 / t) | (day_min <= ref * t / 1000) if np.isfinite(ref) else \
            day_max > (lim_kwh if limit is not None else np.inf)
        level = np.full(len(rows), np.nan)
        if reach.any():
            level[reach] = _row_median(np.where(positive[reach], vals[reach], np.nan))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = level / ref
            over = day_max > lim_kwh if limit is not None else np.ones(len(rows), dtype=bool)
            high = np.isfinite(ratio) & (ratio >= 1000 / t) & (ratio <= 1000 * t) & over
            low = np.isfinite(ratio) & (ratio >= 1 / (1000 * t)) & (ratio <= t / 1000)
            if not np.isfinite(ref) and limit is not None:
                high |= (level > lim_kwh) & (day_max / 1000 <= lim_kwh)
        hit = high | low
        if not hit.any():
            return None
        mask = np.zeros(frame.values.shape, dtype=bool)
        mask[rows[hit]] = present[rows[hit]]
        day_detail: dict[int, dict[str, Any]] = {}
        for i in np.flatnonzero(hit).tolist():
            d: dict[str, Any] = {"day_median_kwh": round(float(level[i]), 6)}
            if np.isfinite(ref):
                d.update(history_median_kwh=round(ref, 6), ratio=round(float(ratio[i]), 1))
                basis = f"{float(ratio[i]):,.0f} x the channel's usual level (median {ref:,.4g} kWh)" if high[i] \
                    else f"1/{1 / float(ratio[i]):,.0f} of the channel's usual level (median {ref:,.4g} kWh)"
            else:
                d.update(limit_kwh=round(lim_kwh, 6))
                basis = f"above the physical limit ({limit[2] if limit else ''}: {lim_kwh:,.4g} kWh per interval)"
            if high[i]:
                d["probable"] = "x1000: Wh recorded as kWh"
                hint = ("the file probably holds Wh in a kWh column: set the adapter's unit (unit = \"Wh\") or "
                        "fix the file")
            else:
                d["probable"] = "/1000: kWh recorded as Wh (or MWh as kWh)"
                hint = "the file's unit is probably wrong by 1000: check the adapter's unit and the meter multiplier"
            action = {"flag": "its values stay SUSPECT", "estimate": "its values are estimated",
                      "fix": "its values were divided by 1000 (EDITED)" if high[i] else
                      "its values were multiplied by 1000 (EDITED)"}[c.action]
            d["message"] = (f"the whole day is at {basis}, median {float(level[i]):,.4g} kWh: {hint}, then ingest "
                            f"the file again; {action} until then")
            day_detail[int(rows[i])] = d
        if c.action == "fix":
            factor = np.ones(frame.values.shape[0])
            factor[rows[high]] = 1 / 1000
            factor[rows[low]] = 1000.0
            return Finding(mask, "edit", values=frame.values * factor[:, None], day_detail=day_detail)
        return Finding(mask, c.action, day_detail=day_detail)


def _row_median(a: np.ndarray) -> np.ndarray:
    """Median of the finite values of each row (NaN for a row without any), vectorised."""
    n = np.isfinite(a).sum(axis=1)
    srt = np.sort(a, axis=1)  # NaN last
    lo = np.maximum((n - 1) // 2, 0)
    hi = np.maximum(n // 2, 0)
    idx = np.arange(len(a))
    out = (srt[idx, lo] + srt[idx, hi]) / 2
    out[n == 0] = np.nan
    return out


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
    """Physical limit, and a band from the previous ``history_days`` days: [low pct x low factor, high pct x
    high factor].

    ``physical``: values above the channel's ``max_kw`` (else the asset's ``capacity_kw`` x
    ``capacity_margin``), converted with the interval length, are flagged for every energy
    channel whatever its role; the history band applies to ``roles`` only.
    """

    physical: bool = True
    capacity_margin: float = Field(default=1.25, ge=1.0)
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
    """High/low: above the physical limit of the channel, or outside a percentile band of its history.

    The physical side flags every value above the channel's ``max_kw`` (breaker or CT
    rating), or the asset's capacity with a margin, converted to kWh per interval: a value
    no meter on that point can read, whatever the history says. ``basis = "interval"``
    compares each interval with the percentiles of all usable intervals of the previous
    ``history_days`` days; ``"day"`` compares the day's total
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
        phys = self._physical(frame) if self.config.physical else None
        band = self._band(frame)
        if phys is None:
            return band
        if band is None:
            return phys
        detail = dict(band.day_detail)
        for r, d in phys.day_detail.items():
            detail[r] = {**detail.get(r, {}), **d}
        return Finding(phys.mask | band.mask, self.config.action, day_detail=detail)

    def _physical(self, frame: ChannelFrame) -> Finding | None:
        """Values above the physical limit of the channel (any role with kWh values)."""
        if not is_energy(frame.channel):
            return None
        limit = physical_limit(frame, self.config.capacity_margin)
        if limit is None:
            return None
        kw, kwh, source = limit
        mask = frame.present & frame.target_mask & (frame.values > kwh)
        if not mask.any():
            return None
        n = mask.sum(axis=1)
        top = np.where(mask, frame.values, -np.inf).max(axis=1)
        day_detail: dict[int, dict[str, Any]] = {}
        for r in np.flatnonzero(n).tolist():
            day_detail[r] = {
                "above_limit": int(n[r]), "limit_kw": round(kw, 3), "limit_kwh": round(kwh, 6),
                "highest_kwh": round(float(top[r]), 6),
                "message": (f"{int(n[r])} value(s) above the physical limit ({source}: {kwh:,.4g} kWh per "
                            f"{frame.interval_minutes} min), highest {float(top[r]):,.4g} kWh: check the meter "
                            "multiplier and the file's unit; the values stay SUSPECT"),
            }
        return Finding(mask, self.config.action, day_detail=day_detail)

    def _band(self, frame: ChannelFrame) -> Finding | None:
        """Values outside the percentile band of the channel's previous days."""
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
        if frame.context.availability or frame.context.outages:
            avail = frame.availability()
            out = (np.isfinite(avail) & (avail < c.availability_below)) | frame.outage_mask()
            if c.basis == "day":
                out = np.broadcast_to(out.any(axis=1)[:, None], out.shape)
            excused = low & out
            mask = high | (low & ~out)
            n_excused = excused.sum(axis=1)
        else:  # no availability and no outage known: nothing is excused
            mask = high | low
            n_excused = np.zeros(len(frame.days), dtype=np.int64)
        day_detail: dict[int, dict[str, Any]] = {}
        pos = np.full(len(frame.days), -1, dtype=np.intp)
        pos[rows] = np.arange(len(rows))
        for r in np.flatnonzero(mask.any(axis=1) | n_excused.astype(bool)).tolist():
            i = int(pos[r])  # flagged or excused rows are target rows with a band
            day_detail[r] = {"high": round(float(hi[i]), 4), "low": round(float(lo[i]), 4), "basis": c.basis,
                             "excused": int(n_excused[r])}
        return Finding(mask, c.action, day_detail=day_detail) if mask.any() else None


class SumCheckConfig(RuleConfig):
    """``checks``: check channel -> member channels ("-id" subtracts); tolerances per interval.

    ``registers``: intervals against the register reads of the channel; ``periods``:
    intervals against the channel's period readings (daily, billing-period).
    """

    checks: dict[str, list[str]] = Field(default_factory=dict)
    tolerance_pct: float = Field(default=2.0, ge=0)
    tolerance_kwh: float = Field(default=0.5, ge=0)
    registers: bool = True
    periods: bool = True


class SumCheckRule(Rule):
    """Sum check: channels vs a check meter, intervals vs register reads and vs period readings.

    For each configured check the validated channel takes part in (as check meter or as a
    member), intervals where ``|check - sum(members)|`` exceeds
    ``max(tolerance_kwh, tolerance_pct % of |check|)`` are flagged. With ``registers``,
    each window between two register reads whose interval sum differs from the read
    difference by more than the tolerance is flagged. With ``periods``, each valid period
    reading of the channel (a daily read of a 23, 24 or 25-hour day, a monthly read) whose
    intervals are all there and sum to something else than the reading (beyond the same
    tolerance) has all its intervals flagged, with a message giving both numbers. Runs
    after estimation.
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
                    detail["message"] = (f"{int(bad_w.sum())} window(s) between register reads where the intervals "
                                         "do not add up to the read difference (up to "
                                         f"{detail['max_register_diff_kwh']:,} kWh off): check the meter and the "
                                         "register reads")
        if self.config.periods and frame.context.period_reads is not None:
            mask |= self._periods(frame, day_detail)
        return Finding(mask, "flag", detail=detail, day_detail=day_detail) if mask.any() else None

    def _periods(self, frame: ChannelFrame, day_detail: dict[int, dict[str, Any]]) -> np.ndarray:
        """Intervals of the period readings whose interval sum disagrees with the reading."""
        pr = frame.context.period_reads
        shape = frame.values.shape
        out = np.zeros(shape, dtype=bool)
        if pr is None or not len(pr.starts):
            return out
        step, n = frame.step_s, frame.values.size
        a, b = pr.starts - frame.start_epoch, pr.ends - frame.start_epoch
        rows = np.flatnonzero(frame.target)
        t_lo, t_hi = int(rows[0]) * shape[1], (int(rows[-1]) + 1) * shape[1]
        ok = (a % step == 0) & (b % step == 0) & (a >= 0) & (b <= n * step) & (b > a)
        ok &= (pr.quality == Quality.VALID) | (pr.quality == Quality.EDITED)
        ia, ib = np.where(ok, a // step, 0), np.where(ok, b // step, 0)
        ok &= (ia < t_hi) & (ib > t_lo)
        if not ok.any():
            return out
        flat = frame.values.ravel()
        finite = np.isfinite(flat)
        cum = np.concatenate(([0.0], np.cumsum(np.where(finite, flat, 0.0))))
        gaps = np.concatenate(([0], np.cumsum(~finite)))
        complete = ok & (gaps[ib] - gaps[ia] == 0)
        sums = cum[ib] - cum[ia]
        diff = sums - pr.values
        bad = complete & (np.abs(diff) > self._tol(pr.values))
        if not bad.any():
            return out
        d = np.zeros(n + 1, dtype=np.int32)
        np.add.at(d, ia[bad], 1)
        np.add.at(d, ib[bad], -1)
        out = (np.cumsum(d[:-1]) > 0).reshape(shape)
        for k in np.flatnonzero(bad).tolist():  # one per wrong period reading (days or months: few)
            hours = (int(pr.ends[k]) - int(pr.starts[k])) / 3600
            text = (f"the period reading {_utc(int(pr.starts[k]))}..{_utc(int(pr.ends[k]))} ({hours:g} h) says "
                    f"{float(pr.values[k]):,.6g} kWh, its intervals sum to {float(sums[k]):,.6g} kWh "
                    f"({float(diff[k]):+,.6g} kWh): check the meter, the interval file and the period reads")
            for r in range(int(ia[k]) // shape[1], (int(ib[k]) - 1) // shape[1] + 1):
                if frame.target[r]:
                    dd = day_detail.setdefault(r, {})
                    dd.setdefault("periods", []).append({
                        "start": _utc(int(pr.starts[k])), "end": _utc(int(pr.ends[k])),
                        "reading_kwh": round(float(pr.values[k]), 6), "intervals_kwh": round(float(sums[k]), 6)})
                    dd.setdefault("message", text)
        return out


def _utc(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


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
