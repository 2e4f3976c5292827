"""Reading a settlement's data from the store: channels over a span into one kWh matrix.

:func:`load_span` reads the channels at their own interval lengths (layer ``validated``;
``raw`` for channel-days without validated content when the options allow it), regrids
them onto the coarsest interval, converts units to kWh and records every channel-day read
(:class:`~kwhub.hub.settle.inputs.InputTable`). :class:`SpanReader` loads consecutive
spans, the next one on a worker thread while the one before is settled where that pays
(:func:`reads_ahead`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date

import numpy as np
from sqlalchemy import select

from kwhub.core.campus import Campus
from kwhub.core.intervals import IntervalMatrix, day_start_epoch
from kwhub.core.quality import Quality
from kwhub.core.settlement import SettlementError, SettlementOptions, kwh_factor, regrid
from kwhub.core.timeline import BillingPeriod, Span
from kwhub.hub.settle.inputs import InputTable, LoadedSpan, PeriodData, day_no
from kwhub.hub.settle.runs_read import IN_CHUNK
from kwhub.hub.store import Database
from kwhub.hub.store.tables import interval_day_table


def _restated(db: Database, ids: Sequence[str], first: date, last: date, layer: str) -> dict[tuple[str, date], tuple[int, str]]:
    """``{(channel, day): (version, hash)}`` of the current versions of channels that have a
    version above 1 between ``first`` and ``last``; every other day read is at version 1.

    The candidates come from the (channel, day, layer, version) unique index alone (no
    table rows), so this costs little next to reading the values.
    """
    t = interval_day_table.c
    chans: set[str] = set()
    lo, hi = last, first
    with db.read_connection() as conn:
        for i in range(0, len(ids), IN_CHUNK):
            q = select(t.channel_id, t.day).where(
                t.channel_id.in_(list(ids[i:i + IN_CHUNK])), t.day >= first, t.day <= last, t.layer == layer,
                t.version > 1)
            for ch, d in conn.execute(q):
                chans.add(ch)
                lo, hi = min(lo, d), max(hi, d)
    if not chans:
        return {}
    return db.intervals.day_hashes(sorted(chans), lo, hi, layer=layer)


def _day_slices(span: Span, minutes: int) -> dict[date, slice]:
    """Matrix column slice of each UTC day the span touches."""
    step = minutes * 60
    s0, s1 = span.start_epoch, span.end_epoch
    out = {}
    for d in span.utc_days():
        a = max(s0, day_start_epoch(d))
        b = min(s1, day_start_epoch(d) + 86_400)
        out[d] = slice((a - s0) // step, (b - s0) // step)
    return out


def _layer_days(db: Database, ids: Sequence[str], span: Span, m: IntervalMatrix, layer: str,
                wanted: set[tuple[str, date]] | None = None) -> tuple[str, dict[tuple[str, date], str], dict[tuple[str, date], int]]:
    """``(layer, {(channel, day): hash}, {(channel, day): version}`` of the channel-days ``m``
    read (versions only where not 1; see :func:`_restated`).

    The versions of channels the read saw at version 1 on every day
    (:meth:`~kwhub.core.intervals.DayHashes.restated_channels`) are 1; the current versions of
    the others are looked up after the read, and a day whose current content differs from
    what was read was restated while it was read: the read is refused.
    """
    found = m.day_hashes if wanted is None else {k: h for k, h in m.day_hashes.items() if k in wanted}
    versions: dict[tuple[str, date], int] = {}
    # channels the read saw at version 1 on every day: their versions are known from the read
    # itself (one snapshot); the others' current versions are looked up and compared
    restated = m.day_hashes.restated_channels()
    candidates = ids if restated is None else [c for c in ids if c in restated]
    if found and candidates:
        days = span.utc_days()
        for k, (ver, h) in _restated(db, candidates, days[0], days[-1], layer).items():
            seen = found.get(k)
            if seen is None:
                continue
            if seen != h:
                raise SettlementError(f"channel {k[0]} day {k[1]}: data changed while it was read; settle again")
            if ver != 1:
                versions[k] = ver
    return layer, found, versions


def _read_group(db: Database, ids: list[str], span: Span, minutes: int, options: SettlementOptions,
                parts: list[tuple[str, dict[tuple[str, date], str], dict[tuple[str, date], int]]]
                ) -> tuple[np.ndarray, np.ndarray]:
    m = db.intervals.read_matrix(ids, span, minutes, layer=options.layer)
    parts.append(_layer_days(db, ids, span, m, options.layer))
    values = m.values
    quality = m.quality
    if options.fallback_raw:
        days = span.utc_days()
        day_nos = np.array([day_no(d) for d in days], dtype=np.int64)
        have = m.day_hashes.has_days(ids, day_nos)
        gaps = [(ids[i], days[j]) for i, j in np.argwhere(~have).tolist()]
        if gaps:
            raw_ids = sorted({ch for ch, _ in gaps})
            raw = db.intervals.read_matrix(raw_ids, span, minutes, layer="raw")
            wanted = {g for g in gaps if g in raw.day_hashes}
            parts.append(_layer_days(db, raw_ids, span, raw, "raw", wanted))
            slices = _day_slices(span, minutes)
            values = values.copy()
            quality = quality.copy()
            row = {c: i for i, c in enumerate(ids)}
            raw_row = {c: i for i, c in enumerate(raw_ids)}
            for ch, d in sorted(wanted):
                sl = slices[d]
                values[row[ch], sl] = raw.values[raw_row[ch], sl]
                quality[row[ch], sl] = raw.quality[raw_row[ch], sl]
    return values, quality


def load_span(db: Database, campus: Campus, span: Span, channel_ids: Sequence[str],
              options: SettlementOptions) -> LoadedSpan:
    """Read ``channel_ids`` over ``span`` into one matrix of kWh at the coarsest interval.

    Channels are read at their own interval length; finer channels are summed (energy)
    or averaged (availability) onto the settlement grid; Wh/MWh/kW/MW become kWh.
    """
    chans = {c.id: c for c in campus.channels}
    unknown = [c for c in channel_ids if c not in chans]
    if unknown:
        raise SettlementError(f"unknown channel(s): {', '.join(unknown)}")
    ids = list(dict.fromkeys(channel_ids))
    minutes = max(chans[c].interval_minutes for c in ids)
    n = span.n_intervals(minutes)
    by_len: dict[int, list[str]] = {}
    for c in ids:
        by_len.setdefault(chans[c].interval_minutes, []).append(c)
    parts: list[tuple[str, dict[tuple[str, date], str], dict[tuple[str, date], int]]] = []
    values: np.ndarray | None = None
    quality: np.ndarray | None = None
    row = {c: i for i, c in enumerate(ids)}
    for length, group in sorted(by_len.items()):
        if minutes % length:
            raise SettlementError(f"channels of {length} and {minutes} minutes cannot share a settlement grid")
        vals, qual = _read_group(db, group, span, length, options, parts)
        factor = minutes // length
        fractions = [i for i, c in enumerate(group) if chans[c].role == "availability" or chans[c].unit == "fraction"]
        scale = np.array([kwh_factor(chans[c], length) for c in group])
        summed = regrid(vals * scale[:, None] if (scale != 1.0).any() else vals, factor, "sum")
        if fractions:
            summed[fractions] = regrid(vals[fractions], factor, "mean")
        worst = qual if factor == 1 else qual.reshape(qual.shape[0], -1, factor).max(axis=2)
        if len(by_len) == 1:
            values = summed if summed.flags.c_contiguous else np.ascontiguousarray(summed)
            quality = worst
        else:
            if values is None:
                values = np.full((len(ids), n), np.nan)
                quality = np.full((len(ids), n), Quality.MISSING, dtype=np.uint8)
            assert quality is not None
            values[[row[c] for c in group]] = summed
            quality[[row[c] for c in group]] = worst
    assert values is not None and quality is not None
    return LoadedSpan(span, ids, minutes, values, quality, InputTable(ids, parts))


def load_period(db: Database, campus: Campus, period: BillingPeriod, channel_ids: Sequence[str],
                options: SettlementOptions) -> PeriodData:
    """Read ``channel_ids`` over ``period`` (see :func:`load_span`)."""
    return load_span(db, campus, period.span, channel_ids, options).period(period)


# Stores on which reading the next span on a worker thread while the runs of the one before
# are priced pays. PostgreSQL: the server does the reading in its own process and the driver
# waits on the socket without the interpreter lock. Not SQLite: its reader takes the lock
# back after every step (a row per channel) and around every numpy copy of it, so it and the
# pure-Python pricing on the main thread hand the lock to each other thousands of times a
# span; on the campus-year bench (2 cores, 20 tenants, quiet machine) reading in turn took
# 1.21-1.23 s against 1.38-1.71 s, and less CPU time on a loaded one (median 1.37 s against
# 1.49 s, 12 runs each).
READ_AHEAD_DIALECTS: frozenset[str] = frozenset({"postgresql"})


def reads_ahead(db: Database) -> bool:
    """Whether :class:`SpanReader` reads the next span on a worker thread on ``db`` by default
    (see ``READ_AHEAD_DIALECTS``)."""
    return db.dialect in READ_AHEAD_DIALECTS


class SpanReader:
    """The spans of ``chunks`` loaded in order (:func:`load_span`), each on a worker thread
    started when the one before is handed out (``ahead``), else when asked for. On the worker,
    what the runs of its periods share is prepared too (:meth:`LoadedSpan.prepare`; with
    ``timezone``, the periods' local calendars in that zone)."""

    def __init__(self, db: Database, campus: Campus, channels: list[str], options: SettlementOptions,
                 chunks: Sequence[Sequence[BillingPeriod]], ahead: bool, timezone: str | None = None) -> None:
        self.args = (db, campus)
        self.channels, self.options = channels, options
        self.spans = [Span(c[0].span.start, c[-1].span.end) for c in chunks]
        self.chunks = [list(c) for c in chunks]
        self.timezone = timezone
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kwhub-read") if ahead and len(chunks) > 1 else None
        self.pending: Future[LoadedSpan] | None = None
        self.i = 0

    def __enter__(self) -> SpanReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            if self.pending is not None:
                self.pending.cancel()
            self.pool.shutdown(wait=True)

    def _load(self, i: int) -> LoadedSpan:
        loaded = load_span(*self.args, self.spans[i], self.channels, self.options)
        if len(self.chunks[i]) > 0 and self.pool is not None:  # on the worker: statistics of its periods too
            loaded.prepare(self.chunks[i], self.timezone)
        return loaded

    def next(self) -> LoadedSpan:
        """The next span's data (raises what :func:`load_span` raised for it)."""
        i = self.i
        self.i += 1
        if self.pool is None:
            return self._load(i)
        current = self.pending if self.pending is not None else self.pool.submit(self._load, i)
        self.pending = self.pool.submit(self._load, self.i) if self.i < len(self.spans) else None
        return current.result()


def period_chunks(pers: Sequence[BillingPeriod], n_channels: int, minutes: int,
                   max_cells: int) -> list[list[BillingPeriod]]:
    """Runs of consecutive periods (each starts where the previous ends) of at most ``max_cells``."""
    out: list[list[BillingPeriod]] = []
    cells = 0
    for p in pers:
        n = n_channels * p.span.n_intervals(minutes)
        if out and out[-1][-1].span.end == p.span.start and cells + n <= max_cells:
            out[-1].append(p)
            cells += n
        else:
            out.append([p])
            cells = n
    return out
