"""Emissions inputs from the store: a period's settled runs, their frozen split and carbon basis.

:func:`period_inputs` builds the :class:`~core.carbon_period.EmissionsInput` of a billing
period from what the runs froze, never from a second computation: each contract's latest
settled run (issued, or a later version with nothing to bill), its ``run_allocation``
blobs (the tenant's kWh per source and interval), the activity and factors named in its
statement's ``carbon`` section, who sold the tenant each source (the contract that billed
it), and the certificates the tenant claimed per hour.

When the runs of one period rest on different data (one tenant's contract settled again as
``final`` after a correction, another's not), each tenant follows its own run and there is
one input per activity; the plants' Scope 1 comes from the newest. A tenant with two
contracts has the same split frozen in both runs and counts once.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select

from core.allocation import UNMETERED, unpack_array
from core.campus import Campus
from core.carbon_activity import CarbonActivity
from core.carbon_factors import FactorSet
from core.carbon_period import EmissionsInput
from core.carbon_settings import EmissionsSettings
from core.cfe import hour_index
from core.disclosure import RunLineage
from core.settlement import SettlementError
from hub.esg.carbon_store import read_blobs
from hub.esg.ledger import claimed_wh_by_hour, tracked_devices
from hub.settlement_service import SETTLED
from hub.store import Database
from hub.store.settlement_tables import run_allocation_table, settlement_run_table

_ORDER = {"initial": 0, "final": 1, "true_up": 2}


def latest_runs(db: Database, period: str, statuses: Sequence[str] = SETTLED) -> list[dict[str, Any]]:
    """Each contract's latest run of ``period`` with one of ``statuses``: id, contract, created_at, statement."""
    t = settlement_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.contract_id, t.c.version_kind, t.c.seq, t.c.statement,
                                   t.c.statement_hash, t.c.created_at)
                            .where(t.c.period == period, t.c.status.in_(list(statuses)))).all()
    best: dict[str, Any] = {}
    for r in rows:
        key = (_ORDER.get(r.version_kind, 9), r.seq)
        if r.contract_id not in best or key > best[r.contract_id][0]:
            best[r.contract_id] = (key, r)
    return [{"id": r.id, "contract": r.contract_id, "created_at": r.created_at, "statement_hash": r.statement_hash,
             "statement": json.loads(r.statement)} for _, r in (best[c] for c in sorted(best))]


def period_inputs(db: Database, campus: Campus, period: str) -> list[EmissionsInput]:
    """The emissions inputs of ``period`` (one per frozen activity, newest last); see the module docs."""
    runs = [r for r in latest_runs(db, period) if "carbon" in r["statement"]]
    if not runs:
        raise SettlementError(f"no settled run of period {period} carries a carbon basis (settle the period with "
                              f"allocation-based contracts first: `kwhub settle --period {period}`, then approve "
                              "held runs)")
    sellers_of = {c.id: c.seller for c in campus.contracts}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(runs, key=lambda r: (r["created_at"], r["id"])):
        groups[r["statement"]["carbon"]["activity_id"]].append(r)
    order = sorted(groups, key=lambda a: max((r["created_at"], r["id"]) for r in groups[a]))
    with db.engine.connect() as conn:
        ids = [a for a in order] + [groups[a][0]["statement"]["carbon"]["factors_id"] for a in order]
        blobs = read_blobs(conn, ids)
        out = []
        seen: set[str] = set()
        for a in reversed(order):  # the newest activity first: a tenant follows its newest run
            first = groups[a][0]["statement"]["carbon"]
            activity = CarbonActivity.from_stored(first["activity"], blobs[a])
            factors = FactorSet.from_json(first["factors"], blobs[first["factors_id"]])
            names = [s.id for s in activity.sources] + [UNMETERED]
            col = {s: j for j, s in enumerate(names)}
            tenants: list[str] = []
            split: list[np.ndarray] = []
            lineage: list[RunLineage] = []
            sellers: dict[tuple[str, str], str] = {}
            for r in sorted(groups[a], key=lambda r: r["id"]):
                t = run_allocation_table
                rows = conn.execute(select(t.c.tenant, t.c.source, t.c.blob).where(t.c.run_id == r["id"])).all()
                for acc in r["statement"].get("accounting", []):
                    if acc.get("billed_by") and acc["billed_by"] in sellers_of:
                        sellers[(acc["party"], acc["source"])] = sellers_of[acc["billed_by"]]
                for tenant in sorted({row.tenant for row in rows} - seen):
                    arr = np.zeros((len(names), activity.n))
                    for row in (x for x in rows if x.tenant == tenant):
                        if row.source not in col:
                            raise SettlementError(f"run {r['id']}: source {row.source!r} of the frozen split is not a "
                                                  f"source of its carbon activity ({', '.join(names)})")
                        arr[col[row.source]] = unpack_array(bytes(row.blob))
                    tenants.append(tenant)
                    split.append(arr)
                    seen.add(tenant)
                lineage.append(RunLineage(run_id=r["id"], tenant=r["statement"]["contract"]["buyer"],
                                          statement_hash=r["statement_hash"], activity_id=a,
                                          factors_id=first["factors_id"]))
            if not tenants:
                continue
            kwh = np.stack(split) if split else np.zeros((0, len(names), activity.n))
            starts = activity.starts
            certs = claimed_wh_by_hour(conn, tenants, hour_index(starts)[0])
            tracked = tracked_devices(conn, int(starts[0]), int(starts[-1]) + activity.interval_minutes * 60)
            out.append(EmissionsInput(period=period, activity=activity, factors=factors, tenants=tenants, kwh=kwh,
                                      runs=lineage, sellers=sellers, certificates_wh=certs,
                                      tracked=frozenset(tracked) & frozenset(s.id for s in activity.sources),
                                      plants=not out, settings=_settings(first.get("settings"))))
    out.reverse()  # oldest first, newest (the one whose plants are reported) last
    return out


def _settings(frozen: dict[str, Any] | None) -> EmissionsSettings | None:
    """The settings a run statement froze (None for statements without them)."""
    return EmissionsSettings.model_validate(frozen) if frozen else None
