"""A local CAISO on 127.0.0.1 (SIBR, CMRI, OASIS SingleZip with throttling, statements)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from lxml import etree

from kwhub.core.markets.curve_rules import check_bid
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid
from kwhub.core.markets.rules import rules_for
from kwhub.hub.helpers.loopback import Reply
from kwhub.hub.helpers.safe_xml import parse_xml
from kwhub.plugins.markets.caiso.formats import (
    HTML,
    RAW_NS,
    SOAP_NS,
    STATEMENT_HEADER,
    TZ,
    parse_raw_bid_set,
    render_prc_lmp,
)
from kwhub.plugins.markets.local_market import LocalMarket, MeterSource, PriceSource, zip_reply


class CaisoSim(LocalMarket):
    """A local CAISO: SIBR submit (curve rules), CMRI awards (cleared against the DA LMP),
    OASIS ``SingleZip`` PRC_LMP (HTML-throttling fault), and statements (6011, 6475) from the
    meter data it is given (MWh per 5 minutes), with price corrections as resettlements."""

    def __init__(self, sc: str = "SCKWHUB", prices: PriceSource | None = None, meter: MeterSource | None = None,
                 port: int = 0) -> None:
        super().__init__(TZ, Decimal("40.00"), prices, meter, port)
        self.sc = sc
        self.bids: list[Bid] = []
        self.throttle_next = False

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
                meter = self.meter_of(r, day, len(grid_5))
                rtd = self.price_list(r, day, "RT", latest)
                for i, s in enumerate(grid_5.starts.tolist()):
                    expected = da.get((r, s - s % 3600), Decimal(0)) / 12
                    qty = -(meter[i] - expected)
                    w.writerow([day, "6475", r, _iso(s), _iso(s + 300), qty.quantize(Decimal("0.000001")), rtd[i],
                                (qty * rtd[i]).quantize(Decimal("0.01"), ROUND_HALF_UP), sid, kind])
            return buf.getvalue().encode()

        return self.statement_files(self.sc, day, one)

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
                found = check_bid(b, rules_for("CAISO", "DA"), TZ)
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
            return zip_reply({f"{day:%Y%m%d}_PRC_LMP_{market}.csv":
                              render_prc_lmp(day, market, {n: self.price_list(n, day, market) for n in nodes})},
                             "application/x-zip-compressed")
        if path == "/settlements/statements":
            return zip_reply(self.statements(day))
        return Reply(404, b"not found")


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")
