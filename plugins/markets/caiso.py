"""The CAISO market adapter: SIBR raw bid sets, CMRI awards, OASIS PRC_LMP prices, statements.

Shape-compatible, not conformant (``MARKETS.md`` section 6): the SIBR interface
specification and its XSDs are portal-gated, so the ``RawBidSet`` written here follows
the CIM-derived element names published for a sister market (``MessageHeader``,
``MessagePayload/GeneratingBid/ProductBid/BidSchedule/BidPriceCurve/CurveSchedData``),
and WS-Security signing is not applied. The statement file is kwhub's own CSV layout of
the settlement lines (``TRADE_DATE, CHARGE_CODE, RESOURCE_ID, INTERVAL_START_GMT,
INTERVAL_END_GMT, BILL_QUANTITY, PRICE, AMOUNT, STATEMENT_ID, STATEMENT_TYPE``; supply as
a negative quantity, a negative amount paid to the scheduling coordinator).

OASIS ``PRC_LMP`` files are read on their GMT columns; ``OPR_DT``/``OPR_HR`` (hour ending
in Pacific prevailing time, 1-25 on the fall-back day) and ``OPR_INTERVAL`` are checked
against them, so a mislabelled row is refused, never shifted. Only ``LMP_TYPE=LMP`` rows
(the total) are prices; the components are counted and left out, so totals and
components are never averaged together. OASIS throttling answers HTTP 200 with an HTML
page: that is a transient error, not data.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
from lxml import etree

from core.adapters import AdapterConfig, AdapterError, CheckResult, FailureKind, MarketAdapter
from core.hookspecs import hookimpl
from core.intervals import IntervalDataError
from core.markets.curve_rules import DEFAULT_RULES, CurveRuleError, check_bid
from core.markets.fixed import FixedPointError, price_units
from core.markets.hour_labels import DayGrid, operating_day_of
from core.markets.models import (
    Award,
    Bid,
    BidOutcome,
    Statement,
    StatementLine,
    Submission,
    SubmissionStatus,
)
from core.markets.prices import MarketPrices
from hub.helpers.loopback import LoopbackServer, Reply
from hub.helpers.safe_xml import UnsafeXmlError, parse_xml

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
        pos = np.searchsorted(grid.starts, s)
        if pos >= len(grid) or grid.starts[pos] != s:
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
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    if not rows or [h.strip() for h in rows[0]] != STATEMENT_HEADER:
        raise IntervalDataError(f"not a statement header {STATEMENT_HEADER}", source=source, where="line 1")
    lines: list[StatementLine] = []
    ids, kinds, days = set(), set(), set()
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        f = dict(zip(STATEMENT_HEADER, row, strict=True))
        start = _gmt(f["INTERVAL_START_GMT"], f"line {n}", source)
        end = _gmt(f["INTERVAL_END_GMT"], f"line {n}", source)
        try:
            qty, price, amount = (Decimal(f[k].strip()) for k in ("BILL_QUANTITY", "PRICE", "AMOUNT"))
        except InvalidOperation:
            raise IntervalDataError("BILL_QUANTITY, PRICE and AMOUNT must be numbers", source=source,
                                    where=f"line {n}") from None
        code = f["CHARGE_CODE"].strip()
        dets = {PRICE_OF.get(code, "PRICE"): price}
        if code == "6011":
            dets["DA_SCHEDULE"] = -qty  # supply is a negative quantity on the statement
        grid = DayGrid(date.fromisoformat(f["TRADE_DATE"].strip()), TZ, int((end - start).total_seconds()) // 60)
        i = int(np.searchsorted(grid.starts, int(start.timestamp())))
        if i >= len(grid) or grid.starts[i] != int(start.timestamp()):
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
    from core.markets.models import CurvePoint, OfferCurve

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


class CaisoConfig(AdapterConfig):
    """Where SIBR, CMRI and OASIS (or the local CAISO) are, and who submits."""

    url: str
    scheduling_coordinator: str = "SCKWHUB"
    nodes: list[str] = []
    timeout_s: float = 10.0


class CaisoMarket(MarketAdapter):
    """CAISO: SIBR raw bid sets, CMRI awards, OASIS PRC_LMP, statements (shape-compatible)."""

    type_id: ClassVar[str] = "markets.caiso"
    title: ClassVar[str] = "CAISO (SIBR, CMRI, OASIS; shape-compatible)"
    iso: ClassVar[str] = "CAISO"
    capabilities: ClassVar[frozenset[str]] = frozenset({"bids", "awards", "prices", "statements", "local_server"})
    Config = CaisoConfig
    config: CaisoConfig

    def _call(self, method: str, path: str, what: str, **kw: Any) -> httpx.Response:
        try:
            r = httpx.request(method, self.config.url.rstrip("/") + path, timeout=self.config.timeout_s, **kw)
        except httpx.TimeoutException:
            raise AdapterError(f"CAISO {what}: no answer within {self.config.timeout_s} s (retry later)",
                               FailureKind.TRANSIENT) from None
        except httpx.HTTPError as exc:
            raise AdapterError(f"CAISO {what}: {exc}", FailureKind.TRANSIENT) from None
        if r.status_code >= 500:
            raise AdapterError(f"CAISO {what}: HTTP {r.status_code} (retry later)", FailureKind.TRANSIENT)
        if r.status_code >= 400:
            raise AdapterError(f"CAISO {what}: HTTP {r.status_code}: {r.text[:200]}", FailureKind.CONFIGURATION)
        if "html" in r.headers.get("content-type", "").lower():
            raise AdapterError(f"CAISO {what}: HTTP {r.status_code} with an HTML page (OASIS throttling; back off "
                               "and retry)", FailureKind.TRANSIENT)
        return r

    def check(self) -> CheckResult:
        try:
            httpx.get(self.config.url, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            return CheckResult.failure(FailureKind.TRANSIENT, f"{self.config.url}: {exc}")
        return CheckResult.success(f"{self.config.url} answers")

    def render_bids(self, bids: Sequence[Bid]) -> bytes:
        for bid in bids:
            found = check_bid(bid, DEFAULT_RULES[("CAISO", bid.market)], TZ)
            if found:
                raise CurveRuleError(bid.bid_id, found)
        env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS})
        etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(render_raw_bid_set(bids, self.config.scheduling_coordinator))
        return etree.tostring(env, xml_declaration=True, encoding="UTF-8")

    def submit(self, bids: Sequence[Bid]) -> Submission:
        import hashlib

        data = self.render_bids(bids)
        r = self._call("POST", "/sibr/submitRawBidSet", "RawBidSet submission", content=data,
                       headers={"Content-Type": "text/xml; charset=utf-8"})
        try:
            root = parse_xml(r.content, "SIBR reply")
        except UnsafeXmlError as exc:
            raise AdapterError(str(exc), FailureKind.TRANSIENT) from None
        outcomes = []
        for el in root.iter("BidResult"):
            status = SubmissionStatus.ACCEPTED if el.get("status") == "VALID" else SubmissionStatus.REJECTED
            outcomes.append(BidOutcome(bid_id=el.get("resource", ""), status=status, iso_ref=el.get("bidId", ""),
                                       errors=tuple(e.text or "" for e in el.iter("Error"))))
        statuses = {o.status for o in outcomes}
        status = (SubmissionStatus.PARTIAL if len(statuses) > 1 else statuses.pop() if statuses
                  else SubmissionStatus.REJECTED)
        return Submission(iso="CAISO", market=bids[0].market, trading_date=bids[0].trading_date, status=status,
                          document_sha256=hashlib.sha256(data).hexdigest(), outcomes=tuple(outcomes),
                          iso_ref=",".join(o.iso_ref for o in outcomes if o.iso_ref))

    def poll_status(self, submission: Submission) -> Submission:
        return submission  # SIBR validates synchronously here: the reply is final

    def fetch_awards(self, trading_date: date, market: str = "DA") -> list[Award]:
        r = self._call("GET", "/cmri/RetrieveMarketAwards", "CMRI awards",
                       params={"tradeDate": trading_date.isoformat(), "marketType": "DAM"})
        rows = list(csv.DictReader(io.StringIO(r.text)))
        return [Award(iso="CAISO", market="DA", resource=x["RESOURCE_ID"], start=_gmt(x["START_GMT"], "", "CMRI"),
                      end=_gmt(x["END_GMT"], "", "CMRI"), mwh=Decimal(x["AWARD_MWH"])) for x in rows]

    def fetch_prices(self, trading_date: date, market: str = "DA") -> list[MarketPrices]:
        r = self._call("GET", "/oasisapi/SingleZip", f"PRC_LMP {market} {trading_date}",
                       params={"queryname": "PRC_LMP", "market_run_id": "DAM" if market == "DA" else "RTM",
                               "opr_date": trading_date.isoformat()})
        if r.content[:2] != b"PK":
            raise AdapterError(f"CAISO PRC_LMP {trading_date}: the answer is not a zip file (throttled?)",
                               FailureKind.TRANSIENT)
        z = zipfile.ZipFile(io.BytesIO(r.content))
        out: list[MarketPrices] = []
        for name in z.namelist():
            out += parse_prc_lmp(z.read(name), name, nodes=self.config.nodes)
        return out

    def fetch_statements(self, operating_day: date) -> list[Statement]:
        r = self._call("GET", "/settlements/statements", f"statements {operating_day}",
                       params={"tradeDate": operating_day.isoformat()})
        z = zipfile.ZipFile(io.BytesIO(r.content))
        return [parse_statement_csv(z.read(n), n) for n in sorted(z.namelist())]

    def parse_prices(self, path: Path) -> list[MarketPrices]:
        return parse_prc_lmp(Path(path).read_bytes(), str(path), nodes=self.config.nodes)

    def parse_statement(self, path: Path) -> Statement:
        return parse_statement_csv(Path(path).read_bytes(), str(path))

    def local_server(self, **options: Any) -> CaisoSim:
        return CaisoSim(sc=self.config.scheduling_coordinator, **options)


class CaisoSim:
    """A local CAISO: SIBR submit (curve rules), CMRI awards (cleared against the DA LMP),
    OASIS ``SingleZip`` PRC_LMP (HTML-throttling fault), and statements (6011, 6475) from the
    meter data it is given (MWh per 5 minutes), with price corrections as resettlements."""

    def __init__(self, sc: str = "SCKWHUB", prices: Any = None, meter: Any = None, port: int = 0) -> None:
        self.sc = sc
        self.prices = prices or (lambda node, day, market: [Decimal("40.00")] * len(DayGrid(day, TZ, 60 if market == "DA" else 5)))
        self.meter = meter
        self.port = port
        self.url = ""
        self.bids: list[Bid] = []
        self.corrections: dict[tuple[str, date], dict[int, Decimal]] = {}
        self.throttle_next = False
        self._server: LoopbackServer | None = None

    def start(self) -> CaisoSim:
        self._server = LoopbackServer(self._handle, port=self.port).start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def price_list(self, node: str, day: date, market: str, latest: bool = True) -> list[Decimal]:
        vals = list(self.prices(node, day, market))
        if latest and market == "RT":
            for i, p in self.corrections.get((node, day), {}).items():
                vals[i] = p
        return vals

    def awards(self, day: date) -> list[tuple[str, int, Decimal]]:
        grid = DayGrid(day, TZ, 60)
        idx = {int(s): i for i, s in enumerate(grid.starts.tolist())}
        out = []
        for b in self.bids:
            if b.trading_date != day:
                continue
            lmp = self.price_list(b.resource, day, "DA")
            for c in b.curves:
                i = idx[int(c.start.timestamp())]
                out.append((b.resource, int(grid.starts[i]),
                            max((p.mw for p in c.points if p.price <= lmp[i]), default=Decimal(0))))
        return out

    def statements(self, day: date) -> dict[str, bytes]:
        """Initial statement, plus a resettlement when an RTD price was corrected."""
        grid_h, grid_5 = DayGrid(day, TZ, 60), DayGrid(day, TZ, 5)
        awards = self.awards(day)

        def one(kind: str, latest: bool) -> bytes:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(STATEMENT_HEADER)
            sid = f"{self.sc}-{day:%Y%m%d}-{kind}"
            da: dict[tuple[str, int], Decimal] = {(r, s): mwh for r, s, mwh in awards}
            for r in sorted({a[0] for a in awards}):
                lmp = self.price_list(r, day, "DA")
                for i, s in enumerate(grid_h.starts.tolist()):
                    qty = -da.get((r, s), Decimal(0))
                    w.writerow([day, "6011", r, _iso(s), _iso(s + 3600), qty, lmp[i],
                                (qty * lmp[i]).quantize(Decimal("0.01"), ROUND_HALF_UP), sid, kind])
                meter = list(self.meter(r, day)) if self.meter else [Decimal(0)] * len(grid_5)
                rtd = self.price_list(r, day, "RT", latest)
                for i, s in enumerate(grid_5.starts.tolist()):
                    expected = da.get((r, s - s % 3600), Decimal(0)) / 12
                    qty = -(meter[i] - expected)
                    w.writerow([day, "6475", r, _iso(s), _iso(s + 300), qty.quantize(Decimal("0.000001")), rtd[i],
                                (qty * rtd[i]).quantize(Decimal("0.01"), ROUND_HALF_UP), sid, kind])
            return buf.getvalue().encode()

        out = {f"{self.sc}-{day:%Y%m%d}-INITIAL.csv": one("INITIAL", False)}
        if any(d == day for _, d in self.corrections):
            out[f"{self.sc}-{day:%Y%m%d}-RESETTLEMENT.csv"] = one("RESETTLEMENT", True)
        return out

    def _handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                body: bytes) -> Reply:
        if self.throttle_next:
            self.throttle_next = False
            return Reply(200, HTML, "text/html")
        if path == "/sibr/submitRawBidSet":
            root = parse_xml(body, "RawBidSet")
            raw = root.find(f"{{{SOAP_NS}}}Body/{{{RAW_NS}}}RawBidSet")
            res = etree.Element("BidResults")
            for b in parse_raw_bid_set(raw):
                found = check_bid(b, DEFAULT_RULES[("CAISO", "DA")], TZ)
                el = etree.SubElement(res, "BidResult", resource=b.resource, bidId=f"{self.sc}-{b.resource}",
                                      status="INVALID" if found else "VALID")
                for v in found:
                    etree.SubElement(el, "Error").text = str(v)
                if not found:
                    self.bids.append(b)
            return Reply(200, etree.tostring(res), "text/xml")
        day = date.fromisoformat((query.get("tradeDate") or query.get("opr_date") or ["2000-01-01"])[0])
        if path == "/cmri/RetrieveMarketAwards":
            rows = ["RESOURCE_ID,START_GMT,END_GMT,AWARD_MWH"] + [f"{r},{_iso(s)},{_iso(s + 3600)},{m}"
                                                                   for r, s, m in self.awards(day)]
            return Reply(200, ("\n".join(rows) + "\n").encode(), "text/csv")
        if path == "/oasisapi/SingleZip":
            market = "DA" if query.get("market_run_id", ["DAM"])[0] == "DAM" else "RT"
            nodes = sorted({b.resource for b in self.bids}) or ["KWHUB_GEN"]
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                z.writestr(f"{day:%Y%m%d}_PRC_LMP_{market}.csv",
                           render_prc_lmp(day, market, {n: self.price_list(n, day, market) for n in nodes}))
            return Reply(200, buf.getvalue(), "application/x-zip-compressed")
        if path == "/settlements/statements":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                for name, data in self.statements(day).items():
                    z.writestr(name, data)
            return Reply(200, buf.getvalue(), "application/zip")
        return Reply(404, b"not found")


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")


@hookimpl
def kwhub_register_market_adapters(register):  # type: ignore[no-untyped-def]
    """Register the CAISO adapter."""
    register(CaisoMarket)
