"""A local ERCOT on 127.0.0.1: EWS over SOAP, the public price reports and statements.

It plays the ISO side of the bid-to-bill chain for tests, the demo and
``kwhub market-sim ERCOT``:

* ``POST /ews`` (SOAP 1.1, ``RequestMessage``): ``create BidSet`` checks every offer
  against ERCOT's curve rules of the request's ``MarketType`` (DAM, or RTM with the
  RTSWCAP of $2,000 for real-time offers; a real-time offer is never cleared in the DAM) and answers each with ``SUBMITTED`` and its mRID, or
  ``REJECTED`` with the broken rule per hour; ``get BidSet`` reports ``ACCEPTED``;
  ``get AwardSet`` clears the accepted offers against the day-ahead SPP (an offer is
  awarded the MW of its points priced at or below the SPP), or with ``MarketType`` RTM
  dispatches the accepted real-time offers per 15 minutes against the RT SPPs;
* ``GET /reports/NP4-190-CD`` and ``/reports/NP6-905-CD?deliveryDate=YYYY-MM-DD``: the
  day's DAM and RTM SPPs as ERCOT's CSV reports (the latest price version);
* ``GET /reports/statements?operatingDay=YYYY-MM-DD``: a zip with every statement
  version of the day (DAM and RTM initial; an RTM resettlement after a price correction)
  and its extract, computed from the campus meter data with Decimal arithmetic of its own.

Faults (:meth:`ErcotSim.inject`): ``reject`` (the next BidSet is refused as a whole),
``reject_bid`` (one offer is refused, the rest accepted: a partial acceptance),
``timeout`` (the next request is answered after a delay), ``html`` (the next request gets
HTTP 200 with an HTML error page), ``meter_variance`` (the ISO's settlement meter reads
differently in one interval), ``price_correction`` (an RT SPP is corrected after the
initial statement, which yields a resettlement).
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from kwhub.core.markets.curve_rules import check_bid
from kwhub.core.markets.hour_labels import DayGrid
from kwhub.core.markets.models import Award, Bid
from kwhub.core.markets.rules import rules_for
from kwhub.hub.helpers.loopback import LoopbackServer, Reply
from kwhub.hub.helpers.safe_xml import UnsafeXmlError
from kwhub.plugins.markets.ercot import ews
from kwhub.plugins.markets.ercot.reports import render_spp_csv
from kwhub.plugins.markets.ercot.statements import render_extract, render_statement

MeterSource = Callable[[str, date], Sequence[Decimal] | None]  # resource, day -> MWh per 15 minutes
PriceSource = Callable[[str, date, str], Sequence[Decimal]]  # node, day, "DA"/"RT" -> $/MWh per interval

HTML_ERROR = (b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
              b"<body><h1>The market system is in maintenance</h1></body></html>")


def default_prices(node: str, day: date, market: str, tz: str = "America/Chicago") -> list[Decimal]:
    """Deterministic round prices: an evening peak for DA, RT swinging around it."""
    grid = DayGrid(day, tz, 60 if market == "DA" else 15)
    out = []
    for i in range(len(grid)):
        he = int(grid.hour_ending[i])
        base = Decimal(30 + (25 if 17 <= he <= 21 else 10 if 8 <= he <= 16 else 0))
        if market == "RT":
            base += Decimal((5, -10, 20, -5)[(int(grid.interval_in_hour[i]) - 1) % 4] + (day.day % 3) * 5)
        out.append(base.quantize(Decimal("0.01")))
    return out


@dataclass
class _Submitted:
    bid: Bid
    mrid: str
    status: str
    offer_type: str


@dataclass
class ErcotSim:
    """The local ERCOT (see the module doc); ``start()`` it and use ``url``."""

    tz: str = "America/Chicago"
    qse: str = "QKWHUB"
    meter: MeterSource | None = None
    prices: PriceSource | None = None
    port: int = 0
    url: str = ""
    requests: list[str] = field(default_factory=list)
    _faults: dict[str, Any] = field(default_factory=dict)
    _subs: dict[str, _Submitted] = field(default_factory=dict)
    _corrections: dict[tuple[str, date], dict[int, Decimal]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None

    # ------------------------------------------------------------------ control

    def start(self) -> ErcotSim:
        self._server = LoopbackServer(self._handle, port=self.port).start()
        self.port = self._server.port
        self.url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> ErcotSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, fault: str, **params: Any) -> None:
        """Arm a fault: ``reject``, ``reject_bid(bid_id=)``, ``timeout(seconds=)``, ``html``,
        ``meter_variance(resource=, day=, interval=, mwh=)``,
        ``price_correction(node=, day=, interval=, price=)``."""
        with self._lock:
            if fault == "price_correction":
                self._corrections.setdefault((params["node"], params["day"]), {})[int(params["interval"])] = \
                    Decimal(str(params["price"]))
            elif fault == "meter_variance":
                self._faults.setdefault("meter_variance", {})[(params["resource"], params["day"],
                                                               int(params["interval"]))] = Decimal(str(params["mwh"]))
            elif fault in ("reject", "html", "timeout", "reject_bid"):
                self._faults[fault] = params or True
            else:
                raise ValueError(f"unknown fault {fault!r}")

    def _take(self, fault: str) -> Any:
        with self._lock:
            return self._faults.pop(fault, None)

    # ------------------------------------------------------------------ data

    def price_list(self, node: str, day: date, market: str, version: str = "latest") -> list[Decimal]:
        values = list((self.prices or (lambda n, d, m: default_prices(n, d, m, self.tz)))(node, day, market))
        if market == "RT" and version == "latest":
            for i, p in self._corrections.get((node, day), {}).items():
                values[i] = p
        return values

    def _meter(self, resource: str, day: date) -> list[Decimal]:
        n = len(DayGrid(day, self.tz, 15))
        got = self.meter(resource, day) if self.meter is not None else None
        vals = [Decimal(str(v)) for v in got] if got is not None else [Decimal(0)] * n
        if len(vals) != n:
            raise ValueError(f"meter data of {resource} on {day}: {len(vals)} values for {n} quarter-hours")
        for (res, d, i), delta in (self._faults.get("meter_variance") or {}).items():
            if res == resource and d == day:
                vals[i] += delta
        return vals

    def awards_of(self, day: date) -> list[Award]:
        """Clear the accepted offers of ``day`` against its DA SPPs."""
        grid = DayGrid(day, self.tz, 60)
        index = {int(s): i for i, s in enumerate(grid.starts.tolist())}
        out: list[Award] = []
        for sub in self._subs.values():
            if sub.bid.trading_date != day or sub.status != "ACCEPTED" or sub.bid.market != "DA":
                continue
            spp = self.price_list(sub.bid.resource, day, "DA")
            for curve in sub.bid.curves:
                i = index[int(curve.start.timestamp())]
                mw = max((p.mw for p in curve.points if p.price <= spp[i]), default=Decimal(0))
                out.append(Award(iso="ERCOT", market="DA", resource=sub.bid.resource, start=curve.start, end=curve.end,
                                 mwh=mw, bid_id=sub.bid.bid_id, price=spp[i], iso_ref=sub.mrid, label=grid.label(i)))
        return out

    def rt_dispatch_of(self, day: date) -> list[Award]:
        """Dispatch the accepted real-time offers of ``day`` per 15 minutes against the RT SPPs:
        each quarter-hour of an offered hour runs at the MW of its points priced at or below
        that quarter's SPP (MWh = MW / 4)."""
        grid = DayGrid(day, self.tz, 15)
        index = {int(s): i for i, s in enumerate(grid.starts.tolist())}
        out: list[Award] = []
        for sub in self._subs.values():
            if sub.bid.trading_date != day or sub.status != "ACCEPTED" or sub.bid.market != "RT":
                continue
            spp = self.price_list(sub.bid.resource, day, "RT")
            for curve in sub.bid.curves:
                for s in range(int(curve.start.timestamp()), int(curve.end.timestamp()), 900):
                    i = index[s]
                    mw = max((p.mw for p in curve.points if p.price <= spp[i]), default=Decimal(0))
                    out.append(Award(iso="ERCOT", market="RT", resource=sub.bid.resource,
                                     start=curve.start + timedelta(seconds=s - int(curve.start.timestamp())),
                                     end=curve.start + timedelta(seconds=s + 900 - int(curve.start.timestamp())),
                                     mwh=mw / 4, bid_id=sub.bid.bid_id, price=spp[i], iso_ref=sub.mrid,
                                     label=grid.label(i)))
        return out

    def statements_zip(self, day: date) -> bytes:
        """Every statement version of ``day`` with its extract (see the module doc)."""
        awards = self.awards_of(day)
        resources = sorted({a.resource for a in awards} | {  # real-time-only resources are settled too
            s.bid.resource for s in self._subs.values() if s.bid.trading_date == day and s.status == "ACCEPTED"})
        grid_h, grid_q = DayGrid(day, self.tz, 60), DayGrid(day, self.tz, 15)
        cent = Decimal("0.01")

        def r2(x: Decimal) -> Decimal:
            return x.quantize(cent, rounding=ROUND_HALF_UP)

        daes: dict[str, list[Decimal]] = {r: [Decimal(0)] * len(grid_h) for r in resources}
        hour_of = {int(s): i for i, s in enumerate(grid_h.starts.tolist())}
        for a in awards:
            daes[a.resource][hour_of[int(a.start.timestamp())]] += a.mwh
        files: dict[str, bytes] = {}
        batch = day + timedelta(days=2)
        dam_amounts = {"DAESAMT": [Decimal("0.00")] * len(grid_h), "DAEPAMT": [Decimal("0.00")] * len(grid_h)}
        dam_rows: dict[tuple[str, str], list[Decimal]] = {}
        for r in resources:
            spp = self.price_list(r, day, "DA")
            amt = [r2(-spp[i] * daes[r][i]) for i in range(len(grid_h))]
            dam_amounts["DAESAMT"] = [a + b for a, b in zip(dam_amounts["DAESAMT"], amt, strict=True)]
            dam_rows[("DAESAMT", r)] = amt
            dam_rows[("DAEPAMT", r)] = [Decimal("0.00")] * len(grid_h)
            dam_rows[("DASPP", r)] = spp
            dam_rows[("DAES", r)] = daes[r]
            dam_rows[("DAEP", r)] = [Decimal(0)] * len(grid_h)
        sid = f"{self.qse}-DAM-{day:%Y%m%d}-INITIAL"
        files[f"{sid}.xml"] = render_statement(day, self.tz, "initial", sid, self.qse, "DAM", dam_amounts, batch)
        files[f"{sid}.extract.csv"] = render_extract(day, self.tz, self.qse, dam_rows)

        def rtm(version: str) -> tuple[dict[str, list[Decimal]], dict[tuple[str, str], list[Decimal]]]:
            total = [Decimal("0.00")] * len(grid_q)
            rows: dict[tuple[str, str], list[Decimal]] = {}
            for r in resources:
                price = self.price_list(r, day, "RT", version)
                meter = self._meter(r, day)
                hour = [hour_of[s - s % 3600] for s in grid_q.starts.tolist()]
                amt = [r2(-price[i] * (meter[i] - daes[r][hour[i]] / 4)) for i in range(len(grid_q))]
                total = [a + b for a, b in zip(total, amt, strict=True)]
                rows[("RTEIAMT", r)] = amt
                rows[("RTSPP", r)] = price
                rows[("RTMG", r)] = meter
            return {"RTEIAMT": total}, rows

        amounts, rows = rtm("original")
        sid = f"{self.qse}-RTM-{day:%Y%m%d}-INITIAL"
        files[f"{sid}.xml"] = render_statement(day, self.tz, "initial", sid, self.qse, "RTM", amounts, batch + timedelta(days=3))
        files[f"{sid}.extract.csv"] = render_extract(day, self.tz, self.qse, rows)
        if any(node in resources for node, d in self._corrections if d == day):
            first_total = sum(amounts["RTEIAMT"], Decimal("0.00"))
            amounts, rows = rtm("latest")
            sid = f"{self.qse}-RTM-{day:%Y%m%d}-RESETTLEMENT"
            files[f"{sid}.xml"] = render_statement(day, self.tz, "resettlement", sid, self.qse, "RTM", amounts,
                                                   batch + timedelta(days=10), history=[("initial", first_total)])
            files[f"{sid}.extract.csv"] = render_extract(day, self.tz, self.qse, rows)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, body in files.items():
                z.writestr(name, body)
        return buf.getvalue()

    # ------------------------------------------------------------------ HTTP

    def _handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                body: bytes) -> Reply:
        self.requests.append(f"{method} {path}")
        delay = self._take("timeout")
        if delay:
            time.sleep(float(delay.get("seconds", 5)) if isinstance(delay, dict) else 5.0)
        if self._take("html"):
            return Reply(200, HTML_ERROR, "text/html; charset=utf-8")
        if method == "POST" and path == "/ews":
            return self._ews(body)
        if method == "GET" and path.startswith("/reports/"):
            try:
                day = date.fromisoformat((query.get("deliveryDate") or query.get("operatingDay") or [""])[0])
            except ValueError:
                return Reply(400, b"deliveryDate / operatingDay must be YYYY-MM-DD")
            report = path[len("/reports/"):]
            nodes = sorted({s.bid.resource for s in self._subs.values()}) or ["KWHUB_RN"]
            if report == "NP4-190-CD":
                return Reply(200, render_spp_csv(day, self.tz, "DA", {n: self.price_list(n, day, "DA") for n in nodes}),
                             "text/csv")
            if report == "NP6-905-CD":
                return Reply(200, render_spp_csv(day, self.tz, "RT", {n: self.price_list(n, day, "RT") for n in nodes}),
                             "text/csv")
            if report == "statements":
                return Reply(200, self.statements_zip(day), "application/zip")
        return Reply(404, f"no such endpoint: {method} {path}".encode())

    def _reply(self, noun: str, code: str, errors: Sequence[str] = (), payload: Sequence[Any] = ()) -> Reply:
        msg = ews.render_message("ResponseMessage", "reply", noun, "ERCOT", reply_code=code, errors=errors,
                                 payload=payload)
        return Reply(200, ews.soap_wrap(msg), "text/xml; charset=utf-8")

    def _ews(self, body: bytes) -> Reply:
        try:
            env = ews.parse_message(ews.soap_unwrap(body, "request"), "request")
        except (ews.EwsError, UnsafeXmlError) as exc:
            return self._reply("unknown", "FATAL", [str(exc)])
        if env.verb == "create" and env.noun == "BidSet":
            return self._create(env)
        if env.verb == "get" and env.noun == "BidSet":
            return self._status(env)
        if env.verb == "get" and env.noun == "AwardSet" and env.trading_date is not None:
            awards = self.rt_dispatch_of(env.trading_date) if env.market_type == "RTM" else \
                self.awards_of(env.trading_date)
            aset = ews.render_awardset(awards, qse=self.qse, tz=self.tz, trading_date=env.trading_date)
            return self._reply("AwardSet", "OK", payload=[aset])
        return self._reply(env.noun, "ERROR", [f"verb {env.verb!r} on {env.noun!r} is not supported here"])

    def _create(self, env: ews.Envelope) -> Reply:
        problems = ews.validate_message(ews.render_message("RequestMessage", env.verb, env.noun, env.source,
                                                           payload=[_copy(p) for p in env.payload]))
        if problems or not env.payload:
            return self._reply("BidSet", "ERROR", problems or ["the request carries no BidSet"])
        if self._take("reject"):
            return self._reply("BidSet", "ERROR", ["BidSet rejected: the market system refused the submission"])
        reject_one = self._take("reject_bid")
        bs = env.payload[0]
        market = "RT" if env.market_type == "RTM" else "DA"
        bids = ews.parse_bidset(bs, "request", market)
        offers = [o for o in bs if o.tag in (ews.E + "ThreePartOffer", ews.E + "EnergyOnlyOffer")]
        accepted = 0
        for bid, offer in zip(bids, offers, strict=True):
            kind = "TPO" if offer.tag.endswith("ThreePartOffer") else "EOO"
            mrid = ews.mrid(self.qse, bid.trading_date, kind if market == "DA" else f"RT{kind}", bid.resource,
                            bid.bid_id)
            found = check_bid(bid, rules_for("ERCOT", market), self.tz)
            errors = [(v.where, f"rule {v.rule}: {v.message}") for v in found]
            if isinstance(reject_one, dict) and reject_one.get("bid_id") == bid.bid_id:
                errors.append(("", "offer refused by the market system (injected fault)"))
            status = "REJECTED" if errors else "SUBMITTED"
            ews.set_outcome(offer, status, mrid, errors)
            if not errors:
                accepted += 1
                with self._lock:
                    self._subs[mrid] = _Submitted(bid, mrid, "SUBMITTED", kind)
        return self._reply("BidSet", "OK" if accepted else "ERROR", payload=[bs])

    def _status(self, env: ews.Envelope) -> Reply:
        with self._lock:
            for sub in self._subs.values():
                if sub.status == "SUBMITTED":
                    sub.status = "ACCEPTED"
            chosen = [s for s in self._subs.values() if not env.ids or s.mrid in env.ids]
        if not chosen:
            return self._reply("BidSet", "ERROR", ["no such submission"])
        day = chosen[0].bid.trading_date
        bids = [s.bid for s in chosen if s.bid.trading_date == day]
        bs = ews.render_bidset(bids, qse=self.qse, tz=self.tz, offer_type="ThreePartOffer"
                               if chosen[0].offer_type == "TPO" else "EnergyOnlyOffer")
        offers = [o for o in bs if o.tag in (ews.E + "ThreePartOffer", ews.E + "EnergyOnlyOffer")]
        for sub, offer in zip([s for s in chosen if s.bid.trading_date == day], offers, strict=True):
            ews.set_outcome(offer, sub.status, sub.mrid, [])
        return self._reply("BidSet", "OK", payload=[bs])


def _copy(el: Any) -> Any:
    from copy import deepcopy

    return deepcopy(el)
