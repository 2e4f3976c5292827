"""Benchmark: server-side render time of each dashboard page with a campus-year settled in the store.

Setup (not timed): the campus-year of ``bench/settle_campus_year.py`` (its builder and cached
store: 1,000 tenant sub-meter channels x 35,040 quarter-hours of 2026 plus the UTC edge day,
20 tenants with TOU energy + demand + a shared fixed fee), copied, with a gas turbine, solar
and a grid tie that supply the campus in every interval; the 12 months settled and issued
(240 runs and invoices, each queued for delivery as JSON). ``--work DIR`` keeps the built
store in DIR and reuses it next time; ``--small`` is the old scaled-down year (``--tenants``
x ``--meters`` channels) for a quick look.

Timed: ``--reps`` renders of each page through an in-process client signed in as an
operator (and the campus and invoice pages as a tenant), after 3 untimed renders; every
request reads its session from the database. The campus figures (energy flow and emissions
per party) are computed by the dashboard's warmer when a run is issued (``kwhub serve`` runs
it in a thread); the emissions page's report is cached per set of issued runs. Extra rows:
- "first render after an issue": before each render the figures are dropped and recomputed
  as the warmer does after an issue (untimed; its own time is printed as "warm-up"), then
  the fragment is rendered for the first time on them;
- "first render after an issue, warmer thread recomputing": as ``kwhub serve`` runs it, the
  figures are marked out of date and the warmer's thread recomputes them while the fragment
  is rendered (it shows the previous figures, marked as updating);
- "(uncached, computed by the request)": the figures dropped and not recomputed, so the
  request computes them itself (what a page pays without the warmer; not a target);
- the emissions page of a past period with its cache emptied (its first view computes the
  report), and of the latest period after an issue (the warmer made the report with the figures).
Peer: the same work as two pages (the invoice list through the API's own function, and the
flow fragment from the warmer's figures) served by a bare Starlette route: no session, no
dependency injection, no template. The difference is what the dashboard's layers cost.
Prints p50/p95 per page in milliseconds; the last line is one JSON object.
Targets (issue 17): every page under 200 ms, the energy-flow fragment under 50 ms.

    python bench/ui_pages.py [--reps 30] [--work DIR] [--small [--tenants 10] [--meters 5]]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

YEAR = 2026


def build_year(folder: Path) -> tuple[object, dict[str, str], list[str]]:
    """The campus-year of ``bench/settle_campus_year.py`` (its cached store, copied), settled and issued.

    Its 1,000 tenant channels (20 tenants x 50, TOU energy + demand + a shared fixed fee) get a
    gas turbine, solar and a grid tie that together supply the campus in every interval, so the
    energy flow has sources; each invoice is queued for delivery as JSON. The hub (open), keys
    by role, and the invoice ids."""
    import shutil

    import tomli_w

    from bench import settle_campus_year as year
    from kwhub.core.intervals import ChannelSeries
    from kwhub.hub.api.keys import create_key
    from kwhub.hub.api.serve import sync_reference
    from kwhub.hub.app import Hub
    from kwhub.hub.settle.service import list_invoices, settle_periods

    built_s, cached = year.build_store()
    print(f"campus-year store: {year.CACHE} ({'cached' if cached else f'built in {built_s:.1f} s'})")
    shutil.copyfile(year.CACHE, folder / "kwhub.db")
    tids = [year.tenant(t) for t in range(year.N_TENANTS)]
    channels: list[dict[str, object]] = [
        {"id": year.channel(t, k), "party": year.tenant(t), "role": "tenant_load", "direction": "received"}
        for t in range(year.N_TENANTS) for k in range(year.PER_TENANT)]
    channels += [{"id": "gt1.net", "asset": "gt1", "role": "generation"},
                 {"id": "pv.net", "asset": "pv", "role": "generation"},
                 {"id": "grid.in", "asset": "grid", "role": "grid_import"}]
    shares = {t: str(year.SHARE) for t in tids}
    cfg = {
        "hub": {"name": "ui bench campus-year", "timezone": year.TZ, "database": f"sqlite:///{folder / 'kwhub.db'}"},
        "sites": [{"id": "campus"}],
        "parties": [{"id": "op", "name": "Campus Operator", "roles": ["operator", "owner"]}]
                   + [{"id": t, "name": f"Tenant {t}", "roles": ["tenant"],
                       "delivery": {"formats": ["json"], "transports": ["drop"]}} for t in tids],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 400000, "owners": [{"party": "op", "share": "1"}]},
                   {"id": "pv", "kind": "solar", "capacity_kw": 100000, "owners": [{"party": "op", "share": "1"}]},
                   {"id": "grid", "kind": "grid_tie"}],
        "channels": channels,
        "contracts": [{"id": f"ppa-{t}", "seller": "op", "buyer": t, "timezone": year.TZ,
                       "load_channels": [year.channel(i, k) for k in range(year.PER_TENANT)],
                       "components": [
                           {"kind": "tou_energy", "holidays": "none", "default_period": "off_peak",
                            "rules": [{"period": "on_peak", "day_types": ["weekday"], "hours": [[7, 23]]}],
                            "prices": {k: str(v) for k, v in year.PRICES.items()}},
                           {"kind": "demand", "price_per_kw_month": str(year.DEMAND_PRICE)},
                           {"kind": "fixed_fee", "total_amount": str(year.FEE_TOTAL), "shares": shares}]}
                      for i, t in enumerate(tids)],
        "allocation": {"method": "pro_rata"},
        "settlement": {"layer": "validated"},
        "adapters": [{"type": "erp.folder", "id": "drop", "config": {"folder": str(folder / "erp")}}],
        "service": {"log_format": "text"},
        "scheduler": {"enabled": False},
    }
    path = folder / "kwhub.toml"
    path.write_bytes(tomli_w.dumps(cfg).encode())
    hub = Hub.open(path)
    sync_reference(hub)
    starts = year.starts()
    n = starts.size
    total = np.zeros(n)
    for i in range(year.N_CHANNELS):
        total += year.values(i, n)
    hour = (starts // 3600) % 24
    solar = np.where((hour >= 11) & (hour < 23), 0.25 * total, 0.0)  # UTC hours of New York daylight
    zero = np.zeros(n, np.uint8)
    hub.db.intervals.write_series([ChannelSeries("pv.net", 15, starts, solar, zero),
                                   ChannelSeries("gt1.net", 15, starts, total - solar, zero),
                                   ChannelSeries("grid.in", 15, starts, np.zeros(n), zero)], layer="validated")
    t0 = time.perf_counter()
    outcomes = settle_periods(hub.db, hub.campus, year.MONTHS, options=hub.settlement_options(),
                              components=hub.registry, on_issue=hub.on_issue(), issue_date=date(YEAR + 1, 1, 15),
                              now=datetime(YEAR + 1, 1, 15, tzinfo=UTC))
    waiting = [o.run_id for o in outcomes if o.status in ("held", "draft")]
    if waiting:  # the review gate may hold a month that moves a lot; approve it as a person would
        hub.approve(waiting, actor="bench", reason="bench setup", issue_date=date(YEAR + 1, 1, 15))
    bad = [(o.contract_id, o.period, o.status, o.error) for o in outcomes if o.status not in ("issued", "held", "draft")]
    assert not bad, bad[:3]
    print(f"settled and issued {len(outcomes)} runs in {time.perf_counter() - t0:.1f} s ({len(waiting)} approved)")
    keys = {"operator": create_key(hub.db, role="operator", days=30, max_days=366, actor="bench").token,
            "tenant": create_key(hub.db, role="tenant", party=tids[0], days=30, max_days=366, actor="bench").token}
    return hub, keys, [inv.id for inv in list_invoices(hub.db)]


def reopen(folder: Path) -> tuple[object, dict[str, str], list[str]]:
    """A campus-year built before in ``folder`` (``--work``): the hub, new keys, the invoice ids."""
    from kwhub.hub.api.keys import create_key
    from kwhub.hub.app import Hub
    from kwhub.hub.settle.service import list_invoices

    hub = Hub.open(folder / "kwhub.toml")
    keys = {"operator": create_key(hub.db, role="operator", days=30, max_days=366, actor="bench").token,
            "tenant": create_key(hub.db, role="tenant", party="t00", days=30, max_days=366, actor="bench").token}
    return hub, keys, [inv.id for inv in list_invoices(hub.db)]


def build_small(folder: Path, tenants: int, meters: int) -> tuple[object, dict[str, str], list[str]]:
    """``--small``: the scaled-down year. The hub (open), keys by role, and the invoice ids."""
    import tomli_w

    from kwhub.core.intervals import ChannelSeries, day_start_epoch
    from kwhub.hub.api.keys import create_key
    from kwhub.hub.api.serve import sync_reference
    from kwhub.hub.app import Hub

    tids = [f"t{i:02d}" for i in range(tenants)]
    channels = [{"id": f"{t}.m{k}", "party": t, "role": "tenant_load", "direction": "received"}
                for t in tids for k in range(meters)]
    channels += [{"id": "gt1.net", "asset": "gt1", "role": "generation"},
                 {"id": "pv.net", "asset": "pv", "role": "generation"},
                 {"id": "grid.in", "asset": "grid", "role": "grid_import"}]
    cfg = {
        "hub": {"name": "ui bench campus", "timezone": "America/New_York", "database": f"sqlite:///{folder / 'kwhub.db'}"},
        "sites": [{"id": "campus"}],
        "parties": [{"id": "op", "name": "Campus Operator", "roles": ["operator", "owner"]}]
                   + [{"id": t, "name": f"Tenant {t}", "roles": ["tenant"],
                       "delivery": {"formats": ["json"], "transports": ["drop"]}} for t in tids],
        "assets": [{"id": "gt1", "kind": "gas_turbine", "capacity_kw": 90000, "owners": [{"party": "op", "share": "1"}]},
                   {"id": "pv", "kind": "solar", "capacity_kw": 40000, "owners": [{"party": "op", "share": "1"}]},
                   {"id": "grid", "kind": "grid_tie"}],
        "channels": channels,
        "contracts": [{"id": f"ppa-{t}", "seller": "op", "buyer": t, "timezone": "America/New_York",
                       "load_channels": [f"{t}.m{k}" for k in range(meters)],
                       "components": [{"kind": "fixed_energy", "price_per_mwh": "55"},
                                      {"kind": "demand", "price_per_kw_month": "9.5"}]} for t in tids],
        "allocation": {"method": "pro_rata"},
        "settlement": {"layer": "validated"},
        "adapters": [{"type": "erp.folder", "id": "drop", "config": {"folder": str(folder / "erp")}}],
        "service": {"log_format": "text"},
        "scheduler": {"enabled": False},
    }
    path = folder / "kwhub.toml"
    path.write_bytes(tomli_w.dumps(cfg).encode())
    hub = Hub.open(path)
    sync_reference(hub)
    starts = np.arange(day_start_epoch(date(YEAR, 1, 1)), day_start_epoch(date(YEAR + 1, 1, 2)), 900, dtype=np.int64)
    n = len(starts)
    rng = np.random.default_rng(17)
    hour = (starts // 3600) % 24
    loads = {c["id"]: 200 + 40 * rng.random(n) for c in channels if c["role"] == "tenant_load"}
    total = np.sum(list(loads.values()), axis=0)
    solar = np.where((hour >= 11) & (hour < 23), 0.25 * total, 0.0)  # UTC hours of New York daylight
    zero = np.zeros(n, np.uint8)
    series = [ChannelSeries(c, 15, starts, v, zero) for c, v in loads.items()]
    series += [ChannelSeries("pv.net", 15, starts, solar, zero), ChannelSeries("gt1.net", 15, starts, total - solar, zero),
               ChannelSeries("grid.in", 15, starts, np.zeros(n), zero)]
    hub.db.intervals.write_series(series, layer="validated")
    for m in range(1, 13):
        outcomes = hub.settle(f"{YEAR}-{m:02d}", issue_date=date(YEAR + (m == 12), m % 12 + 1, 3))
        bad = [(o.contract_id, o.status, o.error) for o in outcomes if o.status != "issued"]
        if bad:  # the review gate may hold a month that moves a lot; approve it as a person would
            from kwhub.hub.settle.review import list_runs

            ids = [r["id"] for r in list_runs(hub.db, period=f"{YEAR}-{m:02d}") if r["status"] in ("held", "draft")]
            hub.approve(ids, actor="bench", reason="bench setup", issue_date=date(YEAR + (m == 12), m % 12 + 1, 3))
    keys = {"operator": create_key(hub.db, role="operator", days=30, max_days=366, actor="bench").token,
            "tenant": create_key(hub.db, role="tenant", party=tids[0], days=30, max_days=366, actor="bench").token}
    from kwhub.hub.settle.invoices_read import list_invoices

    return hub, keys, [inv.id for inv in list_invoices(hub.db)]


def signed_in(app: object, token: str) -> object:
    from fastapi.testclient import TestClient

    client = TestClient(app)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/login").text).group(1)  # type: ignore[union-attr]
    r = client.post("/ui/login", data={"key": token, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def timed(client: object, path: str, reps: int, before: Callable[[], None] | None = None) -> dict[str, float]:
    for _ in range(3):
        r = client.get(path)  # type: ignore[attr-defined]
        assert r.status_code == 200, (path, r.status_code, r.text[-400:])
    ms = []
    for _ in range(reps):
        if before is not None:
            before()
        t0 = time.perf_counter()
        r = client.get(path)  # type: ignore[attr-defined]
        ms.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def settle_down(warmer: object, timeout_s: float = 60.0) -> None:
    """Wait (untimed) until the warmer's thread has no recomputation pending."""
    end = time.monotonic() + timeout_s
    while warmer.updating and time.monotonic() < end:  # type: ignore[attr-defined]
        time.sleep(0.02)


def peer_figures(app: object, hub: object, keys: dict[str, str], reps: int) -> dict[str, dict[str, float]]:
    """The same work as two pages, served by a bare Starlette route: no session, no dependency injection,
    no template (an f-string), the same API function or the same precomputed figures underneath."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from kwhub.hub.api import invoices as invoices_api
    from kwhub.hub.api.keys import verify_token
    from kwhub.hub.ui.flow import ALL, view

    who = verify_token(hub.db, keys["operator"])  # type: ignore[attr-defined]
    warmer = app.state.ui_flow_warmer  # type: ignore[attr-defined]

    def invoices(request: object) -> HTMLResponse:
        rows = invoices_api.list_invoices(request=request, contract=None, period=None, who=who, params=ALL)["items"]
        body = "".join(f"<tr><td>{r['number']}</td><td>{r['buyer']}</td><td>{r['period']}</td>"
                       f"<td>{r['total']} {r['currency']}</td></tr>" for r in rows[::-1])
        return HTMLResponse(f"<table>{body}</table>")

    def flow(request: object) -> HTMLResponse:
        figs = warmer.latest()
        got, carbon, _ = view(hub, figs, set(figs.buyers), who)
        body = "".join(f"<tr><td>{t.name}</td><td>{t.kw_now:.1f} kW</td><td>{carbon.get(t.party, {})}</td></tr>"
                       for t in got.tenants)
        return HTMLResponse(f"<div data-sankey='{json.dumps(got.sankey())}'></div><table>{body}</table>")

    peer = Starlette(routes=[Route("/invoices", invoices), Route("/flow", flow)])
    peer.state.hub = hub
    client = TestClient(peer)
    return {"bare Starlette /invoices (the API's list_invoices, f-string table)": timed(client, "/invoices", reps),
            "bare Starlette /flow (the warmer's figures, view(), f-string)": timed(client, "/flow", reps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the scaled-down year instead of the campus-year")
    ap.add_argument("--tenants", type=int, default=10, help="--small: tenants")
    ap.add_argument("--meters", type=int, default=5, help="--small: 15-minute meters per tenant")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--work", type=Path, help="build in this folder and keep it; a folder built before is reused "
                                               "(the campus-year only; new keys each time)")
    args = ap.parse_args()
    from kwhub.hub.api.app import create_app

    folder = args.work or Path(tempfile.mkdtemp(prefix="kwhub-ui-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.small:
        hub, keys, invoices = build_small(folder, args.tenants, args.meters)
    elif (folder / "kwhub.toml").exists() and (folder / "kwhub.db").exists():
        hub, keys, invoices = reopen(folder)
    else:
        hub, keys, invoices = build_year(folder)
    setup_s = time.perf_counter() - t0
    app = create_app(hub, access_log=False)
    app.state.ui_flow_warmer.refresh()
    app.state.ui_flow_warmer.settle_heap()  # as `kwhub serve`'s warmer thread does once it has the figures
    op = signed_in(app, keys["operator"])
    tenant = signed_in(app, keys["tenant"])
    own = invoices[0]
    pages = ["/ui/campus", "/ui/campus/flow", "/ui/runs", "/ui/invoices", f"/ui/invoices/{own}", "/ui/deliveries",
             f"/ui/quality?period={YEAR}-07", f"/ui/owners?period={YEAR}-07", f"/ui/emissions?period={YEAR}-07",
             f"/ui/markets?period={YEAR}-07", "/ui/jobs", "/ui/audit", "/ui/keys"]
    print(f"store: {len(hub.campus.channels)} channels x a year of 15-minute data, {len(invoices)} invoices; "
          f"setup {setup_s:.1f} s; {args.reps} renders per page")
    results: dict[str, dict[str, float]] = {}
    for p in pages:
        results[f"operator {p}"] = timed(op, p, args.reps)
    for p in ["/ui/campus", "/ui/campus/flow", "/ui/invoices", f"/ui/invoices/{own}"]:
        results[f"tenant {p}"] = timed(tenant, p, args.reps)
    from kwhub.hub.ui.flow import FlowCache

    warmer = app.state.ui_flow_warmer  # type: ignore[attr-defined]
    warm_s: list[float] = []

    def dropped() -> None:  # no figures: the next request computes them
        warmer.figures.clear()
        warmer.kick()

    def issued() -> None:  # a run was issued: the warmer recomputes (untimed), the page renders on the new figures
        dropped()
        figs = warmer.refresh()
        warmer.settle_heap()  # as the warmer's thread does after each computation
        warm_s.append(figs.seconds)

    def cold_emissions() -> None:
        app.state.ui_flow_cache = FlowCache()  # type: ignore[attr-defined]

    results["operator /ui/campus/flow (first render after an issue)"] = timed(op, "/ui/campus/flow", args.reps,
                                                                              before=issued)
    results["tenant /ui/campus/flow (first render after an issue)"] = timed(tenant, "/ui/campus/flow", args.reps,
                                                                            before=issued)
    results["operator /ui/campus/flow (uncached, computed by the request)"] = timed(op, "/ui/campus/flow", args.reps,
                                                                                   before=dropped)
    results[f"operator /ui/emissions?period={YEAR}-07 (uncached)"] = timed(op, f"/ui/emissions?period={YEAR}-07",
                                                                           args.reps, before=cold_emissions)

    def issued_cold() -> None:  # the latest period's report comes from the warmer, which made it at the issue
        issued()
        cold_emissions()

    results[f"operator /ui/emissions?period={YEAR}-12 (first view after an issue)"] = timed(
        op, f"/ui/emissions?period={YEAR}-12", args.reps, before=issued_cold)
    # As `kwhub serve` runs it: the warmer's thread recomputes after an issue while pages are served.
    warmer.start()
    settle_down(warmer)

    def issued_served() -> None:  # a run was issued: the figures no longer match the issued runs
        settle_down(warmer)
        warmer.figures[warmer.latest_period].run_ids = frozenset()
        warmer.kick()

    results["operator /ui/campus/flow (first render after an issue, warmer thread recomputing)"] = timed(
        op, "/ui/campus/flow", args.reps, before=issued_served)
    settle_down(warmer)
    warmer.stop()
    peers = peer_figures(app, hub, keys, args.reps)
    width = max(len(k) for k in results)
    print(f"{'page':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}")
    for k, v in results.items():
        print(f"{k:<{width}}  {v['p50_ms']:>8.1f}  {v['p95_ms']:>8.1f}")
    warm = {"p50_ms": round(float(np.percentile(warm_s, 50)) * 1000, 1),
            "p95_ms": round(float(np.percentile(warm_s, 95)) * 1000, 1)}
    print(f"{'warm-up after an issue (warmer, not a request)':<{width}}  {warm['p50_ms']:>8.1f}  {warm['p95_ms']:>8.1f}")
    for k, v in peers.items():
        print(f"{'peer: ' + k:<{width}}  {v['p50_ms']:>8.1f}  {v['p95_ms']:>8.1f}")
    worst = max(v["p95_ms"] for k, v in results.items() if "computed by the request" not in k)
    flow = max(v["p95_ms"] for k, v in results.items() if "/ui/campus/flow" in k and "computed by the request" not in k)
    flow_first = results["operator /ui/campus/flow (first render after an issue)"]["p95_ms"]
    flow_cold = results["operator /ui/campus/flow (uncached, computed by the request)"]["p95_ms"]
    hub.close()  # type: ignore[attr-defined]
    print(json.dumps({"channels": len(hub.campus.channels), "invoices": len(invoices), "reps": args.reps,  # type: ignore[attr-defined]
                      "worst_p95_ms": worst, "flow_p95_ms": flow, "flow_first_after_issue_p95_ms": flow_first,
                      "flow_computed_by_request_p95_ms": flow_cold, "warm_up": warm,
                      "pages": results, "peers": peers}))


if __name__ == "__main__":
    main()
