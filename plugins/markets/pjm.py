"""The PJM market adapter: Data Miner LMPs, day-ahead results and statements.

* Data Miner 2 ``da_hrl_lmps`` (hourly) and ``rt_fivemin_hrl_lmps`` (5-minute,
  name unverified) CSV: placed on the UTC line by ``datetime_beginning_utc``; the
  ``datetime_beginning_ept`` column (hour beginning, Eastern prevailing) is checked
  against it, so the repeated 01:00 of the fall-back day is two different hours. Shadow
  settlement of lines 1200/1205 uses ``system_energy_price_*``, not the total LMP.
  Corrections arrive as rows with a higher ``version_nbr``; only ``row_is_current``
  rows are prices, and the store keeps every version it has seen.
* Day-ahead results: a Markets Gateway ``QueryRequest`` (namespace
  ``http://emkt.pjm.com/emkt/xml``) answered with cleared MW per hour; the element names
  of the results are unverified (the specification is portal-gated).
* Statements: kwhub's CSV layout of billing line items (``BILLING_LINE_ITEM,
  OPERATING_DAY, RESOURCE, DATETIME_BEGINNING_UTC, MINUTES, QUANTITY_MWH, PRICE, AMOUNT,
  STATEMENT_ID, STATEMENT_TYPE``; positive = charge, negative = credit).

Offers are not rendered: PJM's offer-curve element names are not public (``MARKETS.md``
section 7), so this adapter has no ``bids`` capability.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence
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
from core.markets.fixed import FixedPointError, price_units
from core.markets.hour_labels import DayGrid
from core.markets.models import Award, Statement, StatementLine
from core.markets.prices import MarketPrices
from core.timeline import zone
from hub.helpers.loopback import LoopbackServer, Reply
from hub.helpers.safe_xml import UnsafeXmlError, parse_xml

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
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    if not rows or [h.strip() for h in rows[0]] != STATEMENT_HEADER:
        raise IntervalDataError(f"not a statement header {STATEMENT_HEADER}", source=source, where="line 1")
    lines = []
    heads = set()
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        f = dict(zip(STATEMENT_HEADER, row, strict=True))
        try:
            start = datetime.fromisoformat(f["DATETIME_BEGINNING_UTC"].strip()).astimezone(UTC)
            qty, price, amount = (Decimal(f[k].strip()) for k in ("QUANTITY_MWH", "PRICE", "AMOUNT"))
        except (ValueError, InvalidOperation):
            raise IntervalDataError("DATETIME_BEGINNING_UTC, QUANTITY_MWH, PRICE, AMOUNT: bad value", source=source,
                                    where=f"line {n}") from None
        code = f["BILLING_LINE_ITEM"].strip()
        dets = {PRICE_OF.get(code, "PRICE"): price}
        if code == "1200":
            dets["DA_INJECTION"] = -qty  # quantity = withdrawal - injection
        day = date.fromisoformat(f["OPERATING_DAY"].strip())
        minutes = int(f["MINUTES"])
        grid = DayGrid(day, TZ, minutes)
        i = int(np.searchsorted(grid.starts, int(start.timestamp())))
        if i >= len(grid) or grid.starts[i] != int(start.timestamp()):
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


class PjmConfig(AdapterConfig):
    """Where Data Miner and Markets Gateway (or the local PJM) are."""

    url: str
    participant: str = "KWHUB"
    nodes: list[str] = []
    timeout_s: float = 10.0


class PjmMarket(MarketAdapter):
    """PJM: Data Miner LMPs, Markets Gateway day-ahead results, statements (shape-compatible)."""

    type_id: ClassVar[str] = "markets.pjm"
    title: ClassVar[str] = "PJM (Data Miner, Markets Gateway results; shape-compatible)"
    iso: ClassVar[str] = "PJM"
    capabilities: ClassVar[frozenset[str]] = frozenset({"awards", "prices", "statements", "local_server"})
    Config = PjmConfig
    config: PjmConfig

    def _call(self, method: str, path: str, what: str, **kw: Any) -> httpx.Response:
        try:
            r = httpx.request(method, self.config.url.rstrip("/") + path, timeout=self.config.timeout_s, **kw)
        except httpx.TimeoutException:
            raise AdapterError(f"PJM {what}: no answer within {self.config.timeout_s} s (retry later)",
                               FailureKind.TRANSIENT) from None
        except httpx.HTTPError as exc:
            raise AdapterError(f"PJM {what}: {exc}", FailureKind.TRANSIENT) from None
        if r.status_code >= 500 or "html" in r.headers.get("content-type", "").lower():
            raise AdapterError(f"PJM {what}: HTTP {r.status_code} {r.headers.get('content-type', '')} (retry later)",
                               FailureKind.TRANSIENT)
        if r.status_code >= 400:
            raise AdapterError(f"PJM {what}: HTTP {r.status_code}: {r.text[:200]}", FailureKind.CONFIGURATION)
        return r

    def check(self) -> CheckResult:
        try:
            httpx.get(self.config.url, timeout=self.config.timeout_s)
        except httpx.HTTPError as exc:
            return CheckResult.failure(FailureKind.TRANSIENT, f"{self.config.url}: {exc}")
        return CheckResult.success(f"{self.config.url} answers")

    def fetch_awards(self, trading_date: date, market: str = "DA") -> list[Award]:
        q = etree.Element(f"{{{EMKT_NS}}}QueryRequest", nsmap={None: EMKT_NS})
        etree.SubElement(q, f"{{{EMKT_NS}}}QueryMarketResults", day=trading_date.isoformat(), type="Generation")
        r = self._call("POST", "/marketsgateway/xml/query", "market results", content=etree.tostring(q),
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
        r = self._call("GET", f"/api/v1/{feed}", feed, params={"day": trading_date.isoformat()})
        return parse_lmp_csv(r.content, f"{feed} {trading_date}", self.config.nodes)

    def fetch_statements(self, operating_day: date) -> list[Statement]:
        r = self._call("GET", "/billing/statements", "statements", params={"day": operating_day.isoformat()})
        z = zipfile.ZipFile(io.BytesIO(r.content))
        return [parse_statement_csv(z.read(n), n) for n in sorted(z.namelist())]

    def parse_prices(self, path: Path) -> list[MarketPrices]:
        return parse_lmp_csv(Path(path).read_bytes(), str(path), self.config.nodes)

    def parse_statement(self, path: Path) -> Statement:
        return parse_statement_csv(Path(path).read_bytes(), str(path))

    def local_server(self, **options: Any) -> PjmSim:
        return PjmSim(participant=self.config.participant, **options)


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


@hookimpl
def kwhub_register_market_adapters(register):  # type: ignore[no-untyped-def]
    """Register the PJM adapter."""
    register(PjmMarket)
