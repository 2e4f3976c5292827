"""Run VEE over stored days: read raw + context in bulk, validate, write the validated layer.

:func:`validate_days` is what ingest and the scheduler call after new raw data lands. Per
channel it reads the raw days and the history window with one ``read_blocks`` call per
layer, builds the context (availability of the channel's asset, channels a sum check
needs, register reads, the incoming batch for duplicate checks), runs
:class:`kwhub.core.vee.VeeEngine` and finally writes every validated block and the
``vee_event`` rows in one write transaction. Events of earlier runs for the same
channel-days are replaced (the validated layer keeps its own version history), so the
events always describe the current validated version.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete

from kwhub.core.campus import Campus, Channel
from kwhub.core.intervals import ChannelSeries, DayBlock, day_start_epoch, slots_per_day
from kwhub.core.quality import Quality
from kwhub.core.vee import (
    PeriodReads,
    RegisterReads,
    VeeConfig,
    VeeContext,
    VeeEngine,
    VeeEvent,
    VeeOutcome,
)
from kwhub.core.vee.engine import MAX_FRAME_EXTENSION_DAYS, DenseDays
from kwhub.hub.ingest.vee_write import (
    _EPOCH_ORDINAL,
    _as_days,
    _insert_events,
    _raw_equal_hashes,
    _ValidatedWriter,
)
from kwhub.hub.ingest.worker import IngestWorker
from kwhub.hub.store import Database, WriteReport
from kwhub.hub.store.day_writer import FreshDays


@dataclass
class RuleCounts:
    """What one rule did in a run: interval counts and the channels it touched."""

    flagged: int = 0
    estimated: int = 0
    edited: int = 0
    channels: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {"flagged": self.flagged, "estimated": self.estimated, "edited": self.edited,
                "channels": sorted(self.channels)}


@dataclass
class VeeSummary:
    """Per-rule counts of one VEE run, plus the events and the store's write report."""

    run_label: str
    channel_days: int = 0
    channels: int = 0
    per_rule: dict[str, RuleCounts] = field(default_factory=dict)
    events: list[VeeEvent] = field(default_factory=list)
    write: WriteReport | None = None

    def add(self, events: list[VeeEvent]) -> None:
        for e in events:
            c = self.per_rule.setdefault(e.rule_id, RuleCounts())
            setattr(c, e.action, getattr(c, e.action) + e.count)
            c.channels.add(e.channel_id)
        self.events.extend(events)

    @property
    def total_gaps(self) -> int:
        """Missing intervals found (the gap rule's flagged count)."""
        c = self.per_rule.get("gap")
        return c.flagged if c else 0

    @property
    def total_estimated(self) -> int:
        return sum(c.estimated for c in self.per_rule.values())

    @property
    def total_flagged(self) -> int:
        return sum(c.flagged for c in self.per_rule.values())

    def messages(self, limit: int = 50) -> list[dict[str, Any]]:
        """What rules asked a person to do, one entry per (rule, channel): days affected, first message.

        Rules put a ``message`` in an event's detail when the data needs action (a unit
        error, values above the physical limit, a period reading that does not match).
        """
        grouped: dict[tuple[str, str], dict[str, Any]] = {}
        for e in self.events:
            msg = e.detail.get("message") if isinstance(e.detail, dict) else None
            if not msg:
                continue
            g = grouped.setdefault((e.rule_id, e.channel_id), {
                "rule": e.rule_id, "channel": e.channel_id, "first_day": e.day.isoformat(),
                "last_day": e.day.isoformat(), "days": 0, "intervals": 0, "message": str(msg)})
            g["days"] += 1
            g["intervals"] += int(e.count)
            g["first_day"] = min(g["first_day"], e.day.isoformat())
            g["last_day"] = max(g["last_day"], e.day.isoformat())
        return list(grouped.values())[:limit]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_label": self.run_label,
            "channels": self.channels,
            "channel_days": self.channel_days,
            "total_gaps": self.total_gaps,
            "total_estimated": self.total_estimated,
            "total_flagged": self.total_flagged,
            "rules": {rid: c.as_dict() for rid, c in sorted(self.per_rule.items())},
            "messages": self.messages(),
            "write": self.write.as_dict() if self.write is not None else None,
        }


def _jsonable(value: Any) -> Any:
    if type(value) in (str, int, bool):  # the usual leaves, unchanged
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def new_run_label() -> str:
    """A unique label for a VEE run: ``vee-<UTC time>-<random>``."""
    return f"vee-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


class _Blocks:
    """Reads of one run: validated-else-raw blocks per channel, cached."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.done: dict[str, VeeOutcome] = {}  # validated in this run (blocks made when asked for)

    def best(self, cid: str, first: date, last: date) -> list[DayBlock]:
        """Validated blocks where they exist (this run's first), else raw."""
        store = self.db.intervals
        out = {b.day: b for b in store.read_blocks(cid, first, last, layer="raw")}
        out.update({b.day: b for b in store.read_blocks(cid, first, last, layer="validated")})
        done = self.done.get(cid)
        if done is not None:
            out.update({b.day: b for b in done.validated if first <= b.day <= last})
        return [out[d] for d in sorted(out)]


def _channel(campus: Campus, cid: str, raw: list[DayBlock]) -> Channel:
    try:
        return campus.channel(cid)
    except KeyError:
        minutes = raw[0].interval_minutes if raw else 15
        return Channel(id=cid, interval_minutes=minutes)


_CHUNK_CHANNELS = 32  # channels per bulk read (bounds the memory of one read)
_WORKER_AHEAD = 2  # channels handed to the engine worker ahead of the one being written


class _Dense:
    """Bulk reads of a run: raw and history of many channels in a few ``read_matrix`` calls.

    A channel qualifies when the campus knows it and the store holds it at the channel's
    interval length (or holds nothing); others take the per-channel path. Channels are
    read in chunks, in the order they are validated, and each chunk is dropped once used.
    """

    def __init__(self, db: Database, campus_channels: dict[str, Channel], engine: VeeEngine,
                 plan: list[tuple[str, list[date]]], reads: Mapping[str, VeeContext] | None = None,
                 fresh: Mapping[str, FreshDays] | None = None) -> None:
        self.db = db
        self.chunks: list[list[tuple[str, Channel, date, date]]] = []
        self.chunk_of: dict[str, int] = {}
        self.loaded: dict[str, tuple[date, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self.raw_hashes: dict[str, tuple[np.ndarray, list[str]]] = {}  # per channel: raw days read, their hashes
        # channels whose stored days are exactly the arrays the caller just wrote: no read
        self.fresh: dict[str, tuple[Channel, FreshDays, date, date]] = {}
        fresh = fresh or {}
        for cid, days in plan:
            channel = campus_channels.get(cid)
            f = fresh.get(cid)
            if channel is not None and f is not None and f.interval_minutes == channel.interval_minutes:
                self.fresh[cid] = (channel, f, *engine.frame_span(channel, days, (reads or {}).get(cid)))
                if isinstance(fresh, dict):  # taken over: each channel's arrays go once it is validated
                    del fresh[cid]
        # channels without any validated day stored: their untouched days are first versions
        self.no_validated: set[str] = set()
        stored = self._stored_minutes([cid for cid, _ in plan if cid in campus_channels and cid not in self.fresh])
        current: list[tuple[str, Channel, date, date]] = []
        for cid, days in plan:
            channel = campus_channels.get(cid)
            if channel is None or cid in self.fresh or \
                    stored.get(cid, channel.interval_minutes) != channel.interval_minutes:
                continue
            lo, hi = engine.frame_span(channel, days, (reads or {}).get(cid))
            if current:
                c_lo = min(lo, *(x[2] for x in current))
                c_hi = max(hi, *(x[3] for x in current))
                widest = max((hi - lo).days, *((x[3] - x[2]).days for x in current)) + 1
                if (len(current) >= _CHUNK_CHANNELS or current[0][1].interval_minutes != channel.interval_minutes
                        or (c_hi - c_lo).days + 1 > 2 * widest):
                    self.chunks.append(current)
                    current = []
            current.append((cid, channel, lo, hi))
            self.chunk_of[cid] = len(self.chunks)
        if current:
            self.chunks.append(current)

    def _stored_minutes(self, ids: list[str]) -> dict[str, int]:
        """The interval length each channel is stored with (one per channel across layers);
        the channels without a validated day go to ``no_validated``."""
        from sqlalchemy import bindparam, select

        from kwhub.hub.store.tables import interval_day_table

        t = interval_day_table.c
        stmt = select(t.interval_minutes).where(t.channel_id == bindparam("cid")).limit(1)
        validated = select(t.interval_minutes).where(t.channel_id == bindparam("cid"),
                                                     t.layer == "validated").limit(1)
        out: dict[str, int] = {}
        with self.db.read_connection() as conn:
            for cid in ids:
                v = conn.execute(stmt, {"cid": cid}).scalar()
                if v is not None:
                    out[cid] = int(v)
                if conn.execute(validated, {"cid": cid}).scalar() is None:
                    self.no_validated.add(cid)
        return out

    def get(self, cid: str) -> tuple[Channel, date, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(channel, first day, raw values, raw quality, best values, best quality) or None.

        The arrays are ``(days, slots)`` from the first day on; "best" is the validated
        layer where a day has one, else raw (the history the engine looks at).
        """
        got = self.fresh.pop(cid, None)
        if got is not None:
            return self._fresh(cid, *got)
        k = self.chunk_of.get(cid)
        if k is None:
            return None
        if cid not in self.loaded:
            self._load(k)
        first, rv, rq, bv, bq = self.loaded.pop(cid)
        return self.chunks[k][[x[0] for x in self.chunks[k]].index(cid)][1], first, rv, rq, bv, bq

    def _fresh(self, cid: str, channel: Channel, f: FreshDays, lo: date, hi: date,
               ) -> tuple[Channel, date, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The frame span of a fresh channel from the arrays written (what a read would return)."""
        n_days = (hi - lo).days + 1
        n_slots = f.values.shape[1]
        pos = f.days - (lo.toordinal() - _EPOCH_ORDINAL)
        inside = (pos >= 0) & (pos < n_days)
        at = np.flatnonzero(inside)
        if at.size and int(at[-1]) - int(at[0]) == at.size - 1 and \
                int(pos[at[-1]]) - int(pos[at[0]]) == at.size - 1:  # consecutive days: slices
            a, b, p = int(at[0]), int(at[-1]) + 1, int(pos[at[0]])
            whole = p == 0 and b - a == n_days
            rv = np.empty((n_days, n_slots)) if whole else np.full((n_days, n_slots), np.nan)
            rq = np.empty((n_days, n_slots), dtype=np.uint8) if whole else \
                np.full((n_days, n_slots), Quality.MISSING, dtype=np.uint8)
            rv[p:p + b - a] = f.values[a:b]
            rq[p:p + b - a] = f.quality[a:b]
        else:
            rv = np.full((n_days, n_slots), np.nan)
            rq = np.full((n_days, n_slots), Quality.MISSING, dtype=np.uint8)
            rv[pos[inside]] = f.values[inside]
            rq[pos[inside]] = f.quality[inside]
        self.raw_hashes[cid] = (f.days[inside], f.digest_list(inside))
        return channel, lo, rv, rq, rv, rq

    def _load(self, k: int) -> None:
        from kwhub.core.timeline import Span

        chunk = self.chunks[k]
        ids = [x[0] for x in chunk]
        minutes = chunk[0][1].interval_minutes
        lo, hi = min(x[2] for x in chunk), max(x[3] for x in chunk)
        n_days = (hi - lo).days + 1
        n_slots = slots_per_day(minutes)
        start = datetime(lo.year, lo.month, lo.day, tzinfo=UTC)
        span = Span(start, start + timedelta(days=n_days))
        store = self.db.intervals
        raw = store.read_matrix(ids, span, minutes, layer="raw")
        for cid, dn, digests in raw.day_hashes.channels():
            self.raw_hashes[cid] = (dn, digests)
        val = store.read_matrix(ids, span, minutes, layer="validated")
        shape = (len(ids), n_days, n_slots)
        rv, rq = raw.values.reshape(shape), raw.quality.reshape(shape)
        bv, bq = rv, rq
        if val.day_hashes:
            pos = {c: i for i, c in enumerate(ids)}
            has = np.zeros((len(ids), n_days), dtype=bool)
            lo_no = lo.toordinal() - _EPOCH_ORDINAL
            for c, dn, _ in val.day_hashes.channels():
                has[pos[c], dn - lo_no] = True
            bv = np.where(has[:, :, None], val.values.reshape(shape), rv)
            bq = np.where(has[:, :, None], val.quality.reshape(shape), rq)
        for i, cid in enumerate(ids):
            self.loaded[cid] = (lo, rv[i], rq[i], bv[i], bq[i])


def _stored_reads(db: Database, plan: list[tuple[str, list[date]]],
                  given: Mapping[str, RegisterReads]) -> dict[str, VeeContext]:
    """Per channel: its stored period readings (overlapping its days) and register reads (within
    reach of them), merged with the register reads the caller gave, as a partial context."""
    out: dict[str, VeeContext] = {}
    if not plan:
        return out
    lo = min(days[0] for _, days in plan)
    hi = max(days[-1] for _, days in plan)
    start, end = day_start_epoch(lo), day_start_epoch(hi) + 86_400
    reach = MAX_FRAME_EXTENSION_DAYS * 86_400
    ids = [cid for cid, _ in plan]
    found = db.periods.read(ids, start, end, kind="period") + db.periods.read(ids, start - reach, end + reach,
                                                                              kind="register")
    for ps in found:
        ctx = out.setdefault(ps.channel_id, VeeContext())
        if ps.kind == "period":
            ctx.period_reads = PeriodReads(ps.starts, ps.ends, ps.values, ps.quality)
        else:
            ctx.register_reads = RegisterReads(ps.ends, ps.values)
    for cid, rr in given.items():
        ctx = out.setdefault(cid, VeeContext())
        if ctx.register_reads is None:
            ctx.register_reads = rr
        else:
            ctx.register_reads = RegisterReads(np.concatenate([rr.epochs, ctx.register_reads.epochs]),
                                               np.concatenate([rr.readings, ctx.register_reads.readings]))
    return out


def validate_days(db: Database, campus: Campus, channel_days: Mapping[str, Collection[date]],
                  vee_config: VeeConfig | dict[str, Any] | None = None, run_label: str = "", *,
                  incoming: Mapping[str, list[ChannelSeries]] | None = None,
                  register_reads: Mapping[str, RegisterReads] | None = None,
                  now: datetime | None = None, registry: Any | None = None,
                  fresh: Mapping[str, FreshDays] | None = None,
                  worker: IngestWorker | None = None) -> VeeSummary:
    """Validate the raw layer of ``channel_days`` and store the validated layer and events.

    ``fresh``: per channel, the raw days the caller has just written to a store that held
    no other row of that channel (:class:`~kwhub.hub.store.day_writer.RawDayWriter`); they
    are validated from these arrays instead of being read back (the same result).

    ``vee_config``: a :class:`VeeConfig` or the ``[vee]`` mapping (None: defaults).
    ``incoming``: the batch as received per channel (for the duplicate rule);
    ``register_reads`` per channel (sum check, register spread); ``now`` (default: the
    current time) bounds what counts as a gap. Channels a sum check compares are taken
    from this run's results when validated earlier in it, else from the store.
    ``worker``: an :class:`~kwhub.hub.ingest.worker.IngestWorker` that runs the engine
    for the channels read as dense arrays while this process writes (the same result).
    """
    if registry is None:
        from kwhub.hub.registry import get_registry

        registry = get_registry()
    cfg = vee_config if isinstance(vee_config, VeeConfig) else VeeConfig.from_mapping(vee_config)
    engine = VeeEngine(registry.vee_rules, cfg)
    label = run_label or new_run_label()
    summary = VeeSummary(run_label=label)
    now_epoch = int(now.timestamp()) if now is not None else int(time.time())
    reads = _Blocks(db)
    n_validated = 0
    writer = _ValidatedWriter(db, f"vee:{label}")
    events: list[VeeEvent] = []
    touched: dict[str, list[date]] = {}

    campus_channels: dict[str, Channel] = {}
    for c in campus.channels:
        campus_channels.setdefault(c.id, c)
    avail_of: dict[str, list[str]] = {}
    for c in campus.channels:
        if c.role == "availability" and c.asset:
            avail_of.setdefault(c.asset, []).append(c.id)

    def related_of(cid: str) -> set[str]:
        ch = campus_channels.get(cid)
        return engine.related_channels(ch) if ch is not None else set()

    order = sorted(channel_days, key=lambda c: (len(related_of(c)), c))
    plan = [(cid, days) for cid in order if (days := sorted(set(channel_days[cid])))]
    # the outcomes later channels read (sum-check members, availability): only these are
    # kept for the run; every other channel's validated days go once written
    wanted_later: set[str] = set()
    for cid, _ in plan:
        # (a channel the campus does not know is validated with the default group's rules)
        ch = campus_channels.get(cid) or Channel(id=cid, interval_minutes=15)
        wanted_later |= engine.related_channels(ch)
        if ch.asset and ch.role != "availability":
            wanted_later.update(avail_of.get(ch.asset, []))
    stored_reads = _stored_reads(db, plan, register_reads or {})
    dense = _Dense(db, campus_channels, engine, plan, stored_reads, fresh)
    # with a worker process (see kwhub.hub.ingest.worker) the engine runs there for the
    # channels whose context holds no other channel of this run, a few channels ahead of
    # the writes here; the outcomes are taken in plan order, so the writes are the serial ones
    engine_key = worker.engine(cfg) if worker is not None else 0
    pending: deque[tuple[str, list[date], Channel, np.ndarray, np.ndarray, bool]] = deque()

    def finish(cid: str, days: list[date], channel: Channel, outcome: VeeOutcome, target_v: np.ndarray | None,
               target_q: np.ndarray | None, first_versions: bool) -> None:
        nonlocal n_validated, events
        out = outcome.dense
        if out is None and outcome.validated:  # an engine that returned blocks
            out = _as_days(channel, outcome.validated)
        if cid in wanted_later:
            reads.done[cid] = outcome
        if out is not None and out.days:
            known = None
            if target_v is not None and target_q is not None:
                known = _raw_equal_hashes(cid, days, target_v, target_q, out, dense.raw_hashes)
            writer.put((out, known), first_versions)
            n_validated += len(out.days)
        events += outcome.events
        touched[cid] = days
        summary.channel_days += len(days)

    def drain(keep: int = 0) -> None:
        assert worker is not None
        while len(pending) > keep:
            p_cid, p_days, p_channel, p_v, p_q, p_first = pending.popleft()
            finish(p_cid, p_days, p_channel, worker.result(p_v, p_q), p_v, p_q, p_first)

    try:
        for cid, days in plan:
            first, last = days[0], days[-1]
            # no validated day stored (see validate_days' ``fresh``; or none found in the store)
            first_versions = cid in dense.fresh or cid in dense.no_validated
            got = dense.get(cid)
            own = stored_reads.get(cid) or VeeContext()
            target_v = target_q = None
            if got is not None:
                channel, d0, rv, rq, bv, bq = got
                at = np.array([(d - d0).days for d in days], dtype=np.intp)
                target_v, target_q = rv[at], rq[at]
                history: list[DayBlock] = []
                history_dense = DenseDays(d0, bv, bq)
            else:
                raw_all = db.intervals.read_blocks(cid, first, last, layer="raw")
                channel = _channel(campus, cid, raw_all)
                wanted = set(days)
                raw = {b.day: b for b in raw_all if b.day in wanted}
                n_slots = slots_per_day(channel.interval_minutes)
                blocks = [raw.get(d) or DayBlock(cid, d, channel.interval_minutes, np.full(n_slots, np.nan),
                                                 np.full(n_slots, Quality.MISSING, dtype=np.uint8)) for d in days]
                lo, hi = engine.frame_span(channel, days, own)
                history = [b for b in reads.best(cid, lo, hi) if b.day not in wanted]
                history_dense = None
            asset = None
            availability: list[DayBlock] = []
            others = engine.related_channels(channel)
            if channel.asset:
                try:
                    asset = campus.asset(channel.asset)
                except KeyError:
                    asset = None
                if channel.role != "availability":
                    others = others | set(avail_of.get(channel.asset, []))
            if pending and others & {p[0] for p in pending}:
                drain()  # this channel looks at a channel still in the worker: its outcome first
            if channel.asset and channel.role != "availability":
                for other in avail_of.get(channel.asset, []):
                    availability += reads.best(other, first - timedelta(days=1), last + timedelta(days=1))
            lookback = engine.lookback_days(channel)
            related = {r: reads.best(r, first - timedelta(days=lookback), last + timedelta(days=1))
                       for r in engine.related_channels(channel)}
            ctx = VeeContext(
                history=history, related=related, availability=availability,
                register_reads=own.register_reads, incoming=list((incoming or {}).get(cid, [])),
                asset=asset, now_epoch=now_epoch, history_dense=history_dense, period_reads=own.period_reads,
            )
            # (the target days are set exactly when the channel's dense frame is: history_dense)
            if target_v is not None and target_q is not None and worker is not None:
                worker.submit(engine_key, channel, days, rv, rq, at, ctx)
                pending.append((cid, days, channel, target_v, target_q, first_versions))
                drain(_WORKER_AHEAD)
                continue
            if pending:
                drain()
            if target_v is not None and target_q is not None:
                outcome = engine.validate_dense(channel, days, target_v, target_q, ctx, compact=True)
            else:
                outcome = engine.validate(channel, blocks, ctx)
            finish(cid, days, channel, outcome, target_v, target_q, first_versions)
        if pending:
            drain()
    except BaseException:
        writer.abort()
        raise
    try:
        _finish_run(db, writer, summary, label, events, touched, n_validated)
    except BaseException:
        writer.abort()
        raise
    return summary


def _finish_run(db: Database, writer: _ValidatedWriter, summary: VeeSummary, label: str, events: list[VeeEvent],
                touched: dict[str, list[date]], n_validated: int) -> None:
    """Counts, then the events of the run (replacing earlier runs' for the same days) and the commit."""
    summary.channels = len(touched)
    summary.add(events)

    if n_validated:
        from kwhub.hub.store.tables import VeeEvent as VeeEventRow

        table = VeeEventRow.__table__  # type: ignore[attr-defined]
        created = datetime.now(UTC)
        n = len(events)
        columns: dict[str, list[Any]] = {
            "run_label": [label] * n, "channel_id": [e.channel_id for e in events],
            "day": [e.day for e in events], "rule_id": [e.rule_id for e in events],
            "action": [e.action for e in events], "count": [int(e.count) for e in events],
            "detail": [_jsonable_detail(e.detail) for e in events], "created_at": [created] * n}
        by_days: dict[tuple[date, ...], list[str]] = {}
        for cid, days in touched.items():
            by_days.setdefault(tuple(days), []).append(cid)
        def finish(conn: Any) -> None:
            for days_key, cids in by_days.items():
                days = list(days_key)
                consecutive = (days[-1] - days[0]).days + 1 == len(days)
                for j in range(0, len(cids), 500):
                    in_cids = table.c.channel_id.in_(cids[j:j + 500])
                    if consecutive:
                        conn.execute(delete(table).where(in_cids, table.c.day >= days[0], table.c.day <= days[-1]))
                    else:
                        for i in range(0, len(days), 500):
                            conn.execute(delete(table).where(in_cids, table.c.day.in_(days[i:i + 500])))
            if n:
                _insert_events(conn, table, columns)

        summary.write = writer.finish(finish)


def _jsonable_detail(detail: Any) -> Any:
    """:func:`_jsonable` of an event detail; a dict of plain leaves is returned as is."""
    if type(detail) is dict:
        for k, v in detail.items():
            t = type(v)
            if type(k) is not str or not (t is str or t is int or t is bool or (t is float and v - v == 0.0)):
                return _jsonable(detail)
        return detail
    return _jsonable(detail)


def _related_of(engine: VeeEngine, campus: Campus, cid: str) -> set[str]:
    try:
        return engine.related_channels(campus.channel(cid))
    except KeyError:
        return set()


def read_events(db: Database, first: date | None = None, last: date | None = None,
                channel_id: str | None = None) -> list[dict[str, Any]]:
    """Stored VEE events (as dicts), optionally for a day range and one channel."""
    from sqlalchemy import select

    from kwhub.hub.store.tables import VeeEvent as VeeEventRow

    t = VeeEventRow.__table__  # type: ignore[attr-defined]
    stmt = select(t.c.run_label, t.c.channel_id, t.c.day, t.c.rule_id, t.c.action, t.c.count, t.c.detail)
    if first is not None:
        stmt = stmt.where(t.c.day >= first)
    if last is not None:
        stmt = stmt.where(t.c.day <= last)
    if channel_id:
        stmt = stmt.where(t.c.channel_id == channel_id)
    with db.read_connection() as conn:
        rows = conn.execute(stmt.order_by(t.c.day, t.c.channel_id, t.c.id)).all()
    return [dict(r._mapping) for r in rows]


def report(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per rule: flagged, estimated and edited interval counts, channels and channel-days affected."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        r = out.setdefault(e["rule_id"], {"flagged": 0, "estimated": 0, "edited": 0, "channels": set(),
                                          "channel_days": set()})
        if e["action"] in ("flagged", "estimated", "edited"):
            r[e["action"]] += int(e["count"])
        r["channels"].add(e["channel_id"])
        r["channel_days"].add((e["channel_id"], e["day"]))
    return {rid: {**r, "channels": sorted(r["channels"]), "channel_days": len(r["channel_days"])}
            for rid, r in sorted(out.items())}
