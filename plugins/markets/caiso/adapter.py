"""The CAISO adapter: SIBR submissions, CMRI awards, OASIS prices and statements over HTTP."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import httpx
from lxml import etree

from kwhub.core.adapters import AdapterError, FailureKind
from kwhub.core.markets.models import (
    Award,
    Bid,
    BidOutcome,
    Statement,
    Submission,
    SubmissionStatus,
)
from kwhub.core.markets.prices import MarketPrices
from kwhub.hub.helpers.safe_xml import UnsafeXmlError, parse_xml
from kwhub.plugins.markets.caiso.formats import (
    RAW_NS,
    SOAP_NS,
    TZ,
    _gmt,
    parse_prc_lmp,
    parse_statement_csv,
    render_raw_bid_set,
)
from kwhub.plugins.markets.http_market import HttpMarket, HttpMarketConfig


class CaisoConfig(HttpMarketConfig):
    """Where SIBR, CMRI and OASIS (or the local CAISO) are, and who submits."""

    scheduling_coordinator: str = "SCKWHUB"


class CaisoMarket(HttpMarket):
    """CAISO: SIBR raw bid sets, CMRI awards, OASIS PRC_LMP, statements (shape-compatible)."""

    type_id: ClassVar[str] = "markets.caiso"
    title: ClassVar[str] = "CAISO (SIBR, CMRI, OASIS; shape-compatible)"
    iso: ClassVar[str] = "CAISO"
    capabilities: ClassVar[frozenset[str]] = frozenset({"bids", "awards", "prices", "statements", "local_server"})
    Config = CaisoConfig
    config: CaisoConfig

    def _check_status(self, r: httpx.Response, what: str) -> None:
        """5xx and 4xx as every HTTP market; then an HTML page (OASIS throttling) is transient."""
        super()._check_status(r, what)
        if "html" in r.headers.get("content-type", "").lower():
            raise AdapterError(f"CAISO {what}: HTTP {r.status_code} with an HTML page (OASIS throttling; back off "
                               "and retry)", FailureKind.TRANSIENT)

    def render_bids(self, bids: Sequence[Bid]) -> bytes:
        rt = sorted({b.bid_id for b in bids if b.market != "DA"})
        if rt:
            raise AdapterError(f"bids {', '.join(rt)}: kwhub's CAISO RawBidSet carries day-ahead (IFM) bids only; "
                               "real-time bids are not supported by this adapter (build them with --market DA)",
                               FailureKind.CONFIGURATION)
        self._check_curves(bids, TZ)
        env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS})
        etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(render_raw_bid_set(bids, self.config.scheduling_coordinator))
        return etree.tostring(env, xml_declaration=True, encoding="UTF-8")

    def validate_document(self, data: bytes) -> list[str]:
        """Offline problems of a SOAP ``RawBidSet`` (structure and numbers; SIBR's XSD is portal-gated)."""
        try:
            root = parse_xml(data, "RawBidSet document")
        except UnsafeXmlError as exc:
            return [str(exc)]
        raw = root.find(f"{{{SOAP_NS}}}Body/{{{RAW_NS}}}RawBidSet")
        if raw is None:
            return ["not a SOAP Envelope whose Body holds a RawBidSet"]
        ns = {"r": RAW_NS}
        problems = []
        if not (raw.findtext("r:MessageHeader/r:Source", namespaces=ns) or "").strip():
            problems.append("RawBidSet/MessageHeader/Source is missing")
        bids = raw.findall("r:MessagePayload/r:GeneratingBid", ns)
        if not bids:
            problems.append("RawBidSet/MessagePayload holds no GeneratingBid")
        for n, g in enumerate(bids, start=1):
            where = f"GeneratingBid[{n}]"
            if not (g.findtext("r:RegisteredGenerator/r:mrid", namespaces=ns) or "").strip():
                problems.append(f"{where}: RegisteredGenerator/mrid is missing")
            schedules = g.findall("r:ProductBid/r:BidSchedule", ns)
            if not schedules:
                problems.append(f"{where}: no ProductBid/BidSchedule")
            for k, bs in enumerate(schedules, start=1):
                for tag in ("timeIntervalStart", "timeIntervalEnd"):
                    try:
                        _gmt(bs.findtext(f"r:{tag}", namespaces=ns) or "", f"{where}/BidSchedule[{k}]", "RawBidSet")
                    except ValueError as exc:
                        problems.append(f"{where}/BidSchedule[{k}]/{tag}: {exc}")
                points = bs.findall("r:BidPriceCurve/r:CurveSchedData", ns)
                if not points:
                    problems.append(f"{where}/BidSchedule[{k}]: BidPriceCurve has no CurveSchedData")
                for cd in points:
                    for tag in ("xAxisData", "y1AxisData"):
                        try:
                            Decimal((cd.findtext(f"r:{tag}", namespaces=ns) or "").strip())
                        except InvalidOperation:
                            problems.append(f"{where}/BidSchedule[{k}]/{tag}: not a number")
        return problems

    def submit(self, bids: Sequence[Bid]) -> Submission:
        data, root = self._send_document(bids, "RawBidSet", "/sibr/submitRawBidSet", "RawBidSet submission",
                                         "text/xml; charset=utf-8", "SIBR reply")
        outcomes = []
        for el in root.iter("BidResult"):
            status = SubmissionStatus.ACCEPTED if el.get("status") == "VALID" else SubmissionStatus.REJECTED
            outcomes.append(BidOutcome(bid_id=el.get("resource", ""), status=status, iso_ref=el.get("bidId", ""),
                                       errors=tuple(e.text or "" for e in el.iter("Error"))))
        return self._submission_of(bids, data, outcomes, iso_ref=",".join(o.iso_ref for o in outcomes if o.iso_ref))

    def fetch_awards(self, trading_date: date, market: str = "DA") -> list[Award]:
        r = self._request("GET", "/cmri/RetrieveMarketAwards", "CMRI awards",
                       params={"tradeDate": trading_date.isoformat(), "marketType": "DAM"})
        rows = list(csv.DictReader(io.StringIO(r.text)))
        return [Award(iso="CAISO", market="DA", resource=x["RESOURCE_ID"], start=_gmt(x["START_GMT"], "", "CMRI"),
                      end=_gmt(x["END_GMT"], "", "CMRI"), mwh=Decimal(x["AWARD_MWH"])) for x in rows]

    def fetch_prices(self, trading_date: date, market: str = "DA") -> list[MarketPrices]:
        r = self._request("GET", "/oasisapi/SingleZip", f"PRC_LMP {market} {trading_date}",
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
        r = self._request("GET", "/settlements/statements", f"statements {operating_day}",
                       params={"tradeDate": operating_day.isoformat()})
        return self._zipped_statements(r, parse_statement_csv)

    def parse_prices(self, path: Path) -> list[MarketPrices]:
        return parse_prc_lmp(Path(path).read_bytes(), str(path), nodes=self.config.nodes)

    def parse_statement(self, path: Path) -> Statement:
        return parse_statement_csv(Path(path).read_bytes(), str(path))

    def local_server(self, **options: Any) -> Any:
        from kwhub.plugins.markets.caiso.sim import CaisoSim

        return CaisoSim(sc=self.config.scheduling_coordinator, **options)
