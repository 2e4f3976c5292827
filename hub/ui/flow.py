"""The campus's energy flow for the "campus now" page, from the latest issued settlement runs.

"Now" is the last interval of the latest period with issued runs: each run's frozen
allocation (tenant x source, per interval; :func:`kwhub.hub.settle.runs_read.run_allocation`)
gives kW from each source to each tenant in that interval and kWh over the period. The runs
a viewer may see come from the API's own run list, so a tenant sees only its own flows.

Reading the allocations and computing the period's emissions report costs far more than a
page may (50 ms for the refreshed fragment), so :class:`FlowWarmer` computes the campus-wide
figures once, when a run is issued and at start, and each request only filters them.
"""

from __future__ import annotations

import contextvars
import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kwhub.hub.api import runs as runs_api
from kwhub.hub.api.deps import PageParams
from kwhub.hub.api.keys import Principal
from kwhub.hub.store.db import ROW_SCOPE

ALL = PageParams(limit=1_000_000, offset=0)


@dataclass
class TenantFlow:
    """One tenant's energy in the latest period and its last interval."""

    party: str
    name: str
    kw_now: float = 0.0
    kwh_period: Decimal = Decimal("0")
    by_source_kw: dict[str, float] = field(default_factory=dict)


@dataclass
class CampusFlow:
    """What the campus page draws: tenants, sources, the last interval's instant."""

    period: str = ""
    interval_start: datetime | None = None
    interval_minutes: int = 0
    tenants: list[TenantFlow] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # source id -> asset kind

    def sankey(self) -> dict[str, Any]:
        """ECharts ``series.sankey`` data: nodes and links in kW (links below 0.001 kW and idle sources left out)."""
        def label(s: str) -> str:
            return f"{s} ({self.sources[s]})" if self.sources.get(s) else s

        links = [{"source": label(s), "target": t.name, "value": round(kw, 3)}
                 for t in self.tenants for s, kw in t.by_source_kw.items() if kw >= 0.001]
        used = {x["source"] for x in links} | {x["target"] for x in links}
        nodes = [{"name": label(s)} for s in self.sources if label(s) in used]
        nodes += [{"name": t.name} for t in self.tenants if t.name in used]
        return {"nodes": nodes, "links": links}

class FlowCache:
    """Figures derived from issued runs, by (what, caller's party, configuration, run ids).

    An issued run's allocation and statement never change, so figures computed from a set
    of issued runs hold until another run is issued or the configuration is reloaded.
    """

    def __init__(self, size: int = 64) -> None:
        self._items: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._size = size

    def get(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                return self._items[key]
        value = make()
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value
        return value


@dataclass(frozen=True)
class FlowRow:
    """One tenant x source row of an issued run's allocation: kW in the last interval, kWh in the period."""

    run_id: str
    tenant: str
    source: str
    kw: float
    kwh: Decimal
    minutes: int
    interval_start: datetime


@dataclass
class CampusFigures:
    """The campus-wide figures of one period, computed once from its latest issued run per contract
    (with every party's rows visible); each viewer gets the part it may see (:func:`view`)."""

    period: str
    config: str  # the configuration's digest they were computed under
    run_ids: frozenset[str]
    buyers: dict[str, str]  # run id -> its contract's buyer (who may see the run, as the API's run list decides)
    rows: list[FlowRow]
    sources: dict[str, str]  # source id -> asset kind
    carbon: dict[str, dict[str, Any]]  # party -> CFE % and kg CO2e/MWh
    note: str
    seconds: float = 0.0  # how long the computation took
    # the period's emissions report as GET /api/v1/reports/emissions gives it with every party
    # visible (the emissions page filters it per viewer); None when the report could not be made
    report: dict[str, Any] | None = None


def full_scope(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with every party's rows visible (PostgreSQL row-level security scope ``*``), in a copy
    of the current context so the request's own scope is untouched. Only for campus-wide figures that
    are filtered per viewer before they are shown."""
    ctx = contextvars.copy_context()

    def run() -> Any:
        ROW_SCOPE.set("*")
        return fn()

    return ctx.run(run)


def latest_issued(hub: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    """The latest period with issued runs and its latest issued run per contract (every party's)."""
    from kwhub.hub.settle.review import list_runs

    issued = full_scope(lambda: list_runs(hub.db, status="issued"))
    if not issued:
        return "", {}
    period = max(r["period"] for r in issued)
    latest: dict[str, dict[str, Any]] = {}
    for r in sorted((r for r in issued if r["period"] == period), key=lambda r: r["seq"]):
        latest[r["contract_id"]] = r  # the last version wins
    return period, latest


def compute_figures(hub: Any, config: str, period: str, latest: dict[str, dict[str, Any]]) -> CampusFigures:
    """Read the latest runs' allocations and the period's emissions (the slow part; done when a run is issued)."""
    import time

    t0 = time.perf_counter()

    def make() -> CampusFigures:
        rows, sources = _flow_rows(hub, period, latest)
        carbon, note, report = _carbon(hub, period)
        buyers = {c.id: c.buyer for c in hub.campus.contracts}
        return CampusFigures(period, config, frozenset(r["id"] for r in latest.values()),
                             {r["id"]: buyers.get(c, "") for c, r in latest.items()}, rows, sources, carbon, note,
                             report=report)

    figs: CampusFigures = full_scope(make)
    figs.seconds = time.perf_counter() - t0
    return figs


def _flow_rows(hub: Any, period: str, latest: dict[str, dict[str, Any]]) -> tuple[list[FlowRow], dict[str, str]]:
    from kwhub.core.allocation import unpack_array
    from kwhub.core.timeline import billing_period
    from kwhub.hub.settle.runs_read import run_allocation

    contracts = {c.id: c for c in hub.campus.contracts}
    kinds = {a.id: a.kind for a in hub.campus.assets}
    rows: list[FlowRow] = []
    sources: dict[str, str] = {}
    for contract_id, run in sorted(latest.items()):
        if contract_id not in contracts:
            continue  # a contract no longer configured
        span = billing_period(period, contracts[contract_id].timezone).span
        for row in run_allocation(hub.db, run["id"]):
            n = int(row["intervals"])
            if n <= 0:
                continue
            minutes = (span.end_epoch - span.start_epoch) // 60 // n
            last_kwh = float(unpack_array(row["blob"])[-1])
            rows.append(FlowRow(run["id"], row["tenant"], row["source"], last_kwh * 60.0 / minutes,
                                Decimal(str(row["kwh"])), minutes,
                                datetime.fromtimestamp(span.end_epoch - minutes * 60, UTC)))
            sources.setdefault(row["source"], kinds.get(row["source"], ""))
    return rows, sources


def _carbon(hub: Any, period: str) -> tuple[dict[str, dict[str, Any]], str, dict[str, Any] | None]:
    """Per party: CFE % and kg CO2e/MWh (Scope 2, location-based), from the same report as
    ``GET /api/v1/reports/emissions`` (which shows each key the parties it sees); and that report
    with every party (the API's body before it filters the parties)."""
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.esg.reports import period_disclosure

    try:
        disclosure = period_disclosure(hub.db, hub.config, period)
        summary = disclosure.summary()
    except (SettlementError, ValueError) as exc:
        return {}, f"No emissions for {period}: {exc}", None
    report = {"period": period, "gwp_set": disclosure.gwp_set, "region": disclosure.region, "parties": summary,
              "notes": list(disclosure.notes)}
    out = {}
    for r in summary:
        mwh = Decimal(r["energy_mwh"] or "0")
        t = Decimal(r["scope2_location_tco2e"] or "0")
        out[r["party"]] = {"cfe_pct": r["cfe_pct"],
                           "kg_per_mwh": (t * 1000 / mwh).quantize(Decimal("0.1")) if mwh else None}
    return out, "", report


def view(hub: Any, figs: CampusFigures, visible_runs: set[str], who: Principal) -> tuple[CampusFlow, dict[str, Any], str]:
    """The part of ``figs`` a caller sees: the rows of the runs it may read, the carbon of the parties it sees."""
    names = {p.id: p.name or p.id for p in hub.campus.parties}
    out = CampusFlow(period=figs.period)
    tenants: dict[str, TenantFlow] = {}
    for r in figs.rows:
        if r.run_id not in visible_runs:
            continue
        out.interval_minutes, out.interval_start = r.minutes, r.interval_start
        t = tenants.setdefault(r.tenant, TenantFlow(r.tenant, names.get(r.tenant, r.tenant)))
        t.by_source_kw[r.source] = t.by_source_kw.get(r.source, 0.0) + r.kw
        t.kw_now += r.kw
        t.kwh_period += r.kwh
        out.sources.setdefault(r.source, figs.sources.get(r.source, ""))
    out.tenants = sorted(tenants.values(), key=lambda t: t.party)
    carbon = {p: v for p, v in figs.carbon.items() if who.sees(p)}
    return out, carbon, figs.note


class FlowWarmer:
    """Keeps the campus figures of the latest issued period ready, so no page request pays for them.

    :meth:`kick` marks them out of date: :class:`~kwhub.hub.app.Hub` calls it after a run is
    issued in this process, and a configuration reload does. With the background thread
    running (:meth:`start`, by ``kwhub serve``) the thread recomputes them at once and pages
    keep showing the previous figures for the few hundred milliseconds that takes; the thread
    also looks every ``every_s`` seconds (one query of issued run ids) for runs issued by
    another process (the CLI, the scheduler, another worker). Without the thread (tests, the
    benchmark) the next page computes them.
    """

    def __init__(self, app: Any, every_s: float = 10.0) -> None:
        self.app = app
        self.every_s = every_s
        self.figures: dict[str, CampusFigures] = {}  # period -> figures (the latest few)
        self.latest_period = ""
        self._dirty = True
        self._recomputing = False
        self._lock = threading.Lock()
        self._compute = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def config(self) -> str:
        return str(getattr(self.app.state, "config_sha256", ""))

    def _store(self, figs: CampusFigures) -> None:
        with self._lock:
            self.figures[figs.period] = figs
            for old in sorted(self.figures)[:-3]:
                del self.figures[old]

    def for_period(self, period: str, runs: set[str]) -> CampusFigures:
        """The figures of ``period`` computed from (at least) ``runs``; computed here if not."""
        with self._lock:
            figs = self.figures.get(period)
        if figs is not None and figs.config == self.config() and runs <= figs.run_ids:
            return figs
        from kwhub.hub.settle.review import list_runs

        hub = self.app.state.hub
        latest: dict[str, dict[str, Any]] = {}
        for r in sorted(full_scope(lambda: list_runs(hub.db, period=period, status="issued")), key=lambda r: r["seq"]):
            latest[r["contract_id"]] = r
        figs = compute_figures(hub, self.config(), period, latest)
        self._store(figs)
        return figs

    def latest(self) -> CampusFigures | None:
        """The latest issued period's figures (None: nothing issued yet)."""
        with self._lock:
            figs = self.figures.get(self.latest_period)
        fresh = figs is not None and not self._dirty and figs.config == self.config()
        if fresh or (figs is not None and self.running and figs.config == self.config()):
            return figs  # the thread is recomputing them: the previous figures meanwhile
        return self.refresh()

    def refresh(self) -> CampusFigures | None:
        """Compute the latest period's figures if its issued runs or the configuration changed."""
        with self._compute:
            self._dirty = False
            hub = self.app.state.hub
            period, latest = latest_issued(hub)
            if not latest:
                return None
            ids = {r["id"] for r in latest.values()}
            with self._lock:
                figs = self.figures.get(period)
            if figs is None or figs.config != self.config() or figs.run_ids != ids:
                self._recomputing = True
                try:
                    figs = compute_figures(hub, self.config(), period, latest)
                finally:
                    self._recomputing = False
                self._store(figs)
            self.latest_period = period
            return figs

    @property
    def updating(self) -> bool:
        """The figures are out of date and being recomputed (pages show the previous ones meanwhile)."""
        return self.running and (self._dirty or self._recomputing)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @staticmethod
    def settle_heap() -> None:
        """Collect garbage now, then move every surviving object out of the collector's way (``gc.freeze``).

        A campus-year's hub holds some 220,000 objects that live as long as the process; a full
        collection walks them all, 0.2-0.9 s on the benchmark machine, and Python starts one
        whenever enough allocations pile up, often in the first page request after the warmer
        computed new figures (the energy-flow fragment then took 25-800 ms instead of 10). After
        the freeze a collection walks only what was allocated since: well under a millisecond.
        The warmer's thread calls this at start and after each computation, so the collection
        that precedes each freeze is itself short (only the objects since the previous one)."""
        gc.collect()
        gc.freeze()

    def kick(self) -> None:
        """The issued runs (or the configuration) changed: recompute."""
        self._dirty = True
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="kwhub-ui-warmer", daemon=True)
            self._thread.start()
        self.kick()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        import logging

        log = logging.getLogger("kwhub.ui")
        while not self._stop.is_set():
            self._wake.wait(self.every_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                before = self.figures.get(self.latest_period)
                figs = self.refresh()
                if figs is not None and figs is not before:
                    log.info("campus figures of %s ready in %.2f s", figs.period, figs.seconds)
                    self.settle_heap()
            except Exception:  # noqa: BLE001 - retried on the next wake; pages compute on demand meanwhile
                self._dirty = True
                log.exception("campus figures could not be computed; pages compute them on demand")


def campus_now(hub: Any, request: Any, who: Principal, warmer: FlowWarmer) -> tuple[CampusFlow, dict[str, Any], str]:
    """The latest flow and its emissions figures for this caller.

    The caller sees the runs whose contract's buyer it sees (the rule of the API's run list)
    among the latest period's runs; a caller with none there gets the latest period it has
    runs in, from the API's own run list.
    """
    figs = warmer.latest()
    if figs is None:
        return CampusFlow(), {}, ""
    visible = {rid for rid, buyer in figs.buyers.items() if who.sees(buyer)}
    if not visible:
        issued = runs_api.list_runs(request=request, period=None, contract=None, status="issued", who=who,
                                    params=ALL)["items"]
        if not issued:
            return CampusFlow(), {}, ""
        period = max(r["period"] for r in issued)
        latest: dict[str, dict[str, Any]] = {}
        for r in sorted((r for r in issued if r["period"] == period), key=lambda r: r["seq"]):
            latest[r["contract_id"]] = r
        visible = {r["id"] for r in latest.values()}
        figs = warmer.for_period(period, visible)
    return view(hub, figs, visible, who)
