"""A write batch validated and cut into dense (days x slots) arrays per channel.

Series, day blocks or dense arrays become :class:`ChannelDays`; anything the store cannot
hold (an interval off its grid, a quality code that is no :class:`Quality`, an infinite
value, a year outside 1900..8999) rejects the whole batch with an error naming the source,
channel, day and field. :func:`day_hash` and :func:`canonical_rules` give a day its
canonical content and digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from kwhub.core.input_limits import instant_text
from kwhub.core.intervals import (
    SECONDS_PER_DAY,
    ChannelSeries,
    DayBlock,
    IntervalDataError,
    slots_per_day,
)
from kwhub.core.quality import Quality
from kwhub.hub.store.day_sql import EPOCH_DAY, EPOCH_ORDINAL, day_number

MISSING = np.uint8(Quality.MISSING)
MAX_QUALITY = max(int(q) for q in Quality)
STORE_FIRST_EPOCH = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp())
STORE_END_EPOCH = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp())


@dataclass
class ChannelDays:
    """Dense day arrays of one channel: ``days`` are epoch-day numbers, sorted, unique."""

    channel_id: str
    interval_minutes: int
    days: np.ndarray  # int64
    values: np.ndarray  # float64 (n_days, n_slots)
    quality: np.ndarray  # uint8 (n_days, n_slots)
    rule_ids: np.ndarray | None = None  # uint8 (n_days, n_slots)
    rule_names: tuple[str, ...] = ()
    known_hashes: Sequence[str | None] | None = None  # per day: the canonical content's digest, if known



def batch_error(message: str, source: str, channel_id: str, field: str, where: str = "") -> IntervalDataError:
    """An error naming the batch source (or the channel), the channel/day and the field."""
    if source:
        return IntervalDataError(message, source=source, where=where or channel_id, field=field)
    return IntervalDataError(message, source=channel_id, where=where if where != channel_id else "", field=field)



def slots_of(interval_minutes: int, channel_id: str, source: str = "") -> int:
    try:
        return slots_per_day(int(interval_minutes))
    except IntervalDataError as exc:
        raise batch_error(exc.reason, source, channel_id, "interval_minutes") from None



def iso_instant(epoch_s: int) -> str:
    return datetime.fromtimestamp(int(epoch_s), tz=UTC).isoformat()



def day_hash(channel_id: str, day: date, interval_minutes: int, values: np.ndarray,
             quality: np.ndarray, rule_ids: np.ndarray | None, rule_names: Sequence[str]) -> str:
    """The same digest as :meth:`kwhub.core.intervals.DayBlock.content_hash`, without a DayBlock."""
    h = hashlib.sha256(f"{channel_id}|{day.isoformat()}|{interval_minutes}|".encode())
    h.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(quality, dtype=np.uint8).tobytes())
    if rule_ids is not None and rule_ids.any():
        h.update(np.ascontiguousarray(rule_ids, dtype=np.uint8).tobytes())
        h.update("|".join(rule_names).encode())
    return h.hexdigest()



def remap_rule_ids(ids: np.ndarray, names: Sequence[str], target: list[str]) -> np.ndarray:
    """Renumber ``ids`` (1-based into ``names``) into ``target`` (extended in place)."""
    lut = np.zeros(max(len(names), int(ids.max(initial=0))) + 1, dtype=np.uint8)
    for k, name in enumerate(names, start=1):
        if name not in target:
            target.append(name)
            if len(target) > 255:
                raise IntervalDataError("more than 255 distinct rule names in one channel", field="rule_ids")
        lut[k] = target.index(name) + 1
    return lut[ids]



def canonical_rules(rule_ids: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Per day, renumber rule ids to the rules that day uses; returns ids and names per day.

    Only the days that carry any rule id are touched, and the names tuple is built once per
    distinct set of used rules (vectorised; a channel-year has a handful of such sets).
    """
    n_days = rule_ids.shape[0]
    k = len(names)
    per_day: list[tuple[str, ...]] = [()] * n_days
    ruled = np.flatnonzero(rule_ids.any(axis=1))
    if not ruled.size:
        return rule_ids, per_day
    sub = rule_ids[ruled] if ruled.size < n_days else rule_ids
    used = np.zeros((len(ruled), k + 1), dtype=bool)
    for j in np.unique(sub).tolist():
        if j:
            used[:, j] = (sub == j).any(axis=1)
    lut = np.cumsum(used, axis=1).astype(np.uint8)  # old id -> new id (if used)
    lut[:, 0] = 0
    if np.array_equal(lut[:, 1:][used[:, 1:]], np.nonzero(used[:, 1:])[1].astype(np.uint8) + 1):
        new_sub = sub  # every day already uses ids 1..m: nothing to renumber
    else:
        new_sub = np.take_along_axis(lut, sub.astype(np.intp), axis=1).astype(np.uint8)
    if ruled.size < n_days:
        new_ids = rule_ids.copy()
        new_ids[ruled] = new_sub
    else:
        new_ids = new_sub
    packed = np.ascontiguousarray(np.packbits(used, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    tuples = [tuple(names[j - 1] for j in np.flatnonzero(used[i]).tolist()) for i in first.tolist()]
    for i, t in zip(ruled.tolist(), inv.ravel().tolist(), strict=True):
        per_day[i] = tuples[t]
    return new_ids, per_day




@dataclass
class _Layout:
    """Where a series' instants fall in dense day arrays (checked: store years, on the grid).

    Channels read from one file usually share their instants; :meth:`fits` tells whether
    another channel's starts are the same, so the layout is worked out once per batch.
    """

    starts: np.ndarray
    step: int
    day: np.ndarray
    slot: np.ndarray
    increasing: bool
    udays: np.ndarray
    flat: np.ndarray
    whole_days: bool  # every slot of every day, in order (flat is 0, 1, 2, ...)

    def fits(self, starts: np.ndarray, step: int) -> bool:
        return step == self.step and (starts is self.starts or (
            len(starts) == len(self.starts) and bool(np.array_equal(starts, self.starts))))

    @classmethod
    def of(cls, starts: np.ndarray, step: int, interval_minutes: int, n_slots: int, source: str,
           cid: str) -> _Layout:
        bad = (starts < STORE_FIRST_EPOCH) | (starts >= STORE_END_EPOCH)
        if bad.any():
            i = int(np.argmax(bad))
            raise batch_error(f"interval start {instant_text(int(starts[i]))} is outside the years the store holds "
                              "(1900..8999)", source, cid, "start")
        bad = starts % step != 0
        if bad.any():
            i = int(np.argmax(bad))
            raise batch_error(f"interval start {iso_instant(starts[i])} is not on the {interval_minutes}-minute grid",
                              source, cid, "start")
        day = starts // SECONDS_PER_DAY
        slot = (starts - day * SECONDS_PER_DAY) // step
        increasing = len(starts) < 2 or bool((starts[1:] > starts[:-1]).all())
        udays = flat = np.zeros(0, dtype=np.int64)
        if increasing:
            change = np.empty(len(day), dtype=bool)
            change[:1] = True
            np.not_equal(day[1:], day[:-1], out=change[1:])
            udays = day[change]
            flat = (np.cumsum(change) - 1) * n_slots + slot
        whole = (increasing and len(flat) == len(udays) * n_slots
                 and bool(np.array_equal(flat, np.arange(len(flat), dtype=flat.dtype))))
        return cls(starts, step, day, slot, increasing, udays, flat, whole)


def prepare_series(series: Sequence[ChannelSeries], source: str) -> list[ChannelDays]:
    """Group a batch by channel and cut it into dense day arrays (validating everything)."""
    groups: dict[str, list[ChannelSeries]] = {}
    for s in series:
        groups.setdefault(s.channel_id, []).append(s)
    out = []
    layout: _Layout | None = None  # the channels of a wide file share their instants: worked out once
    for cid, parts in groups.items():
        minutes = {int(p.interval_minutes) for p in parts}
        if len(minutes) > 1:
            raise batch_error(f"series of one batch disagree on the interval length: {sorted(minutes)} min",
                         source, cid, "interval_minutes")
        n_slots = slots_of(parts[0].interval_minutes, cid, source)
        interval_minutes = int(parts[0].interval_minutes)
        step = interval_minutes * 60
        starts = np.concatenate([p.starts for p in parts]) if len(parts) > 1 else parts[0].starts
        values = np.concatenate([p.values for p in parts]) if len(parts) > 1 else parts[0].values
        quality = np.concatenate([p.quality for p in parts]) if len(parts) > 1 else parts[0].quality
        has_rules = any(p.rule_ids is not None for p in parts)
        names: list[str] = []
        rules = None
        if has_rules:
            rules = np.concatenate([
                remap_rule_ids(np.asarray(p.rule_ids, dtype=np.uint8), p.rule_names, names)
                if p.rule_ids is not None else np.zeros(len(p), dtype=np.uint8)
                for p in parts
            ])
        if len(starts) == 0:
            continue
        lay = layout if layout is not None and layout.fits(starts, step) else None
        if lay is None:
            lay = layout = _Layout.of(starts, step, interval_minutes, n_slots, source, cid)
        bad = quality > MAX_QUALITY
        if bad.any():
            i = int(np.argmax(bad))
            raise batch_error(f"quality code {int(quality[i])} at {iso_instant(starts[i])} is not a Quality", source, cid, "quality")
        bad = np.isinf(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise batch_error(f"value {values[i]} at {iso_instant(starts[i])} is not finite", source, cid, "value")
        keep = (quality != MISSING) & ~np.isnan(values)
        all_kept = bool(keep.all())
        if lay.increasing:
            # the usual case, strictly increasing starts: no duplicates, days already sorted
            udays, flat = lay.udays, lay.flat
            if all_kept:
                kv, kq, kr = values, quality, rules
            else:
                flat = flat[keep]
                kv, kq = values[keep], quality[keep]
                kr = rules[keep] if rules is not None else None
        else:
            udays, inv = np.unique(lay.day, return_inverse=True)
            flat = (inv * n_slots + lay.slot)[keep]
            # last occurrence wins: first occurrence in the reversed order
            _, first_rev = np.unique(flat[::-1], return_index=True)
            pick = len(flat) - 1 - first_rev
            flat = flat[pick]
            kv, kq = values[keep][pick], quality[keep][pick]
            kr = rules[keep][pick] if rules is not None else None
        n_cells = len(udays) * n_slots
        if lay.whole_days and all_kept:
            # every slot of every day, in order: the arrays are the days as they are
            v2 = np.array(kv, dtype=np.float64).reshape(len(udays), n_slots)
            q2 = np.array(kq, dtype=np.uint8).reshape(len(udays), n_slots)
            r2 = None if kr is None else np.array(kr, dtype=np.uint8).reshape(len(udays), n_slots)
            out.append(ChannelDays(cid, interval_minutes, udays.astype(np.int64), v2, q2, r2, tuple(names)))
            continue
        if len(flat) == n_cells:
            # every slot of every day is given: the cells are a permutation, no fill needed
            v2 = np.empty((len(udays), n_slots))
            q2 = np.empty((len(udays), n_slots), dtype=np.uint8)
        else:
            v2 = np.full((len(udays), n_slots), np.nan)
            q2 = np.full((len(udays), n_slots), MISSING, dtype=np.uint8)
        v2.ravel()[flat] = kv
        q2.ravel()[flat] = kq
        r2 = None
        if kr is not None:
            r2 = np.zeros((len(udays), n_slots), dtype=np.uint8)
            r2.ravel()[flat] = kr
        out.append(ChannelDays(cid, interval_minutes, udays.astype(np.int64), v2, q2, r2, tuple(names)))
    return out



def prepare_blocks(blocks: Sequence[DayBlock], source: str) -> list[ChannelDays]:
    """Stack day blocks per channel (the last block of a (channel, day) wins)."""
    groups: dict[str, list[DayBlock]] = {}
    for b in blocks:
        groups.setdefault(b.channel_id, []).append(b)
    out = []
    for cid, parts in groups.items():
        minutes = {int(b.interval_minutes) for b in parts}
        if len(minutes) > 1:
            raise batch_error(f"blocks of one batch disagree on the interval length: {sorted(minutes)} min", source, cid, "interval_minutes")
        interval_minutes = minutes.pop()
        n_slots = slots_of(interval_minutes, cid, source)
        latest: dict[int, DayBlock] = {}
        for b in parts:
            if len(b.values) != n_slots or len(b.quality) != n_slots or (
                    b.rule_ids is not None and len(b.rule_ids) != n_slots):
                raise batch_error(f"day block {b.day} has {len(b.values)} values, expected {n_slots}", source, cid, "values", where=f"{cid} {b.day}")
            latest[day_number(b.day)] = b
        days = np.array(sorted(latest), dtype=np.int64)
        chosen = [latest[int(d)] for d in days]
        v2 = np.array([b.values for b in chosen], dtype=np.float64).reshape(len(days), n_slots)
        q2 = np.array([b.quality for b in chosen], dtype=np.uint8).reshape(len(days), n_slots)
        r2 = None
        names: list[str] = []
        if any(b.rule_ids is not None for b in chosen):
            r2 = np.stack([
                remap_rule_ids(np.asarray(b.rule_ids, dtype=np.uint8), b.rule_names, names)
                if b.rule_ids is not None else np.zeros(n_slots, dtype=np.uint8)
                for b in chosen
            ])
        out.append(_check_dense(ChannelDays(cid, interval_minutes, days, v2, q2, r2, tuple(names)), source))
    return out



def _check_dense(cd: ChannelDays, source: str) -> ChannelDays:
    """Reject quality codes that are no :class:`Quality` and infinite values (naming the day)."""
    cid, q2, v2 = cd.channel_id, cd.quality, cd.values
    if int(q2.max(initial=0)) > MAX_QUALITY:
        r, c = np.argwhere(q2 > MAX_QUALITY)[0]
        day = date.fromordinal(int(cd.days[r]) + EPOCH_ORDINAL)
        raise batch_error(f"quality code {int(q2[r, c])} in slot {c} is not a Quality", source, cid, "quality", where=f"{cid} {day}")
    # finite sum <=> no inf and no NaN; only a non-finite sum needs the exact test
    if not np.isfinite(np.sum(v2)) and np.isinf(v2).any():
        r, c = np.argwhere(np.isinf(v2))[0]
        day = date.fromordinal(int(cd.days[r]) + EPOCH_ORDINAL)
        raise batch_error(f"value in slot {c} is not finite", source, cid, "value", where=f"{cid} {day}")
    return cd



def _epoch_days(days: Any) -> np.ndarray:
    """Epoch-day numbers (int64) of datetime64 days, epoch-day integers or ``date`` objects."""
    arr = np.asarray(days)
    if arr.dtype.kind == "M":
        return (arr.astype("datetime64[D]") - EPOCH_DAY).astype(np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return np.array([day_number(d) for d in arr.tolist()], dtype=np.int64)



def prepare_dense(channel_id: str, interval_minutes: int, days: Any, values: np.ndarray, quality: np.ndarray,
                   rule_ids: np.ndarray | None, rule_names: Sequence[str], source: str,
                   known_hashes: Sequence[str | None] | None) -> ChannelDays:
    """Validate one channel's dense day arrays (sorted by day; the last row of a day wins)."""
    interval_minutes = int(interval_minutes)
    n_slots = slots_of(interval_minutes, channel_id, source)
    d = _epoch_days(days)
    v2 = np.asarray(values, dtype=np.float64)
    q2 = np.asarray(quality, dtype=np.uint8)
    r2 = None if rule_ids is None else np.asarray(rule_ids, dtype=np.uint8)
    shape = (len(d), n_slots)
    if d.ndim != 1 or v2.shape != shape or q2.shape != shape or (r2 is not None and r2.shape != shape):
        raise batch_error(f"dense days of {channel_id}: values {v2.shape}, quality {q2.shape}"
                     f"{'' if r2 is None else f', rule ids {r2.shape}'} for {len(d)} days, expected {shape}",
                     source, channel_id, "values")
    if known_hashes is not None and len(known_hashes) != len(d):
        raise ValueError(f"{len(known_hashes)} known hashes for {len(d)} days")
    names = list(rule_names)
    if r2 is not None and int(r2.max(initial=0)) > len(names):
        raise batch_error(f"rule id {int(r2.max())} has no rule name ({len(names)} given)", source, channel_id, "rule_ids")
    if len(d) > 1 and not bool((d[1:] > d[:-1]).all()):
        # sort by day, the last row of a day wins
        rev = np.arange(len(d))[::-1]
        _, first_rev = np.unique(d[rev], return_index=True)
        pick = rev[first_rev]
        d, v2, q2 = d[pick], v2[pick], q2[pick]
        r2 = r2[pick] if r2 is not None else None
        known_hashes = [known_hashes[i] for i in pick.tolist()] if known_hashes is not None else None
    if r2 is not None:
        canon: list[str] = []
        r2 = remap_rule_ids(r2, names, canon)  # names the ids use, duplicates merged
        names = canon
        if not r2.any():
            r2, names = None, []
    return _check_dense(ChannelDays(channel_id, interval_minutes, d, v2, q2, r2, tuple(names), known_hashes),
                        source)

