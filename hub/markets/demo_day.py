"""The demo's market day: the campus offers its surplus into a local ERCOT and checks the bill.

On one October day the campus's export at its point of interconnection (resource
``KEYSTONE_RN``, metered by the grid export channel; imports stay with the utility) is offered day-ahead from
the optimizer's curves, submitted over EWS, accepted, awarded against the local ERCOT's
prices, and settled by the ISO from the campus meter data, with one injected variance
(the ISO's settlement meter reads 0.010 MWh more in the quarter-hour of the largest export). kwhub fetches the
awards, prices and statements, shadow-settles the day and reports the variance; then the
ISO corrects one real-time price and resettles, which shows as a new statement version
with its deltas, not as a variance (the third quarter of the hour with the largest award
is corrected to $84.00). The owners of turbine gt1 (a 60/40 joint venture)
receive the day's market revenue in their October statements.

The day runs once per demo folder: when its statements are already stored, the report is
read back from the store and nothing is submitted or fetched again.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from kwhub.hub.config import KwhubConfig
from kwhub.hub.markets import store
from kwhub.hub.store import Database

MARKET_DAY = date(2026, 10, 15)
ISO = "ERCOT"
RESOURCE = "KEYSTONE_RN"
ADAPTER_ID = "ercot"
VARIANCE_MWH = Decimal("0.010")  # the ISO meter reads this much more in the quarter of the largest export
CORRECTED_PRICE = Decimal("84.00")  # the RT SPP of the third quarter of the largest award's hour, corrected


def market_config(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The demo's ERCOT adapter instance and ``[markets]`` section."""
    adapter = {"type": "markets.ercot", "id": ADAPTER_ID,
               "config": {"url": url, "qse": "QKWHUB", "resource": RESOURCE, "nodes": [RESOURCE]}}
    markets = {"adapters": {ISO: ADAPTER_ID}, "tolerance": "0.00", "gas_index": "henry_hub",
               "import_limit_mw": 150.0, "export_limit_mw": 150.0,
               "reserve": {"mode": "largest_unit"},
               "resources": [{"iso": ISO, "resource": RESOURCE, "meter": ["grid.export"], "asset": "gt1"}]}
    return adapter, markets


def start_local_ercot(port: int = 0) -> Any:
    """A local ERCOT from the registered ERCOT adapter (the hub imports no plugin module), on
    ``port`` (0: a free one)."""
    from kwhub.hub.registry import get_registry

    cls = get_registry().adapter("markets.ercot")
    return cls("demo-ercot", {"url": "http://127.0.0.1", "qse": "QKWHUB"}).local_server(port=port).start()  # type: ignore[attr-defined]


def run_market_day(cfg: KwhubConfig, db: Database, sim: Any) -> dict[str, Any]:
    """Run (or report) the demo's market day; returns what the demo prints."""
    from kwhub.hub.markets.forecast import build_day_bids
    from kwhub.hub.markets.service import (
        fetch_market_day,
        poll_submission,
        submit_bids,
        variance_for_day,
    )

    out: dict[str, Any] = {"iso": ISO, "day": MARKET_DAY.isoformat(), "resource": RESOURCE}
    if not store.load_statements(db, ISO, MARKET_DAY):
        from kwhub.hub.markets.service import meter_source

        sim.meter = meter_source(db, cfg, ISO)
        built = build_day_bids(db, cfg, ISO, MARKET_DAY, RESOURCE)
        sid, sub = submit_bids(db, cfg, ISO, built.bids)
        sub = poll_submission(db, cfg, sid)
        out["submission"] = {"id": sid, "status": sub.status.value, "mrid": sub.iso_ref}
        fetch_market_day(db, cfg, ISO, MARKET_DAY, statements=False)
        meter = sim.meter(RESOURCE, MARKET_DAY)
        sim.inject("meter_variance", resource=RESOURCE, day=MARKET_DAY, mwh=VARIANCE_MWH,
                   interval=max(range(len(meter)), key=lambda i: meter[i]))
        fetch_market_day(db, cfg, ISO, MARKET_DAY, awards=False, prices=False)
        awarded = store.load_award_hours(db, ISO, "DA", [RESOURCE], _day_start(cfg), 24)[0]
        sim.inject("price_correction", node=RESOURCE, day=MARKET_DAY, interval=4 * int(awarded.argmax()) + 2,
                   price=CORRECTED_PRICE)
        fetch_market_day(db, cfg, ISO, MARKET_DAY, awards=False)
    else:
        subs = store.list_submissions(db, ISO, MARKET_DAY)
        if subs:
            out["submission"] = {"id": subs[-1]["id"], "status": subs[-1]["status"], "mrid": subs[-1]["iso_ref"]}
    awards = store.load_award_hours(db, ISO, "DA", [RESOURCE], _day_start(cfg), 24)
    out["awarded_mwh"] = str(Decimal(int(awards.sum())) / 1_000_000)
    checks = variance_for_day(db, cfg, ISO, MARKET_DAY)
    out["statements"] = [{"id": c.statement.statement_id, "kind": c.statement.kind, "market": c.statement.market,
                          "total": str(c.statement.total()),
                          "variance_lines": [{"code": v.code, "interval": v.label, "shadow": str(v.shadow),
                                              "iso": str(v.iso), "variance": str(v.variance), "cause": v.cause}
                                             for v in c.report.lines],
                          "deltas": [{"code": d.code, "interval": d.label, "previous": str(d.previous),
                                      "current": str(d.current), "net": str(d.net)} for d in c.deltas]}
                         for c in checks]
    latest: dict[str, Decimal] = {}
    for c in checks:
        latest[c.statement.market] = c.statement.total()
    revenue = -sum(latest.values(), Decimal("0.00"))
    out["revenue"] = str(revenue)
    owners = {o.party: o.share for a in cfg.campus.assets if a.id == "gt1" for o in a.owners}
    from kwhub.core.markets.revenue import split_revenue

    out["owners"] = {p: str(v) for p, v in split_revenue(revenue, owners).items()}
    return out


def _day_start(cfg: KwhubConfig) -> int:
    from kwhub.core.timeline import local_day
    from kwhub.hub.markets.service import iso_timezone

    return local_day(MARKET_DAY, iso_timezone(cfg, ISO)).start_epoch
