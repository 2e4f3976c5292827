"""The campus's energy flow for the "campus now" page, from the latest issued settlement runs.

"Now" is the last interval of the latest period with issued runs: each run's frozen
allocation (tenant x source, per interval; :func:`kwhub.hub.settle.service.run_allocation`)
gives kW from each source to each tenant in that interval and kWh over the period. The runs
come from the API's own run list, so a tenant sees only its own flows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kwhub.hub.api import runs as runs_api
from kwhub.hub.api.deps import PageParams
from kwhub.hub.api.keys import Principal

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


def campus_now(hub: Any, request: Any, who: Principal, cache: FlowCache) -> tuple[CampusFlow, dict[str, Any], str]:
    """The latest flow and its emissions figures for this caller (computed once per set of issued runs)."""
    issued = runs_api.list_runs(request=request, period=None, contract=None, status="issued", who=who,
                                params=ALL)["items"]
    if not issued:
        return CampusFlow(), {}, ""
    period = max(r["period"] for r in issued)
    latest: dict[str, dict[str, Any]] = {}
    for r in issued:
        if r["period"] == period:
            latest[r["contract_id"]] = r  # ordered by version within the period: the last one wins
    key = ("campus", who.row_scope, getattr(request.app.state, "config_sha256", ""), period,
           tuple(sorted(r["id"] for r in latest.values())))

    def make() -> tuple[CampusFlow, dict[str, Any], str]:
        flow = latest_flow(hub, period, latest)
        carbon, note = emissions_by_party(request, who, period)
        return flow, carbon, note

    return cache.get(key, make)  # type: ignore[no-any-return]


def latest_flow(hub: Any, period: str, latest: dict[str, dict[str, Any]]) -> CampusFlow:
    """The flow of ``period`` from its latest issued run per contract (``latest``: contract id -> run row)."""
    from kwhub.core.allocation import unpack_array
    from kwhub.core.timeline import billing_period
    from kwhub.hub.settle.service import run_allocation

    contracts = {c.id: c for c in hub.campus.contracts}
    names = {p.id: p.name or p.id for p in hub.campus.parties}
    kinds = {a.id: a.kind for a in hub.campus.assets}
    out = CampusFlow(period=period)
    tenants: dict[str, TenantFlow] = {}
    for contract_id, run in sorted(latest.items()):
        span = billing_period(period, contracts[contract_id].timezone).span
        for row in run_allocation(hub.db, run["id"]):
            n = int(row["intervals"])
            if n <= 0:
                continue
            minutes = (span.end_epoch - span.start_epoch) // 60 // n
            out.interval_minutes = minutes
            out.interval_start = datetime.fromtimestamp(span.end_epoch - minutes * 60, UTC)
            last_kwh = float(unpack_array(row["blob"])[-1])
            t = tenants.setdefault(row["tenant"], TenantFlow(row["tenant"], names.get(row["tenant"], row["tenant"])))
            kw = last_kwh * 60.0 / minutes
            t.by_source_kw[row["source"]] = t.by_source_kw.get(row["source"], 0.0) + kw
            t.kw_now += kw
            t.kwh_period += Decimal(str(row["kwh"]))
            out.sources.setdefault(row["source"], kinds.get(row["source"], ""))
    out.tenants = sorted(tenants.values(), key=lambda t: t.party)
    return out


def emissions_by_party(request: Any, who: Principal, period: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Per party: CFE % and kg CO2e/MWh (Scope 2, location-based) from the API's emissions report; and a note."""
    from kwhub.hub.api import reports
    from kwhub.hub.api.problems import ApiProblem

    try:
        body = reports.emissions(request=request, period=period, who=who)
    except ApiProblem as exc:
        return {}, f"No emissions for {period}: {exc.detail}"
    out = {}
    for r in body["parties"]:
        mwh = Decimal(r["energy_mwh"] or "0")
        t = Decimal(r["scope2_location_tco2e"] or "0")
        out[r["party"]] = {"cfe_pct": r["cfe_pct"],
                           "kg_per_mwh": (t * 1000 / mwh).quantize(Decimal("0.1")) if mwh else None}
    return out, ""
