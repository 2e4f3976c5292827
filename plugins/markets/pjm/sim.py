"""A local PJM on 127.0.0.1 (Markets Gateway-style offers and results, Data Miner feeds, statements).

``POST /marketsgateway/xml/submit`` takes a ``SubmitRequest`` of day-ahead energy offers
(:mod:`kwhub.plugins.markets.pjm.offers`): a document that breaks the offer schema or the hour
labels is refused as a whole (``Error``); otherwise each offer is checked against PJM's curve
rules (``rules_for("PJM", "DA")``: floor, the $1,000 cap, at most 10 points, monotonic
price and MW, one curve per hour of the Eastern operating day) and accepted or rejected with the
rules it breaks. An accepted offer clears, per hour, the MW of its points priced at or below the
hour's day-ahead price (the ``cleared`` given to the server take precedence for their
resource and day).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from lxml import etree

from kwhub.core.markets.curve_rules import check_bid
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Bid
from kwhub.core.markets.rules import rules_for
from kwhub.hub.helpers.loopback import Reply
from kwhub.hub.helpers.safe_xml import parse_xml
from kwhub.plugins.markets.local_market import LocalMarket, MeterSource, PriceSource, zip_reply
from kwhub.plugins.markets.pjm.formats import (
    EMKT_NS,
    STATEMENT_HEADER,
    TZ,
    render_lmp_csv,
)
from kwhub.plugins.markets.pjm.offers import parse_offers, render_response, validate_offers


class PjmSim(LocalMarket):
    """A local PJM: Data Miner LMP feeds, Markets Gateway results (the cleared MW it is
    given), and statements (1200, 1205) from its meter data, with corrections."""

    def __init__(self, participant: str = "KWHUB", prices: PriceSource | None = None,
                 meter: MeterSource | None = None,
                 cleared: dict[tuple[str, date], Sequence[Decimal]] | None = None, port: int = 0) -> None:
        super().__init__(TZ, Decimal("30.00"), prices, meter, port)
        self.participant = participant
        self.cleared = cleared or {}
        self.offers: list[Bid] = []  # accepted day-ahead offers
        self.transactions = 0

    def cleared_of(self, day: date) -> dict[tuple[str, date], list[Decimal]]:
        """MW cleared per hour of ``day`` per resource: the given ``cleared``, else the accepted
        offers against the day-ahead price (the largest MW of the points priced at or below it)."""
        out = {k: list(v) for k, v in self.cleared.items() if k[1] == day}
        grid = DayGrid(day, TZ, 60)
        index = {int(s): i for i, s in enumerate(grid.starts.tolist())}
        for b in self.offers:
            if b.trading_date != day or (b.resource, day) in self.cleared:
                continue
            price = self.price_list(b.resource, day, "DA")
            mw = out.setdefault((b.resource, day), [Decimal(0)] * len(grid))
            for c in b.curves:
                i = index[int(c.start.timestamp())]
                mw[i] += max((p.mw for p in c.points if p.price <= price[i]), default=Decimal(0))
        return out

    def statements(self, day: date) -> dict[str, bytes]:
        grid_h, grid_5 = DayGrid(day, TZ, 60), DayGrid(day, TZ, 5)

        def one(kind: str, latest: bool) -> bytes:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(STATEMENT_HEADER)
            sid = f"{self.participant}-{day:%Y%m%d}-{kind}"
            for (res, _), mw in sorted(self.cleared_of(day).items()):
                da = self.price_list(res, day, "DA")
                for i, s in enumerate(grid_h.starts.tolist()):
                    qty = -mw[i]
                    w.writerow(["1200", day, res, _iso(s), 60, qty, da[i],
                                (qty * da[i]).quantize(Decimal("0.01"), ROUND_HALF_UP), sid, kind])
                rt = self.price_list(res, day, "RT", latest)
                meter = self.meter_of(res, day, len(grid_5))
                for i, s in enumerate(grid_5.starts.tolist()):
                    qty = -meter[i] + mw[(s - int(grid_h.starts[0])) // 3600] / 12
                    w.writerow(["1205", day, res, _iso(s), 5, qty.quantize(Decimal("0.000001")), rt[i],
                                (qty * rt[i]).quantize(Decimal("0.01"), ROUND_HALF_UP), sid, kind])
            return buf.getvalue().encode()

        return self.statement_files(self.participant, day, one)

    def _handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                body: bytes) -> Reply:
        if path == "/marketsgateway/xml/submit":
            problems = validate_offers(body)
            if problems:
                return Reply(200, render_response([], "", "; ".join(problems[:5])), "text/xml")
            results = []
            for b in parse_offers(body):
                found = [str(v) for v in check_bid(b, rules_for("PJM", b.market), TZ)]
                results.append((b, found))
                if not found:
                    self.offers.append(b)
            self.transactions += 1
            return Reply(200, render_response(results, f"{self.participant}-{self.transactions:06d}"), "text/xml")
        if path == "/marketsgateway/xml/query":
            q = parse_xml(body, "QueryRequest")
            req = q.find(f"{{{EMKT_NS}}}QueryMarketResults")
            day = date.fromisoformat(req.get("day", "") if req is not None else "")
            root = etree.Element(f"{{{EMKT_NS}}}QueryResponse", nsmap={None: EMKT_NS})
            grid = DayGrid(day, TZ, 60)
            for (res, _), mw in sorted(self.cleared_of(day).items()):
                mr = etree.SubElement(root, f"{{{EMKT_NS}}}MarketResults", location=res, day=day.isoformat())
                for i, s in enumerate(grid.starts.tolist()):
                    h = etree.SubElement(mr, f"{{{EMKT_NS}}}MarketResultsHourly", hour=str(int(grid.hour_ending[i])),
                                         isDuplicateHour="true" if grid.repeated[i] else "false",
                                         utc=datetime.fromtimestamp(s, tz=UTC).isoformat())
                    etree.SubElement(h, f"{{{EMKT_NS}}}ClearedMW").text = str(mw[i])
            return Reply(200, etree.tostring(root), "text/xml")
        day = date.fromisoformat((query.get("day") or ["2000-01-01"])[0])
        nodes = sorted({r for r, _ in self.cleared} | {b.resource for b in self.offers}) or ["WESTERN HUB"]
        if path == "/api/v1/da_hrl_lmps":
            return Reply(200, render_lmp_csv(day, "DA", {n: self.price_list(n, day, "DA") for n in nodes}), "text/csv")
        if path == "/api/v1/rt_fivemin_hrl_lmps":
            version = 2 if any(d == day for _, d in self.corrections) else 1
            return Reply(200, render_lmp_csv(day, "RT", {n: self.price_list(n, day, "RT") for n in nodes}, version),
                         "text/csv")
        if path == "/billing/statements":
            return zip_reply(self.statements(day))
        return Reply(404, b"not found")


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()
