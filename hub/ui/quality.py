"""Data quality of a period: per channel and local day, how many intervals are missing, estimated, suspect.

Each channel's intervals are read once for the whole period (the same
``intervals.read_series`` the API's readings route uses) and counted per day with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from kwhub.core.quality import Quality


@dataclass(frozen=True)
class DayCounts:
    """One channel-day: intervals expected and how many were missing, estimated (or edited), suspect."""

    expected: int
    missing: int
    estimated: int
    suspect: int

    @property
    def level(self) -> int:
        """0 clean, 1 estimated only, 2 suspect, 3 missing (the worst decides; shown as text too)."""
        return 3 if self.missing else 2 if self.suspect else 1 if self.estimated else 0

    @property
    def text(self) -> str:
        parts = [f"M{self.missing}" if self.missing else "", f"E{self.estimated}" if self.estimated else "",
                 f"S{self.suspect}" if self.suspect else ""]
        return " ".join(p for p in parts if p) or "ok"


def local_days(period: str, tz: Any) -> list[tuple[date, int, int]]:
    """(day, start epoch, end epoch) of each local day of the month ``period``."""
    y, m = (int(x) for x in period.split("-"))
    first = date(y, m, 1)
    nxt = date(y + (m == 12), m % 12 + 1, 1)
    out = []
    d = first
    while d < nxt:
        e = d + timedelta(days=1)
        out.append((d, int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()),
                    int(datetime(e.year, e.month, e.day, tzinfo=tz).timestamp())))
        d = e
    return out


def heatmap(hub: Any, channels: list[Any], period: str, layer: str) -> tuple[list[date], list[tuple[Any, list[DayCounts]]]]:
    """Days of the period and, per channel, the counts of each day."""
    from kwhub.core.timeline import Span, zone

    days = local_days(period, zone(hub.config.hub.timezone))
    bounds = np.array([d[1] for d in days] + [days[-1][2]], dtype=np.int64)
    span = Span(datetime.fromtimestamp(int(bounds[0]), zone("UTC")), datetime.fromtimestamp(int(bounds[-1]), zone("UTC")))
    rows = []
    for ch in channels:
        step = ch.interval_minutes * 60
        expected = np.diff(bounds) // step
        s = hub.db.intervals.read_series(ch.id, span, layer=layer, interval_minutes=ch.interval_minutes)
        idx = np.searchsorted(bounds, s.starts, side="right") - 1
        n = len(days)
        present = np.bincount(idx, minlength=n)[:n]
        q = s.quality
        miss = np.bincount(idx, weights=(q == Quality.MISSING), minlength=n)[:n].astype(int)
        est = np.bincount(idx, weights=(q == Quality.ESTIMATED) | (q == Quality.EDITED), minlength=n)[:n].astype(int)
        sus = np.bincount(idx, weights=(q == Quality.SUSPECT), minlength=n)[:n].astype(int)
        missing = np.maximum(expected - present, 0) + miss
        rows.append((ch, [DayCounts(int(expected[i]), int(missing[i]), int(est[i]), int(sus[i])) for i in range(n)]))
    return [d[0] for d in days], rows
