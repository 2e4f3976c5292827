"""File ingest: adapter -> channel check -> raw layer (one transaction) -> VEE.

``ingest_file`` is what ``kwhub ingest`` and the scheduler call for every file. A file is
parsed completely before anything is written, so a bad cell rejects the whole file and
the store is untouched; the raw write is a single transaction; re-ingesting the same data
(again, shuffled, duplicated) changes nothing because the store compares day content.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kwhub.core.adapters import AdapterContext, MeterAdapter
from kwhub.core.campus import Campus, Channel
from kwhub.core.intervals import SECONDS_PER_DAY, IntervalBatch, IntervalDataError

if TYPE_CHECKING:
    from kwhub.hub.registry import Registry

SNIFF_BYTES = 4096


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
    period_readings: list[dict[str, Any]] = field(default_factory=list)
    stale: list[tuple[str, str]] = field(default_factory=list)
    vee: dict[str, Any] | None = None
    vee_note: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def adapter_context(campus: Campus, timezone: str = "UTC", work_dir: Path | None = None) -> AdapterContext:
    """The context a meter adapter needs: the campus channels (for interval lengths)."""
    ctx = AdapterContext(channels={c.id: c for c in campus.channels}, timezone=timezone)
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
    for s in batch.series:
        if len(s) == 0:
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
        out.setdefault(s.channel_id, set()).update(dates)
    return out


def check_channels(campus: Campus, batch: IntervalBatch, allow_new_channels: bool = False) -> list[str]:
    """Every series must belong to a configured channel with the same interval length.

    With ``allow_new_channels`` (ad-hoc ingest under the embedded default configuration)
    unknown channels are added to ``campus`` and their ids returned.
    """
    known = {c.id: c for c in campus.channels}
    created: list[str] = []
    for s in batch.series:
        spec = known.get(s.channel_id)
        if spec is None:
            if not allow_new_channels:
                raise IntervalDataError(
                    f"channel {s.channel_id!r} is not configured (configured: "
                    f"{', '.join(sorted(known)[:8]) or 'none'}{'...' if len(known) > 8 else ''}); add it to "
                    "kwhub.toml, map it in the adapter's channel_map, or pass --channel",
                    source=batch.source, field="channel",
                )
            spec = Channel(id=s.channel_id, interval_minutes=s.interval_minutes, meter=Path(batch.source).name)
            campus.channels.append(spec)
            known[spec.id] = spec
            created.append(spec.id)
        elif spec.interval_minutes != s.interval_minutes:
            raise IntervalDataError(
                f"wrong interval length: file has {s.interval_minutes}-minute intervals, channel "
                f"{s.channel_id!r} is configured for {spec.interval_minutes}",
                source=batch.source, field="interval_minutes",
            )
    return created


def ingest_batch(db: Any, campus: Campus, batch: IntervalBatch, *, adapter_type: str = "",
                 allow_new_channels: bool = False, run_vee: bool = True, vee_config: Any = None,
                 vee_now: datetime | None = None) -> IngestReport:
    """Store an already-parsed batch in the raw layer and validate the touched days.

    ``vee_now`` is the instant up to which missing intervals count as gaps (default: now).
    """
    created = check_channels(campus, batch, allow_new_channels)
    meta = dict(batch.meta)
    periods = list(meta.pop("period_readings", []) or [])
    report = IngestReport(
        source=batch.source,
        adapter=adapter_type or str(meta.get("adapter", "")),
        intervals=len(batch),
        channels=batch.channel_ids(),
        duplicates=int(meta.get("duplicates", 0) or 0),
        created_channels=created,
        period_readings=periods,
        meta=meta,
    )
    if not batch.series:
        return report
    wr = db.intervals.write_series(batch.series, layer="raw", source=batch.source)
    report.new_days = int(wr.new_days)
    report.changed_days = int(wr.changed_days)
    report.unchanged_days = int(wr.unchanged_days)
    report.stale = [(str(c), str(d)) for c, d in getattr(wr, "stale", [])]
    if run_vee:
        report.vee, report.vee_note = _validate(db, campus, channel_days(batch), vee_config, batch.source, vee_now)
    return report


def _validate(db: Any, campus: Campus, days: dict[str, set[date]], vee_config: Any,
              source: str, now: datetime | None = None) -> tuple[dict[str, Any] | None, str]:
    try:
        from kwhub.hub.ingest.vee import validate_days
    except ImportError as exc:  # VEE service not installed in this build
        return None, f"VEE not run: {exc}"
    summary = validate_days(db, campus, days, vee_config=vee_config, run_label=f"ingest {Path(source).name}",
                            now=now)
    as_dict = getattr(summary, "as_dict", None)
    return (as_dict() if callable(as_dict) else dict(summary)), ""


def ingest_file(db: Any, campus: Campus, adapter_instance: MeterAdapter, path: str | Path,
                channel: str | None = None, *, allow_new_channels: bool = False, run_vee: bool = True,
                vee_config: Any = None, vee_now: datetime | None = None) -> IngestReport:
    """Parse ``path`` with ``adapter_instance`` and store it; see the module docstring.

    Raises :class:`~kwhub.core.intervals.IntervalDataError` (naming file, line/element, field) for
    bad input, before anything is written.
    """
    path = Path(path)
    if not path.exists():
        raise IntervalDataError("file not found", source=str(path))
    if "file" not in adapter_instance.capabilities:
        raise IntervalDataError(f"adapter {adapter_instance.type_id} does not read files", source=str(path))
    batch = adapter_instance.read_file(path, channel)
    return ingest_batch(db, campus, batch, adapter_type=adapter_instance.type_id,
                        allow_new_channels=allow_new_channels, run_vee=run_vee, vee_config=vee_config,
                        vee_now=vee_now)
