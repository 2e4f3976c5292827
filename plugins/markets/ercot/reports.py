"""ERCOT's public price reports: DAM SPPs (NP4-190-CD) and RT SPPs (NP6-905-CD).

* NP4-190-CD: ``DeliveryDate, HourEnding, SettlementPoint, SettlementPointPrice, DSTFlag``
  (quoted), one row per settlement point and hour ending ``01:00``..``24:00``;
* NP6-905-CD: ``DeliveryDate, DeliveryHour, DeliveryInterval, SettlementPointName,
  SettlementPointType, SettlementPointPrice, DSTFlag`` (unquoted), one row per point and
  15-minute interval (``DeliveryHour`` 15, ``DeliveryInterval`` 1 = 14:00-14:15).

The repeated hour of the fall-back day carries ``DSTFlag=Y``; the spring day has no hour
ending 03. Each row is placed on the UTC line through :class:`kwhub.core.markets.hour_labels.DayGrid`,
so a label that names no interval of its day is an error naming the file and line.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

import numpy as np

from kwhub.core.intervals import IntervalDataError
from kwhub.core.markets.fixed import FixedPointError, price_decimal, price_units
from kwhub.core.markets.hour_labels import DayGrid, LabelError
from kwhub.core.markets.prices import MarketPrices

DAM_HEADER = ["DeliveryDate", "HourEnding", "SettlementPoint", "SettlementPointPrice", "DSTFlag"]
RTM_HEADER = ["DeliveryDate", "DeliveryHour", "DeliveryInterval", "SettlementPointName", "SettlementPointType",
              "SettlementPointPrice", "DSTFlag"]


def _us_date(text: str, source: str, line: int) -> date:
    try:
        return datetime.strptime(text.strip(), "%m/%d/%Y").date()
    except ValueError:
        raise IntervalDataError(f"not a MM/DD/YYYY date: {text!r}", source=source, where=f"line {line}",
                                field="DeliveryDate") from None


def _flag(text: str, source: str, line: int) -> bool:
    t = text.strip().upper()
    if t not in ("Y", "N"):
        raise IntervalDataError(f"DSTFlag must be Y or N, got {text!r}", source=source, where=f"line {line}",
                                field="DSTFlag")
    return t == "Y"


def parse_spp_csv(data: bytes, source: str, tz: str = "America/Chicago", version: int = 1,
                  nodes: Sequence[str] = ()) -> list[MarketPrices]:
    """Read an NP4-190-CD (hourly DAM) or NP6-905-CD (15-minute RTM) file."""
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise IntervalDataError("the file is empty", source=source)
    header = [h.strip() for h in rows[0]]
    if header == DAM_HEADER:
        market, minutes = "DA", 60
    elif header == RTM_HEADER:
        market, minutes = "RT", 15
    else:
        raise IntervalDataError(f"not an NP4-190-CD or NP6-905-CD header: {header}", source=source, where="line 1")
    grids: dict[date, DayGrid] = {}
    found: dict[str, dict[int, tuple[int, str]]] = defaultdict(dict)
    for n, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise IntervalDataError(f"{len(row)} fields, the header has {len(header)}", source=source,
                                    where=f"line {n}")
        f = dict(zip(header, row, strict=True))
        node = (f["SettlementPoint"] if market == "DA" else f["SettlementPointName"]).strip()
        if nodes and node not in nodes:
            continue
        day = _us_date(f["DeliveryDate"], source, n)
        grid = grids.get(day) or grids.setdefault(day, DayGrid(day, tz, minutes))
        repeated = _flag(f["DSTFlag"], source, n)
        try:
            if market == "DA":
                he_text = f["HourEnding"].strip()
                if len(he_text) != 5 or he_text[2:] != ":00" or not he_text[:2].isdigit():
                    raise IntervalDataError(f"HourEnding must be hh:00, got {he_text!r}", source=source,
                                            where=f"line {n}", field="HourEnding")
                i = grid.index_of(int(he_text[:2]), 1, repeated, where=f"{source}:line {n}")
            else:
                i = grid.index_of(int(f["DeliveryHour"]), int(f["DeliveryInterval"]), repeated,
                                  where=f"{source}:line {n}")
        except (LabelError, ValueError) as exc:
            if isinstance(exc, IntervalDataError):
                raise
            raise IntervalDataError(str(exc), source=source, where=f"line {n}", field="HourEnding") from None
        try:
            units = price_units(f["SettlementPointPrice"].strip())
        except FixedPointError as exc:
            raise IntervalDataError(str(exc), source=source, where=f"line {n}", field="SettlementPointPrice") from None
        start = int(grid.starts[i])
        if start in found[node] and found[node][start][0] != units:
            raise IntervalDataError(f"{node} {grid.label(i)} has two different prices in one file "
                                    f"({price_decimal(found[node][start][0])} and {price_decimal(units)})",
                                    source=source, where=f"line {n}")
        found[node][start] = (units, grid.label(i))
    out = []
    for node in sorted(found):
        starts = np.array(sorted(found[node]), dtype=np.int64)
        out.append(MarketPrices(iso="ERCOT", node=node, market=market, interval_minutes=minutes,  # type: ignore[arg-type]
                                starts=starts, price_units=np.array([found[node][s][0] for s in starts.tolist()]),
                                version=version, labels=[found[node][s][1] for s in starts.tolist()], source=source))
    return out


def render_spp_csv(day: date, tz: str, market: str, prices: dict[str, Sequence[Decimal]],
                   point_types: dict[str, str] | None = None) -> bytes:
    """An NP4-190-CD (``market="DA"``) or NP6-905-CD (``"RT"``) file of one delivery day."""
    minutes = 60 if market == "DA" else 15
    grid = DayGrid(day, tz, minutes)
    buf = io.StringIO()
    if market == "DA":
        w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(DAM_HEADER)
    else:
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(RTM_HEADER)
    for node, values in prices.items():
        if len(values) != len(grid):
            raise ValueError(f"{node}: {len(values)} prices for {len(grid)} intervals of {day}")
        for i, v in enumerate(values):
            flag = "Y" if grid.repeated[i] else "N"
            if market == "DA":
                w.writerow([f"{day:%m/%d/%Y}", f"{int(grid.hour_ending[i]):02d}:00", node, f"{v:.2f}", flag])
            else:
                w.writerow([f"{day:%m/%d/%Y}", int(grid.hour_ending[i]), int(grid.interval_in_hour[i]), node,
                            (point_types or {}).get(node, "RN"), f"{v:.2f}", flag])
    return buf.getvalue().encode()


def merge_days(parts: Iterable[MarketPrices]) -> list[MarketPrices]:
    """Join the per-file prices of one node and market into one series per (node, market)."""
    by: dict[tuple[str, str], list[MarketPrices]] = defaultdict(list)
    for p in parts:
        by[(p.node, p.market)].append(p)
    out = []
    for (node, market), ps in sorted(by.items()):
        starts = np.concatenate([p.starts for p in ps])
        order = np.argsort(starts, kind="stable")
        labels = [lab for p in ps for lab in (p.labels or [""] * len(p))]
        out.append(MarketPrices(iso=ps[0].iso, node=node, market=market, interval_minutes=ps[0].interval_minutes,  # type: ignore[arg-type]
                                starts=starts[order], price_units=np.concatenate([p.price_units for p in ps])[order],
                                version=max(p.version for p in ps), labels=[labels[i] for i in order.tolist()]))
    return out
