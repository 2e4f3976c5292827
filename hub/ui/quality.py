"""Data quality of a period: per channel and local day, how many intervals are missing, estimated, suspect.

The period is read as one dense matrix per interval length (``intervals.read_matrix``,
absent intervals marked missing) and counted per local day with ``numpy.add.reduceat``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import numpy as np
from markupsafe import Markup, escape

from kwhub.core.quality import Quality


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


def heatmap(hub: Any, channels: list[Any], period: str, layer: str
            ) -> tuple[list[date], list[tuple[Any, list[tuple[int, int, int]]]]]:
    """Days of the period and, per channel, each day's (missing, estimated or edited, suspect) counts
    (one matrix read per interval length; counted with numpy, no per-interval Python)."""
    from kwhub.core.timeline import Span, zone

    days = local_days(period, zone(hub.config.hub.timezone))
    bounds = np.array([d[1] for d in days] + [days[-1][2]], dtype=np.int64)
    utc = zone("UTC")
    span = Span(datetime.fromtimestamp(int(bounds[0]), utc), datetime.fromtimestamp(int(bounds[-1]), utc))
    by_minutes: dict[int, list[Any]] = {}
    for ch in channels:
        by_minutes.setdefault(ch.interval_minutes, []).append(ch)
    counts: dict[str, list[tuple[int, int, int]]] = {}
    for minutes, group in by_minutes.items():
        step = minutes * 60
        m = hub.db.intervals.read_matrix([c.id for c in group], span, minutes, layer=layer)
        edges = (bounds[:-1] - bounds[0]) // step

        def per_day(mask: np.ndarray, edges: np.ndarray = edges) -> list[list[int]]:
            return np.add.reduceat(mask.astype(np.int32), edges, axis=1).tolist()  # type: ignore[no-any-return]

        q = m.quality
        miss = per_day(q == Quality.MISSING)
        est = per_day((q == Quality.ESTIMATED) | (q == Quality.EDITED))
        sus = per_day(q == Quality.SUSPECT)
        for i, ch in enumerate(group):
            counts[ch.id] = list(zip(miss[i], est[i], sus[i], strict=True))
    return [d[0] for d in days], [(ch, counts[ch.id]) for ch in channels]


def cell_text(missing: int, estimated: int, suspect: int) -> tuple[int, str]:
    """A cell's level (0 clean, 1 estimated only, 2 suspect, 3 missing: the worst decides the shade)
    and its text (the same meaning in words: ``M3 E1``, or ``ok``)."""
    level = 3 if missing else 2 if suspect else 1 if estimated else 0
    if not level:
        return 0, "ok"
    parts = [f"M{missing}" if missing else "", f"E{estimated}" if estimated else "", f"S{suspect}" if suspect else ""]
    return level, " ".join(p for p in parts if p)


def cells_html(channel_id: str, days: list[date], cells: list[tuple[int, int, int]], layer: str) -> Markup:
    """One heatmap row's cells as HTML (built here: a month of cells per channel is too many for the template)."""
    base = escape(f"/ui/quality/{quote(channel_id, safe='.-_~')}/")
    lay = escape(quote(layer))
    out = []
    for d, (m, e, s) in zip(days, cells, strict=True):
        level, text = (0, "ok") if not (m or e or s) else cell_text(m, e, s)
        out.append(f'<td class="cell q{level}"><a href="{base}{d.isoformat()}?layer={lay}">{text}</a></td>')
    return Markup("".join(out))
