"""Raw interval writes that keep what VEE needs: the dense days of channels new to the store.

:class:`RawDayWriter` writes a batch (or the consecutive batches of one streamed file) to
the raw layer through :class:`~kwhub.hub.store.interval_store.IntervalStore`, in the
caller's transaction, and keeps, for every channel that had no stored row before the
first write, the dense ``(days, slots)`` arrays as written and each day's content hash.
For such a channel those arrays are the whole stored history, so VEE can validate them
without reading the days back (:func:`kwhub.hub.ingest.vee.validate_days` ``fresh=``), and
a validated day equal to its raw day reuses the raw day's hash.

The hashes are computed here, once, the way the store computes them for the canonical
content (a NaN value is MISSING and a MISSING slot NaN, no rule ids), and handed to the
store as the days' known hashes; a channel whose arrays are not in canonical form is
written as usual and not kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from kwhub.core.intervals import ChannelSeries
from kwhub.core.quality import Quality
from kwhub.hub.store.day_batches import prepare_series
from kwhub.hub.store.interval_store import WriteReport
from kwhub.hub.store.tables import interval_day_table

_MISSING = np.uint8(Quality.MISSING)
_IN_CHUNK = 500
#: arrays kept for VEE at most (9 bytes per interval: about 11M intervals); the channels
#: beyond are read back by VEE in bounded chunks, so memory does not grow with the file
FRESH_KEEP_BYTES = 96 << 20


@dataclass
class FreshDays:
    """One channel's days as written to the raw layer (epoch-day numbers ascending)."""

    interval_minutes: int
    days: np.ndarray  # int64 epoch days
    values: np.ndarray  # float64 (days, slots), NaN where MISSING
    quality: np.ndarray  # uint8 (days, slots)
    digests: list[str] = field(default_factory=list)  # content hash per day


def day_digests(channel_id: str, interval_minutes: int, days: np.ndarray, values: np.ndarray,
                quality: np.ndarray) -> list[str]:
    """Content hashes of canonical days without rule ids (what the store computes)."""
    iso = np.datetime_as_string(np.asarray(days, dtype=np.int64).astype("datetime64[D]")).tolist()
    vb = np.ascontiguousarray(values, dtype="<f8").tobytes()
    qb = np.ascontiguousarray(quality, dtype=np.uint8).tobytes()
    n = len(iso)
    rv, rq = (len(vb) // n, len(qb) // n) if n else (0, 0)
    pre, post = f"{channel_id}|", f"|{interval_minutes}|"
    sha = hashlib.sha256
    # one copy of each array, sliced per day (half the time of a bytes object per row)
    return [sha(f"{pre}{d}{post}".encode() + vb[i * rv:i * rv + rv] + qb[i * rq:i * rq + rq]).hexdigest()
            for i, d in enumerate(iso)]


def _canonical(values: np.ndarray, quality: np.ndarray) -> bool:
    return bool((np.isnan(values) == (quality == _MISSING)).all())


class RawDayWriter:
    """Writes raw batches in one transaction and keeps the fresh channels' dense days.

    ``keep``: keep the arrays of fresh channels (False: only write), at most ``keep_bytes``
    of them (default ``FRESH_KEEP_BYTES``; the channels kept last are let go first, VEE
    reads those back). Call :meth:`write`
    per batch (a streamed file's batches hold distinct days of each channel), then
    :meth:`fresh` for the kept arrays.
    """

    def __init__(self, db: Any, conn: Connection, source: str, keep: bool = True,
                 keep_bytes: int | None = None) -> None:
        self.db = db
        self.conn = conn
        self.source = source
        self.keep = keep
        self.keep_bytes = FRESH_KEEP_BYTES if keep_bytes is None else keep_bytes
        self.report = WriteReport()
        self._known: set[str] | None = None  # channels with any stored row before the first write
        self._parts: dict[str, list[FreshDays]] = {}
        self._dropped: set[str] = set()
        self._kept = 0  # bytes of the arrays kept

    def _over_budget(self) -> None:
        """Let go of the channels kept last until the arrays fit ``keep_bytes`` (VEE reads those back)."""
        while self._kept > self.keep_bytes and self._parts:
            cid = next(reversed(self._parts))
            self._kept -= sum(p.values.nbytes + p.quality.nbytes for p in self._parts.pop(cid))
            self._dropped.add(cid)

    def _stored(self, ids: Sequence[str]) -> set[str]:
        t = interval_day_table.c
        found: set[str] = set()
        for i in range(0, len(ids), _IN_CHUNK):
            rows = self.conn.execute(select(t.channel_id).where(t.channel_id.in_(ids[i:i + _IN_CHUNK])).distinct())
            found.update(r[0] for r in rows)
        return found

    def write(self, series: Sequence[ChannelSeries]) -> WriteReport:
        """Write one batch's series to the raw layer (merged with what is stored)."""
        if not series:
            return WriteReport()
        prepared = prepare_series(series, self.source)
        if self._known is None:
            self._known = self._stored(sorted({cd.channel_id for cd in prepared}))
        else:  # channels first seen in a later batch of the same file
            new = sorted({cd.channel_id for cd in prepared} - self._known - set(self._parts) - self._dropped)
            if new:
                self._known |= self._stored(new)
        for cd in prepared:
            cid = cd.channel_id
            if cid in self._known or cid in self._dropped or cd.rule_ids is not None:
                continue
            if not _canonical(cd.values, cd.quality):
                self._dropped.add(cid)
                self._kept -= sum(p.values.nbytes + p.quality.nbytes for p in self._parts.pop(cid, []))
                continue
            digests = day_digests(cid, cd.interval_minutes, cd.days, cd.values, cd.quality)
            cd.known_hashes = digests
            if self.keep:
                self._parts.setdefault(cid, []).append(
                    FreshDays(cd.interval_minutes, cd.days, cd.values, cd.quality, digests))
                self._kept += cd.values.nbytes + cd.quality.nbytes
        self._over_budget()
        report = WriteReport(intervals=int(sum(len(s) for s in series)))
        report = self.db.intervals._commit(prepared, "raw", self.source, merge=True, conn=self.conn, report=report)
        self.report.add(report)
        return report

    def fresh(self) -> dict[str, FreshDays]:
        """Per fresh channel: its days as written (batches joined in day order); the parts are let go."""
        out: dict[str, FreshDays] = {}
        for cid in list(self._parts):
            parts = self._parts.pop(cid)  # each channel's parts go as soon as they are joined
            if cid in self._dropped:
                continue
            if len(parts) == 1:
                out[cid] = parts[0]
                continue
            days = np.concatenate([p.days for p in parts])
            if len(days) > 1 and not bool((days[1:] > days[:-1]).all()):
                continue  # a day written twice (merged in the store): read back instead
            out[cid] = FreshDays(parts[0].interval_minutes, days, np.concatenate([p.values for p in parts]),
                                 np.concatenate([p.quality for p in parts]),
                                 [d for p in parts for d in p.digests])
        self._parts.clear()
        return out
