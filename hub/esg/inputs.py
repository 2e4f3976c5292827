"""Emissions inputs from the store: a period's settled runs, their frozen split and carbon basis.

:func:`period_inputs` builds the :class:`~kwhub.core.carbon_period.EmissionsInput` of a billing
period from what the runs froze, never from a second computation: each contract's latest
settled run (issued, or a later version with nothing to bill), its ``run_allocation``
blobs (the tenant's kWh per source and interval), the activity and factors its
``run_carbon`` row names (stored once per content in ``carbon_data``), who sold the tenant
each source (the sellers of the contracts that billed it), and the certificates the tenant
claimed per hour.

When the runs of one period rest on different data (one tenant's contract settled again as
``final`` after a correction, another's not), each tenant follows its own run and there is
one input per activity; the plants' Scope 1 comes from the newest. A tenant with two
contracts has the same split frozen in both runs and counts once.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from sqlalchemy import select

from kwhub.core.allocation import UNMETERED, inflate
from kwhub.core.campus import Campus
from kwhub.core.carbon_activity import CarbonActivity
from kwhub.core.carbon_factors import FactorSet
from kwhub.core.carbon_period import EmissionsInput
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.cfe import hour_index
from kwhub.core.disclosure import RunLineage
from kwhub.core.settlement import SettlementError
from kwhub.core.versions import SETTLED
from kwhub.hub.esg.carbon_store import FACTORS, HEADER, read_blobs
from kwhub.hub.esg.ledger import claimed_wh_by_hour, tracked_devices
from kwhub.hub.store import Database
from kwhub.hub.store.carbon_tables import run_carbon_table
from kwhub.hub.store.settlement_tables import run_allocation_table, settlement_run_table

_ORDER = {"initial": 0, "final": 1, "true_up": 2}
_ZEROS = ("0.0", "-0.0", "0")
_CHUNK = 500


def latest_runs(db: Database, period: str, statuses: Sequence[str] = SETTLED) -> list[dict[str, Any]]:
    """Each contract's latest run of ``period`` with one of ``statuses`` (id, contract, hash, created_at)."""
    t = settlement_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.contract_id, t.c.version_kind, t.c.seq, t.c.statement_hash,
                                   t.c.created_at)
                            .where(t.c.period == period, t.c.status.in_(list(statuses)))).all()
    best: dict[str, Any] = {}
    for r in rows:
        key = (_ORDER.get(r.version_kind, 9), r.seq)
        if r.contract_id not in best or key > best[r.contract_id][0]:
            best[r.contract_id] = (key, r)
    return [{"id": r.id, "contract": r.contract_id, "created_at": r.created_at, "statement_hash": r.statement_hash}
            for _, r in (best[c] for c in sorted(best))]


def _carbon_rows(conn: Any, run_ids: list[str]) -> dict[str, Any]:
    t = run_carbon_table
    out = {}
    for i in range(0, len(run_ids), _CHUNK):
        for r in conn.execute(select(t).where(t.c.run_id.in_(run_ids[i:i + _CHUNK]))):
            out[r.run_id] = r
    return out


def period_inputs(db: Database, campus: Campus, period: str) -> list[EmissionsInput]:
    """The emissions inputs of ``period`` (one per frozen activity, newest last); see the module docs."""
    runs = latest_runs(db, period)
    with db.engine.connect() as conn:
        carbon = _carbon_rows(conn, [r["id"] for r in runs])
        runs = [r for r in runs if r["id"] in carbon]
        if not runs:
            raise SettlementError(f"no settled run of period {period} carries a carbon basis (settle the period with "
                                  f"allocation-based contracts first: `kwhub settle --period {period}`, then approve "
                                  "held runs)")
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in runs:
            groups[carbon[r["id"]].activity_id].append(r)
        order = sorted(groups, key=lambda a: max((r["created_at"], r["id"]) for r in groups[a]))
        factor_ids = {a: carbon[groups[a][0]["id"]].factors_id for a in order}
        blobs = read_blobs(conn, [*order, *factor_ids.values()])
        out: list[EmissionsInput] = []
        seen: set[str] = set()
        for a in reversed(order):  # the newest activity first: a tenant follows its newest run
            activity = CarbonActivity.from_stored(json.loads(blobs[a][HEADER]), blobs[a])
            factors = FactorSet.from_json(json.loads(blobs[factor_ids[a]][FACTORS]), blobs[factor_ids[a]])
            own: dict[str, dict[str, Any]] = {}  # tenant -> its newest run of this group
            for r in sorted(groups[a], key=lambda r: (r["created_at"], r["id"])):
                tenant = carbon[r["id"]].tenant
                if tenant not in seen:
                    own[tenant] = r
            if not own:
                continue
            tenants = sorted(own)
            kwh = _split(conn, activity, {own[t]["id"]: k for k, t in enumerate(tenants)}, len(tenants))
            sellers: dict[tuple[str, str], str] = {}
            for r in groups[a]:
                row = carbon[r["id"]]
                sellers.update({(row.tenant, src): who for src, who in json.loads(row.sellers).items()})
            lineage = [RunLineage(run_id=r["id"], tenant=carbon[r["id"]].tenant, statement_hash=r["statement_hash"],
                                  activity_id=a, factors_id=factor_ids[a]) for r in sorted(groups[a], key=lambda r: r["id"])]
            frozen = json.loads(carbon[own[tenants[0]]["id"]].settings)
            starts = activity.starts
            end = int(starts[-1]) + activity.interval_minutes * 60
            out.append(EmissionsInput(
                period=period, activity=activity, factors=factors, tenants=tenants, kwh=kwh, runs=lineage,
                sellers=sellers, certificates_wh=claimed_wh_by_hour(conn, tenants, hour_index(starts)[0]),
                tracked=frozenset(tracked_devices(conn, int(starts[0]), end)) & frozenset(s.id for s in activity.sources),
                plants=not out, settings=EmissionsSettings.model_validate(frozen) if frozen else None))
            seen |= set(tenants)
    out.reverse()  # oldest first, newest (the one whose plants are reported) last
    return out


def _split(conn: Any, activity: CarbonActivity, slot: dict[str, int], n_tenants: int) -> np.ndarray:
    """``(T, S+1, N)`` kWh of the runs ``slot`` (run id -> tenant index), unpacked straight into place."""
    names = [s.id for s in activity.sources] + [UNMETERED]
    col = {s: j for j, s in enumerate(names)}
    out = np.empty((n_tenants, len(names), activity.n))
    filled = np.zeros((n_tenants, len(names)), dtype=bool)
    t = run_allocation_table
    ids = list(slot)
    rows: list[tuple[str, str, bytes]] = []
    for i in range(0, len(ids), _CHUNK):
        q = select(t.c.run_id, t.c.source, t.c.blob).where(t.c.run_id.in_(ids[i:i + _CHUNK]), t.c.kwh.notin_(_ZEROS))
        rows += [(r, s, bytes(b)) for r, s, b in conn.execute(q)]
    for run_id, source, _ in rows:
        if source not in col:
            raise SettlementError(f"run {run_id}: source {source!r} of the frozen split is not a source of its "
                                  f"carbon activity ({', '.join(names)})")
    def unpack(part: list[tuple[str, str, bytes]]) -> None:
        for run_id, source, blob in part:
            arr = np.frombuffer(inflate(blob), dtype="<f8")
            if arr.size != activity.n:
                raise SettlementError(f"run {run_id}: the frozen split of {source} holds {arr.size} intervals, the "
                                      f"activity {activity.n}")
            k, j = slot[run_id], col[source]
            out[k, j] = arr
            filled[k, j] = True

    # inflating the blobs is most of the work and inflate releases the GIL: one share of the rows per core
    workers = max(1, min(os.cpu_count() or 1, len(rows)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(unpack, [rows[i::workers] for i in range(workers)]))
    out[~filled] = 0.0
    return out
