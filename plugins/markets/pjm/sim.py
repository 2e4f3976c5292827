"""A local PJM on 127.0.0.1 (Data Miner feeds, Markets Gateway results, statements)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from lxml import etree

from kwhub.core.markets.hour_labels import DayGrid
from kwhub.hub.helpers.loopback import LoopbackServer, Reply
from kwhub.hub.helpers.safe_xml import parse_xml
from kwhub.plugins.markets.pjm.formats import (
    EMKT_NS,
    STATEMENT_HEADER,
    TZ,
    render_lmp_csv,
)


class PjmSim:
    """A local PJM: Data Miner LMP feeds, Markets Gateway results (the cleared MW it is
    given), and statements (1200, 1205) from its meter data, with corrections."""

    def __init__(self, participant: str = "KWHUB", prices: Callable[..., Sequence[Decimal]] | None = None,
                 meter: Callable[[str, date], Sequence[Decimal]] | None = None,
                 cleared: dict[tuple[str, date], Sequence[Decimal]] | None = None, port: int = 0) -> None:
        self.participant = participant
        self.prices = prices or (lambda node, day, market: [Decimal("30.00")] * len(DayGrid(day, TZ, 60 if market == "DA" else 5)))
        self.meter = meter
        self.cleared = cleared or {}
        self.corrections: dict[tuple[str, date], dict[int, Decimal]] = {}
        self.port = port
        self.url = ""
        self._server: LoopbackServer | None = None

    def start(self) -> PjmSim:
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

    def statements(self, day: date) -> dict[str, bytes]:
        grid_h, grid_5 = DayGrid(day, TZ, 60), DayGrid(day, TZ, 5)

        def one(kind: str, latest: bool) -> bytes:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(STATEMENT_HEADER)
            sid = f"{self.participant}-{day:%Y%m%d}-{kind}"
            for (res, d), mw in sorted(self.cleared.items()):
                if d != day:
                    continue
                da = self.price_list(res, day, "DA")
                for i, s in enumerate(grid_h.starts.tolist()):
                    qty = -mw[i]
                    w.writerow(["1200", day, res, _iso(s), 60, qty, da[i],
                                (qty * da[i]).quantize(Decimal("0.01"), ROUND_HALF_UP), sid, kind])
                rt = self.price_list(res, day, "RT", latest)
                meter = list(self.meter(res, day)) if self.meter else [Decimal(0)] * len(grid_5)
                for i, s in enumerate(grid_5.starts.tolist()):
                    qty = -meter[i] + mw[(s - int(grid_h.starts[0])) // 3600] / 12
                    w.writerow(["1205", day, res, _iso(s), 5, qty.quantize(Decimal("0.000001")), rt[i],
                                (qty * rt[i]).quantize(Decimal("0.01"), ROUND_HALF_UP), sid, kind])
            return buf.getvalue().encode()

        out = {f"{self.participant}-{day:%Y%m%d}-INITIAL.csv": one("INITIAL", False)}
        if any(d == day for _, d in self.corrections):
            out[f"{self.participant}-{day:%Y%m%d}-RESETTLEMENT.csv"] = one("RESETTLEMENT", True)
        return out

    def _handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                body: bytes) -> Reply:
        if path == "/marketsgateway/xml/query":
            q = parse_xml(body, "QueryRequest")
            req = q.find(f"{{{EMKT_NS}}}QueryMarketResults")
            day = date.fromisoformat(req.get("day", "") if req is not None else "")
            root = etree.Element(f"{{{EMKT_NS}}}QueryResponse", nsmap={None: EMKT_NS})
            grid = DayGrid(day, TZ, 60)
            for (res, d), mw in sorted(self.cleared.items()):
                if d != day:
                    continue
                mr = etree.SubElement(root, f"{{{EMKT_NS}}}MarketResults", location=res, day=day.isoformat())
                for i, s in enumerate(grid.starts.tolist()):
                    h = etree.SubElement(mr, f"{{{EMKT_NS}}}MarketResultsHourly", hour=str(int(grid.hour_ending[i])),
                                         isDuplicateHour="true" if grid.repeated[i] else "false",
                                         utc=datetime.fromtimestamp(s, tz=UTC).isoformat())
                    etree.SubElement(h, f"{{{EMKT_NS}}}ClearedMW").text = str(mw[i])
            return Reply(200, etree.tostring(root), "text/xml")
        day = date.fromisoformat((query.get("day") or ["2000-01-01"])[0])
        nodes = sorted({r for r, _ in self.cleared}) or ["WESTERN HUB"]
        if path == "/api/v1/da_hrl_lmps":
            return Reply(200, render_lmp_csv(day, "DA", {n: self.price_list(n, day, "DA") for n in nodes}), "text/csv")
        if path == "/api/v1/rt_fivemin_hrl_lmps":
            version = 2 if any(d == day for _, d in self.corrections) else 1
            return Reply(200, render_lmp_csv(day, "RT", {n: self.price_list(n, day, "RT") for n in nodes}, version),
                         "text/csv")
        if path == "/billing/statements":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                for name, data in self.statements(day).items():
                    z.writestr(name, data)
            return Reply(200, buf.getvalue(), "application/zip")
        return Reply(404, b"not found")


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()
