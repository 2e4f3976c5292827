"""The interval data behind an invoice line: per channel the run read, each local day's
intervals, energy and quality flags in the line's span, and whether the stored data still
matches the version the run read.

One dense matrix read per (layer, interval length) over the span; days are summed with
``numpy.add.reduceat`` (no per-interval Python loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from kwhub.core.quality import Quality


@dataclass(frozen=True)
class LineDay:
    """One channel's local day inside the line's span."""

    day: date
    intervals: int
    kwh: float
    missing: int
    estimated: int
    suspect: int
    changed: bool = False  # its stored data differs from the version the run read

    @property
    def flags(self) -> str:
        """``M2 E1``: the counts of flagged intervals as text, ``ok`` when none."""
        parts = [f"M{self.missing}" if self.missing else "", f"E{self.estimated}" if self.estimated else "",
                 f"S{self.suspect}" if self.suspect else ""]
        return " ".join(p for p in parts if p) or "ok"


@dataclass(frozen=True)
class LineChannel:
    """A channel the run read: the versions it read, how many of its days changed since, and its days."""

    channel_id: str
    layers: list[str]
    versions: list[int]
    changed_days: int  # stored (UTC) days whose data differs from what the run read
    days: list[LineDay]

    @property
    def kwh(self) -> float:
        return float(sum(d.kwh for d in self.days))


def parse_span(text: str) -> tuple[datetime, datetime]:
    """``start/end`` (ISO 8601 instants, as the explanation gives the span) -> aware UTC datetimes."""
    a, b = (datetime.fromisoformat(x.strip().replace("Z", "+00:00")) for x in text.split("/", 1))
    return (a if a.tzinfo else a.replace(tzinfo=UTC)).astimezone(UTC), (b if b.tzinfo else b.replace(tzinfo=UTC)).astimezone(UTC)


def local_day_bounds(start: datetime, end: datetime, tz: Any) -> list[tuple[date, int, int]]:
    """(local day, first epoch, end epoch) of each local day overlapping [start, end), clipped to it."""
    s0, s1 = int(start.timestamp()), int(end.timestamp())
    d = start.astimezone(tz).date()
    out = []
    while True:
        nxt = d + timedelta(days=1)
        a = int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())
        b = int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp())
        if a >= s1:
            break
        out.append((d, max(a, s0), min(b, s1)))
        d = nxt
    return out


def _utc_day(epoch: int) -> date:
    return datetime.fromtimestamp(epoch, UTC).date()


def line_channels(hub: Any, channels: list[Any], refs: dict[str, dict[str, Any]], span: tuple[datetime, datetime]
                  ) -> list[LineChannel]:
    """Per channel (``channels``: campus channel objects the viewer may read), the line's days.

    ``refs`` is the explanation's ``data.channels``: per channel its layers, versions and
    the channel-days (``rows``: UTC day, layer, version, content hash) the run read.
    """
    from kwhub.core.timeline import Span, zone

    tz = zone(hub.config.hub.timezone)
    days = local_day_bounds(span[0], span[1], tz)
    if not days or not channels:
        return []
    out = []
    for ch in channels:
        ref = refs.get(ch.id, {})
        layer = (ref.get("layers") or ["validated"])[0]
        step = ch.interval_minutes * 60
        s0 = days[0][1] - days[0][1] % step
        s1 = days[-1][2] + (-days[-1][2]) % step
        m = hub.db.intervals.read_matrix([ch.id], Span(datetime.fromtimestamp(s0, UTC), datetime.fromtimestamp(s1, UTC)),
                                         ch.interval_minutes, layer=layer)
        edges = np.array([(a - s0) // step for _, a, _ in days], dtype=np.int64)
        counts = np.diff(np.append(edges, (s1 - s0) // step))
        q = m.quality[0]
        vals = np.nan_to_num(m.values[0], nan=0.0)

        def per_day(x: np.ndarray, edges: np.ndarray = edges) -> np.ndarray:
            return np.add.reduceat(x, edges)

        kwh = per_day(vals)
        miss = per_day((q == Quality.MISSING).astype(np.int64))
        est = per_day(((q == Quality.ESTIMATED) | (q == Quality.EDITED)).astype(np.int64))
        sus = per_day((q == Quality.SUSPECT).astype(np.int64))
        rows = ref.get("rows") or []
        read = {(r["day"], r["layer"]): str(r["content_hash"]) for r in rows}
        changed: set[date] = set()
        if rows:
            first = min(date.fromisoformat(r["day"]) for r in rows)
            last = max(date.fromisoformat(r["day"]) for r in rows)
            now = hub.db.intervals.day_hashes([ch.id], first, last, layer=layer)
            changed = {d for (_cid, d), (_v, h) in now.items() if read.get((d.isoformat(), layer)) not in (None, h)}
        out.append(LineChannel(ch.id, list(ref.get("layers") or [layer]), list(ref.get("versions") or []), len(changed),
                               [LineDay(d, int(counts[i]), float(kwh[i]), int(miss[i]), int(est[i]), int(sus[i]),
                                        bool(changed & {_utc_day(a), _utc_day(b - 1)}))
                                for i, (d, a, b) in enumerate(days)]))
    return out
