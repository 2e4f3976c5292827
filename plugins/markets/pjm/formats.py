"""PJM formats: Data Miner LMP CSV and kwhub's statement CSV layout of billing line items."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np

from kwhub.core.intervals import IntervalDataError
from kwhub.core.markets.fixed import FixedPointError, price_units
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Statement, StatementLine
from kwhub.core.markets.prices import MarketPrices
from kwhub.core.timeline import zone
from kwhub.plugins.markets.iso_csv import decimal_field, grid_position, statement_rows

TZ = "America/New_York"
EMKT_NS = "http://emkt.pjm.com/emkt/xml"
STATEMENT_HEADER = ["BILLING_LINE_ITEM", "OPERATING_DAY", "RESOURCE", "DATETIME_BEGINNING_UTC", "MINUTES",
                    "QUANTITY_MWH", "PRICE", "AMOUNT", "STATEMENT_ID", "STATEMENT_TYPE"]
KINDS = {"INITIAL": "initial", "FINAL": "final", "TRUEUP": "true_up", "RESETTLEMENT": "resettlement"}
PRICE_OF = {"1200": "DA_SYSTEM_ENERGY_PRICE", "1205": "RT_SYSTEM_ENERGY_PRICE"}
STAMP = "%m/%d/%Y %I:%M:%S %p"


def _stamp(text: str, source: str, line: int, col: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), STAMP)
    except ValueError:
        raise IntervalDataError(f"not an M/D/YYYY h:mm:ss AM/PM stamp: {text!r}", source=source,
                                where=f"line {line}", field=col) from None


def parse_lmp_csv(data: bytes, source: str, nodes: Sequence[str] = ()) -> list[MarketPrices]:
    """A Data Miner ``da_hrl_lmps`` or ``rt_fivemin_hrl_lmps`` CSV as exact system energy prices."""
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    if not rows:
        raise IntervalDataError("the file has no rows", source=source)
    if "system_energy_price_da" in rows[0]:
        market, minutes, col = "DA", 60, "system_energy_price_da"
    elif "system_energy_price_rt" in rows[0]:
        market, minutes, col = "RT", 5, "system_energy_price_rt"
    else:
        raise IntervalDataError("neither system_energy_price_da nor system_energy_price_rt is a column", source=source,
                                where="line 1")
    z = zone(TZ)
    found: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
    versions: list[int] = []
    for n, r in enumerate(rows, start=2):
        if r.get("row_is_current", "TRUE").strip().upper() not in ("TRUE", "1", "Y"):
            continue
        node = r["pnode_name"].strip()
        if nodes and node not in nodes:
            continue
        utc = _stamp(r["datetime_beginning_utc"], source, n, "datetime_beginning_utc").replace(tzinfo=UTC)
        ept = _stamp(r["datetime_beginning_ept"], source, n, "datetime_beginning_ept")
        if utc.astimezone(z).replace(tzinfo=None) != ept:
            raise IntervalDataError(f"datetime_beginning_ept {ept} is not {utc.isoformat()} in Eastern time",
                                    source=source, where=f"line {n}", field="datetime_beginning_ept")
        try:
            units = price_units(r[col].strip())
        except FixedPointError as exc:
            raise IntervalDataError(str(exc), source=source, where=f"line {n}", field=col) from None
        s = int(utc.timestamp())
        if s in found[node]:
            raise IntervalDataError(f"{node} {utc.isoformat()} has two current rows", source=source,
                                    where=f"line {n}", field="row_is_current")
        version = int(r.get("version_nbr") or 1)
        versions.append(version)
        found[node][s] = (units, version)
    out = []
    for node, vals in sorted(found.items()):
        starts = np.array(sorted(vals), dtype=np.int64)
        out.append(MarketPrices(iso="PJM", node=node, market=market, interval_minutes=minutes,  # type: ignore[arg-type]
                                starts=starts, price_units=np.array([vals[s][0] for s in starts.tolist()]),
                                version=max(v for _, v in vals.values()), source=source))
    return out


def render_lmp_csv(day: date, market: str, prices: dict[str, Sequence[Decimal]], version: int = 1) -> bytes:
    """A Data Miner LMP CSV of one Eastern operating day."""
    minutes = 60 if market == "DA" else 5
    grid = DayGrid(day, TZ, minutes)
    sfx = "da" if market == "DA" else "rt"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["datetime_beginning_utc", "datetime_beginning_ept", "pnode_id", "pnode_name", "voltage", "equipment",
                "type", "zone", f"system_energy_price_{sfx}", f"total_lmp_{sfx}", f"congestion_price_{sfx}",
                f"marginal_loss_price_{sfx}", "row_is_current", "version_nbr"])
    z = zone(TZ)
    for k, (node, vals) in enumerate(prices.items()):
        for i, v in enumerate(vals):
            utc = datetime.fromtimestamp(int(grid.starts[i]), tz=UTC)
            w.writerow([utc.strftime(STAMP), utc.astimezone(z).strftime(STAMP), 51288 + k, node, "", "", "HUB", "",
                        f"{v:.2f}", f"{v + Decimal('0.75'):.2f}", "0.50", "0.25", "TRUE", version])
    return buf.getvalue().encode()


def parse_statement_csv(data: bytes, source: str) -> Statement:
    """kwhub's CSV layout of PJM billing line items (see the module doc)."""
    lines = []
    heads = set()
    for n, f in statement_rows(data, source, STATEMENT_HEADER):
        try:
            start = datetime.fromisoformat(f["DATETIME_BEGINNING_UTC"].strip()).astimezone(UTC)
        except ValueError:
            raise IntervalDataError(f"not an ISO 8601 time with offset: {f['DATETIME_BEGINNING_UTC']!r}",
                                    source=source, where=f"line {n}", field="DATETIME_BEGINNING_UTC") from None
        qty, price, amount = (decimal_field(f, k, source, n) for k in ("QUANTITY_MWH", "PRICE", "AMOUNT"))
        code = f["BILLING_LINE_ITEM"].strip()
        dets = {PRICE_OF.get(code, "PRICE"): price}
        if code == "1200":
            dets["DA_INJECTION"] = -qty  # quantity = withdrawal - injection
        day = date.fromisoformat(f["OPERATING_DAY"].strip())
        minutes = int(f["MINUTES"])
        grid = DayGrid(day, TZ, minutes)
        i = grid_position(grid, int(start.timestamp()))
        if i is None:
            raise IntervalDataError(f"{start.isoformat()} is not an interval of operating day {day}", source=source,
                                    where=f"line {n}")
        lines.append(StatementLine(code=code, resource=f["RESOURCE"].strip(), start=start, minutes=minutes,
                                   amount=amount, determinants=dets, label=grid.label(i)))
        heads.add((f["STATEMENT_ID"].strip(), f["STATEMENT_TYPE"].strip().upper(), day))
    if len(heads) != 1:
        raise IntervalDataError("a statement file holds one statement (one id, type and day)", source=source)
    sid, kind, day = heads.pop()
    if kind not in KINDS:
        raise IntervalDataError(f"STATEMENT_TYPE {kind!r} is not one of {sorted(KINDS)}", source=source)
    return Statement(iso="PJM", operating_day=day, kind=KINDS[kind], statement_id=sid,  # type: ignore[arg-type]
                     lines=tuple(lines), source=source)
