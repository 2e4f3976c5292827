"""Write simulated campus data as meter files: kwhub CSV (long/wide) and Green Button XML.

CSV layouts (the ``kwhub`` profile of the CSV meter adapter reads exactly these):

* ``long``: one file per channel, ``<channel_id>.csv``, header
  ``channel_id,interval_start,interval_minutes,<unit>``; ``interval_start`` is UTC ISO 8601
  (``2026-10-01T04:00:00Z``); one row per interval; gap intervals are simply absent. The
  value column is named by the channel's own unit (``kwh``, ``mmbtu`` for fuel,
  ``fraction`` for availability), which the adapter checks against the channel's unit.
* ``wide``: one file ``campus_wide.csv``, header ``interval_start,<channel ids...>``, one
  row per interval of the simulated span, empty cells for gaps; each value in its channel's unit.

When the result's fault spec asks for a duplicate file, a byte-identical copy of one file is
written as ``<name>_dup.csv``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from kwhub.core.timeline import zone
from kwhub.hub.demo.simulator.campus import SimResult

LONG_HEADER = "channel_id,interval_start,interval_minutes,kwh"  # an energy channel's; others name their unit
WIDE_NAME = "campus_wide.csv"
ESPI_NS = "http://naesb.org/espi"
ATOM_NS = "http://www.w3.org/2005/Atom"
ESPI_BASE = "https://kwhub.example/DataCustodian/espi/1_1/resource"


def iso_utc(starts: np.ndarray) -> np.ndarray:
    """UTC epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` strings (vectorised)."""
    s = np.datetime_as_string(np.asarray(starts, dtype=np.int64).astype("datetime64[s]"), unit="s")
    return np.char.add(s, "Z")


def _fmt(values: np.ndarray) -> np.ndarray:
    """Shortest round-tripping decimal text of each float."""
    return np.asarray(values, dtype=np.float64).astype(str)


def _join_rows(columns: Sequence[np.ndarray]) -> str:
    row = columns[0].astype(object)
    for col in columns[1:]:
        row = row + "," + col.astype(object)
    return "\n".join(row.tolist()) + "\n"


def write_csv(result: SimResult, out_dir: Path | str, layout: str = "long",
              channels: Sequence[str] | None = None) -> list[Path]:
    """Write the measured series (with their faults) as kwhub CSV files; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(channels) if channels is not None else list(result.series)
    unknown = [c for c in ids if c not in result.series]
    if unknown:
        raise ValueError(f"unknown channel(s) {', '.join(unknown)}")
    paths: list[Path] = []
    if layout == "long":
        for c in ids:
            s = result.series[c]
            n = len(s)
            cols = [np.full(n, c, dtype=object), iso_utc(s.starts),
                    np.full(n, str(s.interval_minutes), dtype=object), _fmt(s.values)]
            p = out / f"{c}.csv"
            body = _join_rows(cols) if n else ""
            unit = result.campus.channel(c).unit.lower()
            header = LONG_HEADER if unit == "kwh" else LONG_HEADER.rsplit(",", 1)[0] + "," + unit
            p.write_text(header + "\n" + body, encoding="utf-8")
            paths.append(p)
    elif layout == "wide":
        step = result.interval_minutes * 60
        grid = result.starts
        cols = [iso_utc(grid)]
        for c in ids:
            s = result.series[c]
            cell = np.full(len(grid), "", dtype=object)
            idx = (s.starts - grid[0]) // step
            cell[idx] = _fmt(s.values).astype(object)
            cols.append(cell)
        p = out / WIDE_NAME
        p.write_text("interval_start," + ",".join(ids) + "\n" + _join_rows(cols), encoding="utf-8")
        paths.append(p)
    else:
        raise ValueError(f"layout must be 'long' or 'wide', not {layout!r}")
    if result.fault_spec is not None and result.fault_spec.duplicate_file and paths:
        src = paths[0]
        dup = src.with_name(src.stem + "_dup.csv")
        shutil.copyfile(src, dup)
        paths.append(dup)
    return paths


# ------------------------------------------------------------------ Green Button (ESPI)


def _uuid(*parts: object) -> str:
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "kwhub-sim|" + "|".join(map(str, parts))))


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(eid: str, links: Sequence[tuple[str, str]], title: str, content: str, updated: str) -> str:
    link_xml = "".join(f'<link rel="{rel}" href="{href}"/>' for rel, href in links)
    return (f"<entry><id>{eid}</id>{link_xml}<title>{escape(title)}</title><content>{content}</content>"
            f"<published>{updated}</published><updated>{updated}</updated></entry>\n")


def _local_time_parameters(tz: str, year: int) -> str:
    z = zone(tz)
    winter = z.utcoffset(datetime(year, 1, 15))
    summer = z.utcoffset(datetime(year, 7, 15))
    std = int(min(winter, summer).total_seconds())  # type: ignore[type-var]
    dst = int(abs((summer - winter).total_seconds()))  # type: ignore[operator]
    # North American rules (2nd Sunday March / 1st Sunday November, 02:00), as in NAESB samples
    return ("<espi:LocalTimeParameters><espi:dstEndRule>B40E2000</espi:dstEndRule>"
            f"<espi:dstOffset>{dst}</espi:dstOffset><espi:dstStartRule>360E2000</espi:dstStartRule>"
            f"<espi:tzOffset>{std}</espi:tzOffset></espi:LocalTimeParameters>")


def write_greenbutton(result: SimResult, channel_id: str, path: Path | str,
                      usage_point_title: str = "", flow_direction: int = 1) -> Path:
    """Write one energy channel as a NAESB ESPI Atom feed (Wh integers, one IntervalBlock per local day)."""
    ch = result.campus.channel(channel_id)
    if ch.unit != "kWh":
        raise ValueError(f"{channel_id} is in {ch.unit}; Green Button export needs an energy (kWh) channel")
    s = result.series[channel_id]
    order = np.argsort(s.starts, kind="stable")
    starts = s.starts[order]
    wh = np.rint(s.values[order] * 1000.0).astype(np.int64)
    dur = result.interval_minutes * 60
    updated = _stamp(int(result.starts[-1]) + dur)
    up = f"{ESPI_BASE}/Subscription/1/UsagePoint/{channel_id}"
    mr = f"{up}/MeterReading/1"
    rt = f"{ESPI_BASE}/ReadingType/{channel_id}"
    ltp = f"{ESPI_BASE}/LocalTimeParameters/1"
    title = usage_point_title or f"{channel_id} ({ch.meter or 'meter'})"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<feed xmlns="{ATOM_NS}" xmlns:espi="{ESPI_NS}">\n',
        f"<id>{_uuid(channel_id, result.seed, result.start, result.days, 'feed')}</id>"
        f"<title>kwhub simulated campus: {escape(channel_id)}</title><updated>{updated}</updated>\n",
        _entry(_uuid(channel_id, "ltp"), [("self", ltp), ("up", f"{ESPI_BASE}/LocalTimeParameters")],
               "Local time", _local_time_parameters(result.tz, result.start.year), updated),
        _entry(_uuid(channel_id, "up"), [("self", up), ("up", f"{ESPI_BASE}/Subscription/1/UsagePoint"),
                                         ("related", f"{up}/MeterReading"), ("related", ltp)],
               title, "<espi:UsagePoint><espi:ServiceCategory><espi:kind>0</espi:kind>"
                      "</espi:ServiceCategory></espi:UsagePoint>", updated),
        _entry(_uuid(channel_id, "mr"), [("self", mr), ("up", f"{up}/MeterReading"),
                                         ("related", f"{mr}/IntervalBlock"), ("related", rt)],
               "Interval energy", "<espi:MeterReading/>", updated),
        _entry(_uuid(channel_id, "rt"), [("self", rt), ("up", f"{ESPI_BASE}/ReadingType")],
               "Energy (Wh)",
               "<espi:ReadingType><espi:accumulationBehaviour>4</espi:accumulationBehaviour>"
               "<espi:commodity>1</espi:commodity><espi:currency>840</espi:currency>"
               "<espi:dataQualifier>12</espi:dataQualifier>"
               f"<espi:flowDirection>{int(flow_direction)}</espi:flowDirection>"
               f"<espi:intervalLength>{dur}</espi:intervalLength><espi:kind>12</espi:kind>"
               "<espi:phase>769</espi:phase><espi:powerOfTenMultiplier>0</espi:powerOfTenMultiplier>"
               "<espi:timeAttribute>0</espi:timeAttribute><espi:uom>72</espi:uom></espi:ReadingType>", updated),
    ]
    if len(starts):
        readings = np.char.add(
            np.char.add(f"<espi:IntervalReading><espi:timePeriod><espi:duration>{dur}</espi:duration><espi:start>",
                        starts.astype(str)),
            np.char.add(np.char.add("</espi:start></espi:timePeriod><espi:value>", wh.astype(str)),
                        "</espi:value></espi:IntervalReading>"),
        )
        # one block per local day of the simulated span
        day_bounds = _local_day_bounds(result)
        blk = np.searchsorted(day_bounds, starts, side="right") - 1
        cuts = np.flatnonzero(np.diff(blk)) + 1
        for k, chunk in enumerate(np.split(np.arange(len(starts)), cuts)):
            b = int(blk[chunk[0]])
            b0, b1 = int(day_bounds[b]), int(day_bounds[b + 1])
            content = (f"<espi:IntervalBlock><espi:interval><espi:duration>{b1 - b0}</espi:duration>"
                       f"<espi:start>{b0}</espi:start></espi:interval>{''.join(readings[chunk].tolist())}"
                       "</espi:IntervalBlock>")
            parts.append(_entry(_uuid(channel_id, "ib", b0), [("self", f"{mr}/IntervalBlock/{k + 1}"),
                                                                ("up", f"{mr}/IntervalBlock")],
                                "", content, _stamp(b1)))
    parts.append("</feed>\n")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(parts), encoding="utf-8")
    return p


def _local_day_bounds(result: SimResult) -> np.ndarray:
    """UTC epochs of each local midnight in the span, plus the span end."""
    from datetime import timedelta

    z = zone(result.tz)
    out = []
    for k in range(result.days + 1):  # one per day, not per interval
        d = result.start + timedelta(days=k)
        out.append(int(datetime(d.year, d.month, d.day, tzinfo=z).timestamp()))
    return np.asarray(out, dtype=np.int64)
