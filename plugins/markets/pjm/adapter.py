"""The PJM adapter: Markets Gateway-style offers and day-ahead results, Data Miner prices and
statements over HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
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
from kwhub.plugins.markets.http_market import HttpMarket, HttpMarketConfig
from kwhub.plugins.markets.pjm.formats import (
    EMKT_NS,
    TZ,
    parse_lmp_csv,
    parse_statement_csv,
)
from kwhub.plugins.markets.pjm.offers import render_offers, validate_offers


class PjmConfig(HttpMarketConfig):
    """Where Data Miner and Markets Gateway (or the local PJM) are."""

    participant: str = "KWHUB"


class PjmMarket(HttpMarket):
    """PJM: Markets Gateway-style day-ahead offers and results, Data Miner LMPs, statements
    (shape-compatible; the offer XML is kwhub's own structure, see :mod:`.offers`)."""

    type_id: ClassVar[str] = "markets.pjm"
    title: ClassVar[str] = "PJM (Markets Gateway-style offers and results, Data Miner; shape-compatible)"
    iso: ClassVar[str] = "PJM"
    capabilities: ClassVar[frozenset[str]] = frozenset({"bids", "awards", "prices", "statements", "local_server"})
    Config = PjmConfig
    config: PjmConfig

    def _check_status(self, r: httpx.Response, what: str) -> None:
        """A 5xx answer or an HTML page (the gateway's maintenance page) is transient, then 4xx as every
        HTTP market."""
        if r.status_code >= 500 or "html" in r.headers.get("content-type", "").lower():
            raise AdapterError(f"PJM {what}: HTTP {r.status_code} {r.headers.get('content-type', '')} (retry later)",
                               FailureKind.TRANSIENT)
        super()._check_status(r, what)

    def render_bids(self, bids: Sequence[Bid]) -> bytes:
        """A ``SubmitRequest`` of day-ahead energy offers; a bid that breaks PJM's curve rules
        (``rules_for``: floor, $1,000 cap, points, monotonic, hour boundaries) never leaves."""
        if not bids:
            raise AdapterError("no PJM offers to render", FailureKind.CONFIGURATION)
        wrong = sorted({f"{b.bid_id} ({b.market} {b.side})" for b in bids if b.market != "DA" or b.side != "offer"})
        if wrong:
            raise AdapterError(f"bids {', '.join(wrong)}: kwhub's PJM offers carry day-ahead energy offers only",
                               FailureKind.CONFIGURATION)
        self._check_curves(bids, TZ)
        return render_offers(bids, self.config.participant)

    def validate_document(self, data: bytes) -> list[str]:
        """Problems of a ``SubmitRequest`` by kwhub's offer schema and the day's hour labels."""
        return validate_offers(data)

    def submit(self, bids: Sequence[Bid]) -> Submission:
        data, root = self._send_document(bids, "PJM SubmitRequest", "/marketsgateway/xml/submit",
                                         "offer submission", "text/xml", "PJM SubmitResponse")
        err = root.find(f"{{{EMKT_NS}}}Error")
        if err is not None:
            msg = f"{err.findtext(f'{{{EMKT_NS}}}Code')}: {err.findtext(f'{{{EMKT_NS}}}Message')}"
            return self._submission_of(bids, data, (), messages=(msg,))
        tx = (root.findtext(f"{{{EMKT_NS}}}Success/{{{EMKT_NS}}}TransactionID") or "").strip()
        outcomes = tuple(
            BidOutcome(bid_id=el.get("offerId", ""), iso_ref=tx if el.get("status") == "Accepted" else "",
                       status=SubmissionStatus.ACCEPTED if el.get("status") == "Accepted" else SubmissionStatus.REJECTED,
                       errors=tuple(e.text or "" for e in el.iterfind(f"{{{EMKT_NS}}}Error")))
            for el in root.iterfind(f"{{{EMKT_NS}}}OfferResult"))
        return self._submission_of(bids, data, outcomes, iso_ref=tx)

    def fetch_awards(self, trading_date: date, market: str = "DA") -> list[Award]:
        q = etree.Element(f"{{{EMKT_NS}}}QueryRequest", nsmap={None: EMKT_NS})
        etree.SubElement(q, f"{{{EMKT_NS}}}QueryMarketResults", day=trading_date.isoformat(), type="Generation")
        r = self._request("POST", "/marketsgateway/xml/query", "market results", content=etree.tostring(q),
                       headers={"Content-Type": "text/xml"})
        try:
            root = parse_xml(r.content, "PJM market results")
        except UnsafeXmlError as exc:
            raise AdapterError(str(exc), FailureKind.TRANSIENT) from None
        out = []
        for res in root.iter(f"{{{EMKT_NS}}}MarketResults"):
            loc = res.get("location", "")
            for h in res.iter(f"{{{EMKT_NS}}}MarketResultsHourly"):
                start = datetime.fromisoformat(h.get("utc", "")).astimezone(UTC)
                out.append(Award(iso="PJM", market="DA", resource=loc, start=start, end=start + timedelta(hours=1),
                                 mwh=Decimal(h.findtext(f"{{{EMKT_NS}}}ClearedMW") or "0")))
        return out

    def fetch_prices(self, trading_date: date, market: str = "DA") -> list[MarketPrices]:
        feed = "da_hrl_lmps" if market == "DA" else "rt_fivemin_hrl_lmps"
        r = self._request("GET", f"/api/v1/{feed}", feed, params={"day": trading_date.isoformat()})
        return parse_lmp_csv(r.content, f"{feed} {trading_date}", self.config.nodes)

    def fetch_statements(self, operating_day: date) -> list[Statement]:
        r = self._request("GET", "/billing/statements", "statements", params={"day": operating_day.isoformat()})
        return self._zipped_statements(r, parse_statement_csv)

    def parse_prices(self, path: Path) -> list[MarketPrices]:
        return parse_lmp_csv(Path(path).read_bytes(), str(path), self.config.nodes)

    def parse_statement(self, path: Path) -> Statement:
        return parse_statement_csv(Path(path).read_bytes(), str(path))

    def local_server(self, **options: Any) -> Any:
        from kwhub.plugins.markets.pjm.sim import PjmSim

        return PjmSim(participant=self.config.participant, **options)
