"""CAISO formats: OASIS PRC_LMP reports, kwhub's statement CSV layout and SIBR-style raw bid sets."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from lxml import etree

from kwhub.core.intervals import IntervalDataError
from kwhub.core.markets.fixed import FixedPointError, price_units
from kwhub.core.markets.hour_labels import DayGrid, operating_day_of
from kwhub.core.markets.models import (
    Bid,
    Statement,
    StatementLine,
)
from kwhub.core.markets.prices import MarketPrices
from kwhub.plugins.markets.iso_csv import decimal_field, grid_position, statement_rows

TZ = "America/Los_Angeles"
RAW_NS = "http://www.caiso.com/soa/RawBidSet_v1.xsd"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
STATEMENT_HEADER = ["TRADE_DATE", "CHARGE_CODE", "RESOURCE_ID", "INTERVAL_START_GMT", "INTERVAL_END_GMT",
                    "BILL_QUANTITY", "PRICE", "AMOUNT", "STATEMENT_ID", "STATEMENT_TYPE"]
KINDS = {"INITIAL": "initial", "RECALC": "final", "TRUEUP": "true_up", "RESETTLEMENT": "resettlement"}
PRICE_OF = {"6011": "DA_LMP", "6460": "FMM_LMP", "6470": "RTD_LMP", "6475": "RTD_LMP"}
HTML = b"<html><body><h1>Too many requests. Please try again later.</h1></body></html>"


def _gmt(text: str, where: str, source: str) -> datetime:
    t = text.strip().replace("-00:00", "+00:00")
    try:
        ts = datetime.fromisoformat(t)
    except ValueError:
        raise IntervalDataError(f"not an ISO 8601 GMT time: {text!r}", source=source, where=where) from None
    if ts.tzinfo is None:
        raise IntervalDataError(f"{text!r} has no offset", source=source, where=where)
    return ts.astimezone(UTC)


def parse_prc_lmp(data: bytes, source: str, version: int = 1, nodes: Sequence[str] = ()) -> list[MarketPrices]:
    """An OASIS ``PRC_LMP`` CSV (DAM hourly, or RTM 5-minute) as exact prices per node."""
    if data.lstrip()[:1] == b"<":
        raise IntervalDataError("OASIS answered an HTML or XML page, not a CSV report (throttled?)", source=source)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    if not rows:
        raise IntervalDataError("the report has no rows", source=source)
    need = {"INTERVALSTARTTIME_GMT", "INTERVALENDTIME_GMT", "OPR_DT", "OPR_HR", "NODE", "MARKET_RUN_ID", "LMP_TYPE"}
    missing = need - set(rows[0])
    if missing:
        raise IntervalDataError(f"columns {sorted(missing)} are missing", source=source, where="line 1")
    value_col = "MW" if "MW" in rows[0] else "VALUE"
    found: dict[tuple[str, str], dict[int, tuple[int, str]]] = defaultdict(dict)
    grids: dict[tuple[date, int], DayGrid] = {}
    minutes_of = {"DAM": 60, "RTM": 5}
    for n, r in enumerate(rows, start=2):
        if r["LMP_TYPE"].strip() != "LMP":
            continue
        node = r["NODE"].strip()
        if nodes and node not in nodes:
            continue
        run = r["MARKET_RUN_ID"].strip()
        if run not in minutes_of:
            raise IntervalDataError(f"MARKET_RUN_ID {run!r}: kwhub reads DAM and RTM prices", source=source,
                                    where=f"line {n}", field="MARKET_RUN_ID")
        minutes = minutes_of[run]
        start = _gmt(r["INTERVALSTARTTIME_GMT"], f"line {n}", source)
        end = _gmt(r["INTERVALENDTIME_GMT"], f"line {n}", source)
        if (end - start) != timedelta(minutes=minutes):
            raise IntervalDataError(f"{start.isoformat()}..{end.isoformat()} is not one {minutes}-minute interval",
                                    source=source, where=f"line {n}")
        day = date.fromisoformat(r["OPR_DT"].strip())
        grid = grids.get((day, minutes)) or grids.setdefault((day, minutes), DayGrid(day, TZ, minutes))
        s = int(start.timestamp())
        if grid_position(grid, s) is None:
            raise IntervalDataError(f"{start.isoformat()} is not an interval of operating day {day} (OPR_DT)",
                                    source=source, where=f"line {n}", field="OPR_DT")
        hour_number = int((s - int(grid.starts[0])) // 3600) + 1
        if int(r["OPR_HR"]) != hour_number:
            raise IntervalDataError(f"OPR_HR {r['OPR_HR']} but {start.isoformat()} is hour {hour_number} of {day}",
                                    source=source, where=f"line {n}", field="OPR_HR")
        try:
            units = price_units(r[value_col].strip())
        except FixedPointError as exc:
            raise IntervalDataError(str(exc), source=source, where=f"line {n}", field=value_col) from None
        market = "DA" if run == "DAM" else "RT"
        found[(node, market)][s] = (units, f"{day} HR{hour_number:02d}" +
                                    (f".{int(r.get('OPR_INTERVAL') or 0)}" if minutes < 60 else ""))
    out = []
    for (node, market), vals in sorted(found.items()):
        starts = np.array(sorted(vals), dtype=np.int64)
        out.append(MarketPrices(iso="CAISO", node=node, market=market, interval_minutes=60 if market == "DA" else 5,  # type: ignore[arg-type]
                                starts=starts, price_units=np.array([vals[s][0] for s in starts.tolist()]),
                                version=version, labels=[vals[s][1] for s in starts.tolist()], source=source))
    return out


def render_prc_lmp(day: date, market: str, prices: dict[str, Sequence[Decimal]]) -> bytes:
    """An OASIS ``PRC_LMP`` CSV of one operating day (the LMP rows and an MCE row each)."""
    minutes = 60 if market == "DA" else 5
    grid = DayGrid(day, TZ, minutes)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["INTERVALSTARTTIME_GMT", "INTERVALENDTIME_GMT", "OPR_DT", "OPR_HR", "OPR_INTERVAL", "NODE_ID_XML",
            "NODE_ID", "NODE", "MARKET_RUN_ID", "LMP_TYPE", "XML_DATA_ITEM", "PNODE_RESMRID", "GRP_TYPE", "POS"]
    w.writerow(head + (["MW", "GROUP"] if market == "DA" else ["VALUE", "GROUP"]))
    for node, vals in prices.items():
        for i, v in enumerate(vals):
            s = datetime.fromtimestamp(int(grid.starts[i]), tz=UTC)
            hour = (int(grid.starts[i]) - int(grid.starts[0])) // 3600 + 1
            sub = (int(grid.starts[i]) % 3600) // 300 + 1 if minutes == 5 else 0
            base = [s.strftime("%Y-%m-%dT%H:%M:%S-00:00"),
                    (s + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S-00:00"), day.isoformat(), hour, sub,
                    node, node, node, "DAM" if market == "DA" else "RTM"]
            w.writerow(base + ["LMP", "LMP_PRC", node, "ALL", 1, f"{v:.5f}", 1])
            w.writerow(base + ["MCE", "LMP_ENE_PRC", node, "ALL", 1, f"{v - Decimal('1.5'):.5f}", 1])
    return buf.getvalue().encode()


def parse_statement_csv(data: bytes, source: str) -> Statement:
    """kwhub's CSV layout of a CAISO statement (see the module doc)."""
    lines: list[StatementLine] = []
    ids, kinds, days = set(), set(), set()
    for n, f in statement_rows(data, source, STATEMENT_HEADER):
        start = _gmt(f["INTERVAL_START_GMT"], f"line {n}", source)
        end = _gmt(f["INTERVAL_END_GMT"], f"line {n}", source)
        qty, price, amount = (decimal_field(f, k, source, n) for k in ("BILL_QUANTITY", "PRICE", "AMOUNT"))
        code = f["CHARGE_CODE"].strip()
        dets = {PRICE_OF.get(code, "PRICE"): price}
        if code == "6011":
            dets["DA_SCHEDULE"] = -qty  # supply is a negative quantity on the statement
        grid = DayGrid(date.fromisoformat(f["TRADE_DATE"].strip()), TZ, int((end - start).total_seconds()) // 60)
        i = grid_position(grid, int(start.timestamp()))
        if i is None:
            raise IntervalDataError(f"{start.isoformat()} is not an interval of trade date {f['TRADE_DATE']}",
                                    source=source, where=f"line {n}")
        lines.append(StatementLine(code=code, resource=f["RESOURCE_ID"].strip(), start=start,
                                   minutes=int((end - start).total_seconds()) // 60, amount=amount, determinants=dets,
                                   label=f"{grid.day} HR{(int(grid.starts[i]) - int(grid.starts[0])) // 3600 + 1:02d}"))
        ids.add(f["STATEMENT_ID"].strip())
        kinds.add(f["STATEMENT_TYPE"].strip().upper())
        days.add(f["TRADE_DATE"].strip())
    if len(ids) != 1 or len(kinds) != 1 or len(days) != 1:
        raise IntervalDataError("a statement file holds one statement (one id, type and trade date)", source=source)
    kind = kinds.pop()
    if kind not in KINDS:
        raise IntervalDataError(f"STATEMENT_TYPE {kind!r} is not one of {sorted(KINDS)}", source=source)
    return Statement(iso="CAISO", operating_day=date.fromisoformat(days.pop()), kind=KINDS[kind],  # type: ignore[arg-type]
                     statement_id=ids.pop(), lines=tuple(lines), source=source)


def render_raw_bid_set(bids: Sequence[Bid], source: str) -> etree._Element:
    """A SIBR-style ``RawBidSet`` (one ``GeneratingBid`` per bid, an ``EN`` product, one
    ``BidSchedule`` per hour). Element names unverified for CAISO (see the module doc)."""
    root = etree.Element(f"{{{RAW_NS}}}RawBidSet", nsmap={None: RAW_NS})
    head = etree.SubElement(root, f"{{{RAW_NS}}}MessageHeader")
    etree.SubElement(head, f"{{{RAW_NS}}}TimeDate").text = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    etree.SubElement(head, f"{{{RAW_NS}}}Source").text = source
    pl = etree.SubElement(root, f"{{{RAW_NS}}}MessagePayload")

    def sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, f"{{{RAW_NS}}}{tag}")
        if text is not None:
            el.text = text
        return el

    for b in bids:
        g = sub(pl, "GeneratingBid")
        first, last = min(c.start for c in b.curves), max(c.end for c in b.curves)
        sub(g, "startTime", first.strftime("%Y-%m-%dT%H:%M:%SZ"))
        sub(g, "stopTime", last.strftime("%Y-%m-%dT%H:%M:%SZ"))
        sub(sub(g, "RegisteredGenerator"), "mrid", b.resource)
        sub(sub(g, "MarketParticipant"), "mrid", source)
        pb = sub(g, "ProductBid")
        sub(sub(pb, "MarketProduct"), "marketProductType", "EN")
        for c in b.curves:
            bs = sub(pb, "BidSchedule")
            sub(bs, "timeIntervalStart", c.start.strftime("%Y-%m-%dT%H:%M:%SZ"))
            sub(bs, "timeIntervalEnd", c.end.strftime("%Y-%m-%dT%H:%M:%SZ"))
            curve = sub(bs, "BidPriceCurve")
            for p in c.points:
                cd = sub(curve, "CurveSchedData")
                sub(cd, "xAxisData", format(p.mw, "f"))
                sub(cd, "y1AxisData", format(p.price, "f"))
    return root


def parse_raw_bid_set(root: etree._Element, market: str = "DA") -> list[Bid]:
    """The bids of a ``RawBidSet`` (for the local SIBR)."""
    from kwhub.core.markets.models import CurvePoint, OfferCurve

    ns = {"r": RAW_NS}
    out = []
    for g in root.iterfind("r:MessagePayload/r:GeneratingBid", ns):
        res = g.findtext("r:RegisteredGenerator/r:mrid", namespaces=ns) or ""
        curves = []
        for bs in g.iterfind("r:ProductBid/r:BidSchedule", ns):
            pts = tuple(CurvePoint(mw=Decimal(cd.findtext("r:xAxisData", namespaces=ns) or "0"),
                                   price=Decimal(cd.findtext("r:y1AxisData", namespaces=ns) or "0"))
                        for cd in bs.iterfind("r:BidPriceCurve/r:CurveSchedData", ns))
            curves.append(OfferCurve(start=_gmt(bs.findtext("r:timeIntervalStart", namespaces=ns) or "", "", "bid"),
                                     end=_gmt(bs.findtext("r:timeIntervalEnd", namespaces=ns) or "", "", "bid"),
                                     points=pts))
        if not curves:
            raise IntervalDataError(f"GeneratingBid of {res} has no BidSchedule", source="RawBidSet")
        day = operating_day_of(int(curves[0].start.timestamp()), TZ)
        out.append(Bid(bid_id=res, iso="CAISO", market=market, resource=res, trading_date=day,  # type: ignore[arg-type]
                       curves=tuple(curves)))
    return out
