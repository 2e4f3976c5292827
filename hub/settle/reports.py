"""Energy accounting and allocation exports of a settled period, read from the runs' frozen records.

:func:`energy_report` gathers, for one billing period, what the runs recorded: per source
the metered energy and where it went (tenants, losses, other sinks), per tenant and source
the allocated, billed and unbilled kWh with the reason of every unbilled kWh, and the
campus balance. :func:`allocation_rows` exports the per-interval tenants x sources split
a run froze, so an auditor can check conservation against the meters.

Both read the latest run of each contract that is not rejected or superseded; the campus
section comes from the most recent run that billed allocated energy (every such run
records it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from kwhub.core.allocation import unpack_array
from kwhub.core.settlement import SettlementError
from kwhub.hub.store import Database
from kwhub.hub.store.settlement_tables import run_allocation_table, settlement_run_table

_DEAD = ("rejected", "superseded")


@dataclass
class EnergyReport:
    """The accounting of one period (kWh as exact decimal strings)."""

    period: str
    runs: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    parties: list[dict[str, Any]] = field(default_factory=list)
    balance: dict[str, str] = field(default_factory=dict)
    campus_run: str = ""

    @property
    def unexplained(self) -> list[dict[str, Any]]:
        """Rows with unbilled energy whose reason the configuration did not declare."""
        return [r for r in self.parties if float(r["unbilled_kwh"]) and not r["declared"]]

    def as_json(self) -> dict[str, Any]:
        return {"period": self.period, "runs": self.runs, "campus_run": self.campus_run, "sources": self.sources,
                "parties": self.parties, "balance": self.balance,
                "unexplained_kwh": repr(sum(float(r["unbilled_kwh"]) for r in self.unexplained))}


def _latest_runs(db: Database, period: str) -> list[tuple[str, str, dict[str, Any], Any]]:
    """``(run id, contract id, statement, created_at)`` of each contract's latest live run."""
    t = settlement_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.contract_id, t.c.version_kind, t.c.seq, t.c.statement, t.c.created_at)
                            .where(t.c.period == period, t.c.status.notin_(_DEAD))).all()
    order = {"initial": 0, "final": 1, "true_up": 2}
    latest: dict[str, Any] = {}
    for r in rows:
        key = (order.get(r.version_kind, 9), r.seq)
        if r.contract_id not in latest or key > latest[r.contract_id][0]:
            latest[r.contract_id] = (key, r)
    return [(r.id, r.contract_id, json.loads(r.statement), r.created_at) for _, r in sorted(latest.values(),
                                                                                           key=lambda x: x[1].contract_id)]


def energy_report(db: Database, period: str) -> EnergyReport:
    """The energy accounting of ``period`` (see module docs); an error when nothing is settled."""
    runs = _latest_runs(db, period)
    if not runs:
        raise SettlementError(f"no settlement run for period {period} (`kwhub settle --period {period}` first)")
    rep = EnergyReport(period=period, runs=[r[0] for r in runs])
    with_campus = [r for r in runs if "campus" in r[2]]
    if with_campus:
        rid, _, st, _ = max(with_campus, key=lambda r: r[3])
        rep.campus_run = rid
        rep.sources = st["campus"]["sources"]
        rep.balance = st["campus"]["balance"]
        rep.parties = [dict(row) for row in st["campus"]["tenants"]]
    seen = {(r["party"], r["source"]) for r in rep.parties}
    for _, _, st, _ in runs:
        if st.get("energy", {}) and st["energy"]["basis"] != "allocation":
            for row in st.get("accounting", []):
                if (row["party"], row["source"]) not in seen:
                    rep.parties.append(dict(row))
    return rep


def allocation_rows(db: Database, period: str, tenant: str | None = None) -> Iterator[dict[str, Any]]:
    """Per interval and tenant: UTC start, kWh from each source and their sum, from frozen runs.

    Each tenant's split comes from the latest live run that billed it allocated energy.
    """
    runs = [r for r in _latest_runs(db, period) if "campus" in r[2]]
    if not runs:
        raise SettlementError(f"no run of period {period} billed allocated energy, so no split was frozen")
    t = run_allocation_table
    by_tenant: dict[str, tuple[str, dict[str, Any]]] = {}
    with db.engine.connect() as conn:
        for rid, _, st, _ in sorted(runs, key=lambda r: r[3]):
            for (who,) in conn.execute(select(t.c.tenant).where(t.c.run_id == rid).distinct()):
                by_tenant[who] = (rid, st)
        if tenant is not None and tenant not in by_tenant:
            known = ", ".join(sorted(by_tenant)) or "none"
            raise SettlementError(f"no frozen allocation of tenant {tenant!r} in {period} (tenants: {known})")
        for who in sorted(by_tenant):
            if tenant is not None and who != tenant:
                continue
            rid, st = by_tenant[who]
            rows = conn.execute(select(t.c.source, t.c.blob).where(t.c.run_id == rid, t.c.tenant == who)
                                .order_by(t.c.source)).all()
            arrays = {src: unpack_array(bytes(blob)) for src, blob in rows}
            start = int(datetime.fromisoformat(st["span"]["start"]).timestamp())
            step = int(st["span"]["interval_minutes"]) * 60
            n = int(st["span"]["intervals"])
            total = np.sum(list(arrays.values()), axis=0) if arrays else np.zeros(n)
            for i in range(n):
                row: dict[str, Any] = {"interval_start": datetime.fromtimestamp(start + i * step, tz=UTC).isoformat(),
                                       "tenant": who, "run": rid}
                for src, arr in arrays.items():
                    row[src] = repr(float(arr[i]))
                row["total"] = repr(float(total[i]))
                yield row
