"""Estimation methods for missing or rejected intervals (vectorised numpy, no I/O).

* **Linear interpolation** for short gaps: between the known neighbours on both sides;
  flat fill (the one known neighbour's value) when only one side is known.
* **Historical profile / proxy day** for long gaps: the mean of the same slot over the
  previous ``N`` days (the same weekday only, when asked), scaled so that the known
  intervals next to the gap match the profile there.
* **Register-difference spread**: when two cumulative register reads bracket the gap, the
  energy the intervals are missing (read difference minus the known intervals) is
  distributed across the gap in proportion to a profile; the parts sum to the difference.

Arrays are flat (a channel's days laid end to end) so that gaps across midnight are one
gap. Loops run over gaps and read windows, never over intervals.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

LINEAR = 1
FLAT = 2
PROXY_DAY = 3
REGISTER_SPREAD = 4
LINEAR_FALLBACK = 5
METHOD_NAMES: dict[int, str] = {
    LINEAR: "linear", FLAT: "flat", PROXY_DAY: "proxy_day",
    REGISTER_SPREAD: "register_spread", LINEAR_FALLBACK: "linear_long",
}


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a 1-D bool array."""
    m = np.asarray(mask, dtype=np.int8).ravel()
    d = np.diff(np.concatenate(([0], m, [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def run_indices(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """All indices covered by the runs ``[starts[i], ends[i])``, concatenated (vectorised)."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def linear_fill(values: np.ndarray, anchors: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Values at ``targets`` interpolated linearly between the nearest ``anchors``.

    Beyond the first/last anchor the nearest anchor's value is repeated (flat fill).
    ``anchors`` is a bool mask of the known positions (at least one must be True).
    """
    known = np.flatnonzero(anchors)
    if known.size == 0:
        raise ValueError("linear interpolation needs at least one known value")
    return np.interp(targets, known, values[known])


def spread(total: float, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` in proportion to ``weights`` (flat when they sum to zero).

    The last share takes the rounding remainder, so the parts sum to ``total``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return w.copy()
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    s = w.sum()
    shares = np.full(w.size, total / w.size) if s <= 0 else total * (w / s)
    if w.size > 1:
        shares[-1] = total - math.fsum(shares[:-1])
    return shares


def proxy_profiles(values: np.ndarray, usable: np.ndarray, rows: np.ndarray, *, days: int,
                   same_weekday: bool = True, min_days: int = 1) -> np.ndarray:
    """Per row in ``rows``: the mean of each slot over the previous ``days`` rows.

    ``values``/``usable`` are ``(days, slots)``. With ``same_weekday`` only rows 7, 14, ...
    back count; a slot without enough same-weekday values falls back to all previous
    days. A slot with fewer than ``min_days`` usable values is NaN. Other rows are NaN.
    """
    out = np.full(values.shape, np.nan)
    masked = np.where(usable, values, np.nan)
    for r in np.asarray(rows, dtype=np.int64):
        lo = max(0, int(r) - days)
        cand = np.arange(lo, int(r))
        if cand.size == 0:
            continue
        m_all = _mean_min(masked[cand], min_days)
        if same_weekday:
            wk = cand[(int(r) - cand) % 7 == 0]
            m_wk = _mean_min(masked[wk], min_days) if wk.size else np.full(values.shape[1], np.nan)
            out[r] = np.where(np.isfinite(m_wk), m_wk, m_all)
        else:
            out[r] = m_all
    return out


def _mean_min(block: np.ndarray, min_days: int) -> np.ndarray:
    count = np.isfinite(block).sum(axis=0)
    total = np.nansum(block, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    mean[count < min_days] = np.nan
    return mean


def proxy_fill(values: np.ndarray, anchors: np.ndarray, profile: np.ndarray, start: int, end: int, *,
               scale_to_neighbours: bool = True, window: int = 4) -> np.ndarray | None:
    """Profile values for the gap ``[start, end)``, scaled to the known neighbours.

    The scale is (sum of known values)/(sum of profile) over up to ``window`` anchored
    slots on each side; 1 when there are none or the profile there sums to zero. Returns
    None when the profile does not cover the whole gap.
    """
    p = profile[start:end]
    if not np.isfinite(p).all():
        return None
    scale = 1.0
    if scale_to_neighbours:
        lo, hi = max(0, start - window), min(len(values), end + window)
        nb = np.zeros(len(values), dtype=bool)
        nb[lo:start] = True
        nb[end:hi] = True
        nb &= anchors & np.isfinite(profile)
        denom = profile[nb].sum()
        if nb.any() and denom > 0:
            scale = float(values[nb].sum() / denom)
    return p * scale


def register_spread(values: np.ndarray, mask: np.ndarray, anchors: np.ndarray, profile: np.ndarray,
                    register_idx: np.ndarray, register_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill masked slots lying between two register reads by spreading the read difference.

    ``register_idx`` are flat boundary indices (a read at boundary ``i`` is the cumulative
    energy up to the start of slot ``i``). For each window between consecutive reads that
    contains masked slots and no other unknown value, the missing energy is the read
    difference minus the known intervals; it is spread over the masked slots in
    proportion to ``profile`` (else to a linear interpolation, else flat). Windows whose
    known intervals already exceed the difference are left alone. Returns the filled
    values and a bool mask of what was filled.
    """
    out = values.copy()
    done = np.zeros(len(values), dtype=bool)
    if len(register_idx) < 2:
        return out, done
    cum_mask = np.concatenate(([0], np.cumsum(mask)))
    has_gap = cum_mask[register_idx[1:]] - cum_mask[register_idx[:-1]] > 0
    for k in np.flatnonzero(has_gap & (register_idx[1:] > register_idx[:-1])):
        a, b = int(register_idx[k]), int(register_idx[k + 1])
        gap = mask[a:b]
        known = values[a:b][~gap]
        if not np.isfinite(known).all():
            continue
        diff = float(register_val[k + 1] - register_val[k])
        delta = diff - math.fsum(known)
        if delta < -1e-9 * max(1.0, abs(diff)):
            continue
        w = profile[a:b][gap]
        if not (np.isfinite(w).all() and w.sum() > 0):
            w = linear_fill(values, anchors, np.flatnonzero(gap) + a) if anchors.any() else np.ones(int(gap.sum()))
        seg = out[a:b]
        seg[gap] = spread(max(delta, 0.0), w)
        done[a:b] |= gap
    return out, done


def estimate(values: np.ndarray, anchors: np.ndarray, mask: np.ndarray, profile: np.ndarray, *,
             max_linear_gap: int = 4, scale_to_neighbours: bool = True, scale_window: int = 4,
             long_gap_fallback: Literal["linear", "none"] = "linear",
             register_idx: np.ndarray | None = None, register_val: np.ndarray | None = None,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Estimate every masked slot of a flat series.

    Order: register-difference spread (where reads bracket the gap), linear interpolation
    for runs of at most ``max_linear_gap`` slots (flat at an edge), proxy day for longer
    runs, then ``long_gap_fallback``. Returns (values with estimates, method per slot;
    0 = not estimated, else a key of :data:`METHOD_NAMES`).
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    anchors = np.asarray(anchors, dtype=bool) & ~mask & np.isfinite(values)
    out = values.copy()
    method = np.zeros(len(values), dtype=np.int8)
    if register_idx is not None and register_val is not None and len(register_idx) >= 2:
        out, done = register_spread(values, mask, anchors, profile, register_idx, register_val)
        method[done] = REGISTER_SPREAD
        anchors = anchors | done
    remaining = mask & (method == 0)
    if not remaining.any():
        return out, method
    starts, ends = runs(remaining)
    lengths = ends - starts
    known = np.flatnonzero(anchors)
    short = lengths <= max_linear_gap
    if known.size:
        idx = run_indices(starts[short], ends[short])
        if idx.size:
            out[idx] = np.interp(idx, known, out[known])
            both = (known[0] < starts[short]) & (known[-1] >= ends[short])
            method[idx] = np.repeat(np.where(both, LINEAR, FLAT), lengths[short]).astype(np.int8)
    for s, e in zip(starts[~short], ends[~short], strict=True):
        p = proxy_fill(out, anchors, profile, int(s), int(e), scale_to_neighbours=scale_to_neighbours,
                       window=scale_window)
        if p is not None:
            out[s:e] = p
            method[s:e] = PROXY_DAY
        elif long_gap_fallback == "linear" and known.size:
            idx = np.arange(s, e)
            out[s:e] = np.interp(idx, known, out[known])
            method[s:e] = LINEAR_FALLBACK if (known[0] < s and known[-1] >= e) else FLAT
    return out, method
