"""File ingest: adapter -> checks -> raw layer and period readings (one transaction) -> VEE.

``ingest_file`` is what ``kwhub ingest`` and the scheduler call for every file. A bad
cell rejects the whole file and the store is untouched: a small file is parsed completely
before anything is written; a large one (``STREAM_MIN_BYTES``) whose adapter can stream it
(``iter_file``: the CSV adapter's wide files) is parsed chunk by chunk of whole days, every
chunk written in one and the same write transaction, so memory is bounded by the chunk
size; a refused chunk rolls the transaction back and the file is then read whole, which
names the bad cell as usual. VEE takes the days of channels new to the store straight
from the arrays written (no read back). Before writing, every batch, from any adapter, is
checked once more: configured channels with the right interval length, channel ids the store can hold,
finite values, instants inside ``[ingest]`` first_year..last_year. Interval data (raw
layer) and period readings are written in a single transaction; re-ingesting the same
data (again, shuffled, duplicated) changes nothing because the store compares content.
VEE then validates the touched days, and the days that new period readings cover.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kwhub.core.adapters import AdapterContext, MeterAdapter
from kwhub.core.campus import Campus, Channel
from kwhub.core.input_limits import DEFAULT_LIMITS, InputLimits, excerpt, instant_text
from kwhub.core.intervals import (
    MAX_CHANNEL_ID,
    SECONDS_PER_DAY,
    IntervalBatch,
    IntervalDataError,
    epoch_to_day,
)
from kwhub.core.meter_units import apply_channel_units
from kwhub.hub.helpers.gc_pause import collector_paused

if TYPE_CHECKING:
    from kwhub.hub.registry import Registry

SNIFF_BYTES = 4096
_NO_DAYS: frozenset[date] = frozenset()
STREAM_MIN_BYTES = 16 << 20  # files from this size are stored chunk by chunk when the adapter can stream them


@dataclass
class IngestReport:
    """What one file did to the store."""

    source: str
    adapter: str
    intervals: int = 0
    channels: list[str] = field(default_factory=list)
    new_days: int = 0
    changed_days: int = 0
    unchanged_days: int = 0
    duplicates: int = 0
    created_channels: list[str] = field(default_factory=list)
    periods: dict[str, int] = field(default_factory=dict)  # readings, new, changed, unchanged
    period_channels: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the adapter read but did not store, and why
    stale: list[tuple[str, str]] = field(default_factory=list)
    vee: dict[str, Any] | None = None
    vee_note: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def adapter_context(campus: Campus, timezone: str = "UTC", work_dir: Path | None = None,
                    limits: InputLimits = DEFAULT_LIMITS) -> AdapterContext:
    """The context a meter adapter needs: the campus channels (for interval lengths), the limits."""
    ctx = AdapterContext(channels={c.id: c for c in campus.channels}, timezone=timezone, limits=limits)
    if work_dir is not None:
        ctx.work_dir = work_dir
    return ctx


def sniff_adapter(path: Path, registry: Registry | None = None) -> str | None:
    """The ``type_id`` of the meter adapter that claims ``path`` from its first bytes."""
    if registry is None:
        from kwhub.hub.registry import get_registry

        registry = get_registry()
    with Path(path).open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if registry.pm is None:
        return None
    return registry.pm.hook.kwhub_sniff_meter_file(path=Path(path), head=head)


def channel_days(batch: IntervalBatch) -> dict[str, set[date]]:
    """UTC days each channel of the batch touches (vectorised per channel)."""
    out: dict[str, set[date]] = {}
    seen: dict[bytes, list[date]] = {}  # channels of one file usually share their days
    last: tuple[np.ndarray, list[date]] | None = None  # ... and often their instants
    for s in batch.series:
        if len(s) == 0:
            continue
        if last is not None and _same(s.starts, last[0]):
            out.setdefault(s.channel_id, set()).update(last[1])
            continue
        days = s.starts // SECONDS_PER_DAY
        if len(days) > 1 and (days[1:] >= days[:-1]).all():  # the usual sorted series: no sort needed
            days = days[np.r_[True, days[1:] != days[:-1]]]
        else:
            days = np.unique(days)
        key = days.tobytes()
        dates = seen.get(key)
        if dates is None:
            dates = seen[key] = days.astype("datetime64[D]").tolist()
        last = (s.starts, dates)
        out.setdefault(s.channel_id, set()).update(dates)
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """The same instants (the same array, or equal ones)."""
    return a is b or (len(a) == len(b) and bool(np.array_equal(a, b)))


def check_channels(campus: Campus, batch: IntervalBatch, allow_new_channels: bool = False) -> list[str]:
    """Every series must belong to a configured channel with the same interval length.

    With ``allow_new_channels`` (ad-hoc ingest under the embedded default configuration)
    unknown channels are added to ``campus`` and their ids returned. Period readings need
    a configured channel too (any interval length).
    """
    known = {c.id: c for c in campus.channels}
    created: list[str] = []
    for cid, minutes in [*((s.channel_id, s.interval_minutes) for s in batch.series),
                         *((p.channel_id, None) for p in batch.periods)]:
        if len(cid) > MAX_CHANNEL_ID or not cid:
            raise IntervalDataError(f"channel id {excerpt(cid)} is {len(cid)} characters long; a channel id has 1 to "
                                    f"{MAX_CHANNEL_ID}", source=batch.source, field="channel")
        spec = known.get(cid)
        if spec is None:
            if not allow_new_channels:
                raise IntervalDataError(
                    f"channel {excerpt(cid, 80)} is not configured (configured: "
                    f"{', '.join(sorted(known)[:8]) or 'none'}{'...' if len(known) > 8 else ''}); add it to "
                    "kwhub.toml, map it in the adapter's channel_map, or pass --channel",
                    source=batch.source, field="channel",
                )
            spec = Channel(id=cid, interval_minutes=minutes or 15, meter=Path(batch.source).name)
            campus.channels.append(spec)
            known[spec.id] = spec
            created.append(spec.id)
        elif minutes is not None and spec.interval_minutes != minutes:
            raise IntervalDataError(
                f"wrong interval length: file has {minutes}-minute intervals, channel "
                f"{cid!r} is configured for {spec.interval_minutes}",
                source=batch.source, field="interval_minutes",
            )
    return created


def check_values(batch: IntervalBatch, limits: InputLimits = DEFAULT_LIMITS) -> None:
    """Instants inside the accepted range and finite values, for a batch from any adapter.

    The adapters that read files check this with line numbers; this is the same rule once
    more before anything is written (a plugin adapter, a poller), naming channel and instant.
    """
    checked: np.ndarray | None = None  # the last instants found inside (channels of a file share them)
    for s in batch.series:
        if not len(s):
            continue
        out: np.ndarray | None = None
        if checked is None or not _same(s.starts, checked):
            out = limits.outside(s.starts)
            if not out.any():
                checked = s.starts
                out = None
        if out is not None:
            i = int(np.argmax(out))
            raise IntervalDataError(f"interval {instant_text(int(s.starts[i]))} is outside the accepted range "
                                    f"{limits.range_text()}", source=batch.source, where=excerpt(s.channel_id, 80),
                                    field="start")
        if np.isinf(s.values).any():
            i = int(np.argmax(np.isinf(s.values)))
            raise IntervalDataError(f"interval {instant_text(int(s.starts[i]))} has the value {s.values[i]}",
                                    source=batch.source, where=excerpt(s.channel_id, 80), field="value")
    for p in batch.periods:
        if not len(p):
            continue
        out = limits.outside(p.starts) | limits.outside(p.ends - (p.ends > p.starts))
        if out.any():
            i = int(np.argmax(out))
            raise IntervalDataError(f"reading {instant_text(int(p.starts[i]))}..{instant_text(int(p.ends[i]))} is "
                                    f"outside the accepted range {limits.range_text()}", source=batch.source,
                                    where=excerpt(p.channel_id, 80), field="start")


def period_days(batch: IntervalBatch) -> dict[str, set[date]]:
    """UTC days each channel's period readings cover (register readings: the day of the read)."""
    out: dict[str, set[date]] = {}
    for p in batch.periods:
        if not len(p):
            continue
        first = p.starts // SECONDS_PER_DAY
        last = np.maximum(p.ends - 1, p.starts) // SECONDS_PER_DAY
        days: set[int] = set()
        for a, b in zip(first.tolist(), last.tolist(), strict=True):  # periods are few (days, months)
            days.update(range(a, b + 1))
        out.setdefault(p.channel_id, set()).update(epoch_to_day(d * SECONDS_PER_DAY) for d in days)
    return out


def ingest_batch(db: Any, campus: Campus, batch: IntervalBatch, *, adapter_type: str = "",
                 allow_new_channels: bool = False, run_vee: bool = True, vee_config: Any = None,
                 vee_now: datetime | None = None, limits: InputLimits = DEFAULT_LIMITS) -> IngestReport:
    """Store an already-parsed batch (raw layer + period readings, one transaction) and validate.

    ``vee_now`` is the instant up to which missing intervals count as gaps (default: now).
    VEE runs on the days the intervals touch and, for channels with interval data, on the
    days new or restated period readings cover (their sum check).
    """
    check_values(batch, limits)
    # every adapter's values in their channel's unit: one rule (kwhub.core.meter_units), whatever the adapter
    batch = apply_channel_units(batch, {c.id: c.unit for c in campus.channels})
    created = check_channels(campus, batch, allow_new_channels)
    meta: dict[str, Any] = dict(batch.meta)
    meta.pop("period_readings", None)
    notes = [str(n) for n in meta.pop("notes", []) or []]
    report = IngestReport(
        source=batch.source,
        adapter=adapter_type or str(meta.get("adapter", "")),
        intervals=len(batch),
        channels=batch.channel_ids(),
        duplicates=int(meta.get("duplicates", 0) or 0),
        created_channels=created,
        period_channels=sorted({p.channel_id for p in batch.periods if len(p)}),
        notes=notes,
        meta=meta,
    )
    if not batch.series and not batch.n_periods:
        report.notes.insert(0, "the file holds no interval, period or register readings; nothing was stored")
        return report
    from kwhub.hub.store.day_writer import RawDayWriter

    fresh: dict[str, Any] = {}
    with db.write_transaction() as conn:
        if batch.series:
            with RawDayWriter(db, conn, batch.source, keep=run_vee) as writer:
                writer.write(batch.series)
                fresh = writer.fresh()
            _count_days(report, writer.report)
        if batch.n_periods:
            report.periods = db.periods.write(batch.periods, source=batch.source, conn=conn).as_dict()
    if run_vee:
        days = channel_days(batch)
        if report.periods.get("new") or report.periods.get("changed"):
            covered_days = period_days(batch)
            with_data = _with_interval_data(db, list(covered_days))
            for cid, covered in covered_days.items():
                if cid in with_data:
                    days.setdefault(cid, set()).update(covered)
        if days:
            report.vee, report.vee_note = _validate(db, campus, days, vee_config, batch.source, vee_now, fresh)
    return report


def _count_days(report: IngestReport, wr: Any) -> None:
    report.new_days = int(wr.new_days)
    report.changed_days = int(wr.changed_days)
    report.unchanged_days = int(wr.unchanged_days)
    report.stale = [(str(c), str(d)) for c, d in getattr(wr, "stale", [])]


def _ingest_stream(db: Any, campus: Campus, chunks: Iterator[IntervalBatch], source: str, adapter_type: str,
                   run_vee: bool, vee_config: Any, vee_now: datetime | None, limits: InputLimits,
                   worker: Any = None) -> IngestReport | None:
    """Store a file read chunk by chunk, all chunks in one write transaction, then validate.

    None (nothing stored: the transaction is rolled back) when a chunk is refused; the
    caller then reads the file whole, which names the problem as usual.
    """
    from kwhub.hub.store.day_writer import RawDayWriter

    report = IngestReport(source=source, adapter=adapter_type)
    # days touched per channel; channels with the same days share one set
    days: dict[str, frozenset[date]] = {}
    channels: dict[str, None] = {}
    meta: dict[str, Any] = {}
    n = 0
    try:
        with db.write_transaction() as conn, RawDayWriter(db, conn, source, keep=run_vee) as writer:
            for batch in chunks:
                check_values(batch, limits)
                check_channels(campus, batch, allow_new_channels=False)
                n += len(batch)
                # (the sets joined are held with the result, so their ids stay theirs)
                joined: dict[tuple[int, frozenset[date]], tuple[frozenset[date], frozenset[date]]] = {}
                for cid, d in channel_days(batch).items():
                    before = days.get(cid, _NO_DAYS)
                    key = (id(before), frozenset(d))
                    got = joined.get(key)
                    if got is None:
                        got = joined[key] = (before | key[1], before)
                    days[cid] = got[0]
                del joined
                channels.update(dict.fromkeys(batch.channel_ids()))
                meta.update(batch.meta)
                writer.write(batch.series)
            fresh = writer.fresh()
            _count_days(report, writer.report)
    except IntervalDataError:
        return None
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # a refused file: the reader's worker thread stops here
    meta.pop("period_readings", None)
    report.notes = [str(x) for x in meta.pop("notes", []) or []]
    report.intervals = n
    report.channels = list(channels)
    report.duplicates = int(meta.get("duplicates", 0) or 0)
    report.adapter = adapter_type or str(meta.get("adapter", ""))
    report.meta = meta
    if not n:
        return None  # nothing in the file: the whole read says so in its own words
    if run_vee and days:
        report.vee, report.vee_note = _validate(db, campus, days, vee_config, source, vee_now, fresh, worker)
    return report


def _with_interval_data(db: Any, channel_ids: list[str]) -> set[str]:
    """The channels among ``channel_ids`` that have raw interval data (one indexed probe each)."""
    from sqlalchemy import select

    from kwhub.hub.store.tables import interval_day_table

    t = interval_day_table.c
    found: set[str] = set()
    with db.read_connection() as conn:
        for cid in channel_ids:
            if conn.execute(select(t.id).where(t.channel_id == cid, t.layer == "raw").limit(1)).first():
                found.add(cid)
    return found


def _validate(db: Any, campus: Campus, days: Mapping[str, Collection[date]], vee_config: Any,
              source: str, now: datetime | None = None,
              fresh: dict[str, Any] | None = None, worker: Any = None) -> tuple[dict[str, Any] | None, str]:
    try:
        from kwhub.hub.ingest.vee import validate_days
    except ImportError as exc:  # VEE service not installed in this build
        return None, f"VEE not run: {exc}"
    summary = validate_days(db, campus, days, vee_config=vee_config, run_label=f"ingest {Path(source).name}",
                            now=now, fresh=fresh, worker=worker)
    return summary.as_dict(), ""


def ingest_file(db: Any, campus: Campus, adapter_instance: MeterAdapter, path: str | Path,
                channel: str | None = None, *, allow_new_channels: bool = False, run_vee: bool = True,
                vee_config: Any = None, vee_now: datetime | None = None,
                workers: int | None = None) -> IngestReport:
    """Parse ``path`` with ``adapter_instance`` and store it; see the module docstring.

    ``workers``: processes a large streamed file may use (None: ``KWHUB_INGEST_WORKERS``,
    else automatic; 1: this process only); see :mod:`kwhub.hub.ingest.worker`.

    Raises :class:`~kwhub.core.intervals.IntervalDataError` (naming file, line/element, field) for
    bad input, before anything is written.
    """
    path = Path(path)
    if not path.exists():
        raise IntervalDataError("file not found", source=str(path))
    if not path.is_file():
        raise IntervalDataError("not a regular file (a directory, device or pipe); save the data to a file and "
                                "ingest that file", source=str(path))
    if "file" not in adapter_instance.capabilities:
        raise IntervalDataError(f"adapter {adapter_instance.type_id} does not read files", source=str(path))
    stream = getattr(adapter_instance, "iter_file", None)
    if stream is not None and not allow_new_channels and path.stat().st_size >= STREAM_MIN_BYTES:
        chunks = stream(path, channel)
        if chunks is not None:
            from kwhub.hub.ingest.worker import IngestWorker

            with collector_paused():  # (see gc_pause: no collection walks the whole process per batch)
                # the parse (and VEE's engine) in a child forked before the write transaction (see worker)
                worker = IngestWorker.start(db, workers, chunks)
                try:
                    done = _ingest_stream(db, campus, worker.batches() if worker is not None else chunks, str(path),
                                          adapter_instance.type_id, run_vee, vee_config, vee_now,
                                          adapter_instance.context.limits, worker)
                finally:
                    if worker is not None:
                        worker.close()
                        getattr(chunks, "close", lambda: None)()  # (never started here: the child ran it)
            if done is not None:
                return done
    batch = adapter_instance.read_file(path, channel)
    return ingest_batch(db, campus, batch, adapter_type=adapter_instance.type_id,
                        allow_new_channels=allow_new_channels, run_vee=run_vee, vee_config=vee_config,
                        vee_now=vee_now, limits=adapter_instance.context.limits)
