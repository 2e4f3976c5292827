"""Owner statements of a period, from what the settlement runs froze.

Revenue follows the energy the runs billed, never a second computation: it comes from the
settled runs' lines (and, for resources offered into an ISO, from the latest ISO statement
versions of the period, :func:`kwhub.hub.markets.service.market_revenue_items`) and the kWh
by source behind them (:func:`kwhub.core.ownership.attributed_revenues`). Plant operations
(net generation and metered fuel of the owned assets) are read from the validated store.
Emissions are in :mod:`kwhub.hub.esg`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import select

from kwhub.core.money import MoneyPolicy
from kwhub.core.ownership import AssetOperations, OwnerStatement, SettledRun, owner_statements
from kwhub.core.settlement import SettlementError
from kwhub.core.timeline import billing_period
from kwhub.core.versions import SETTLED
from kwhub.hub.config import KwhubConfig
from kwhub.hub.store import Database
from kwhub.hub.store.settlement_tables import settlement_run_table

_ORDER = {"initial": 0, "final": 1, "true_up": 2}


def _latest(db: Database, period: str, statuses: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """``(run id, statement)`` of each contract's latest run with one of ``statuses``."""
    t = settlement_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.contract_id, t.c.version_kind, t.c.seq, t.c.statement)
                            .where(t.c.period == period, t.c.status.in_(statuses))).all()
    best: dict[str, Any] = {}
    for r in rows:
        key = (_ORDER.get(r.version_kind, 9), r.seq)
        if r.contract_id not in best or key > best[r.contract_id][0]:
            best[r.contract_id] = (key, r)
    return [(r.id, json.loads(r.statement)) for _, r in (best[c] for c in sorted(best))]


def settled_runs(db: Database, period: str) -> list[SettledRun]:
    """The period's settled runs (issued or no change), the latest version of each contract."""
    return [SettledRun.from_statement(st) for _, st in _latest(db, period, SETTLED)]


def _channel_sums(db: Database, cfg: KwhubConfig, period: str, ids: list[str]) -> dict[str, float]:
    """Period totals of channels in the validated layer (each at its own interval length)."""
    if not ids:
        return {}
    span = billing_period(period, cfg.hub.timezone).span
    by_len: dict[int, list[str]] = defaultdict(list)
    for cid in ids:
        by_len[cfg.campus.channel(cid).interval_minutes].append(cid)
    out: dict[str, float] = {}
    for minutes, group in by_len.items():
        m = db.intervals.read_matrix(group, span, minutes, layer="validated")
        out.update({cid: float(v) for cid, v in zip(m.channel_ids, np.nansum(m.values, axis=1).tolist(), strict=True)})
    return out


def asset_operations(db: Database, cfg: KwhubConfig, period: str) -> dict[str, AssetOperations]:
    """Net generation (MWh) and metered fuel (MMBtu) of each owned asset over the period."""
    from kwhub.core.settlement import kwh_factor

    owned = {a.id for a in cfg.campus.assets if a.owners}
    gen = [c for c in cfg.campus.channels if c.asset in owned and c.role == "generation"]
    fuel = [c for c in cfg.campus.channels if c.asset in owned and c.role == "fuel"]
    sums = _channel_sums(db, cfg, period, [c.id for c in gen + fuel])
    ops: dict[str, dict[str, Decimal]] = defaultdict(lambda: {"mwh": Decimal(0), "mmbtu": Decimal(0)})
    for c in gen:
        kwh = sums.get(c.id, 0.0) * kwh_factor(c, c.interval_minutes)
        ops[c.asset]["mwh"] += Decimal(repr(kwh)) / 1000
    for c in fuel:
        ops[c.asset]["mmbtu"] += Decimal(repr(sums.get(c.id, 0.0)))
    return {a: AssetOperations(generation_mwh=v["mwh"].quantize(Decimal("0.001")),
                               fuel_mmbtu=v["mmbtu"].quantize(Decimal("0.001"))) for a, v in ops.items()}


def period_owner_statements(db: Database, cfg: KwhubConfig, period: str,
                            owner: str | None = None) -> dict[str, OwnerStatement]:
    """Owner statements of ``period`` (all owners, or one)."""
    runs = settled_runs(db, period)
    if not runs:
        raise SettlementError(f"no settled run for period {period}: owner revenue follows issued runs "
                              f"(`kwhub settle --period {period}`, then approve held runs)")
    policy = MoneyPolicy(currency=cfg.hub.currency)
    market = []
    if cfg.file.markets.resources:
        from kwhub.hub.markets.service import market_revenue_items

        market = market_revenue_items(db, cfg, period)
    out = owner_statements(cfg.campus, runs, asset_operations(db, cfg, period), cfg.file.ownership, policy, period,
                           market)
    if owner is not None:
        if owner not in {o.party for a in cfg.campus.assets for o in a.owners}:
            raise SettlementError(f"{owner!r} owns no asset (owners: "
                                  f"{', '.join(sorted({o.party for a in cfg.campus.assets for o in a.owners}))})")
        out = {k: v for k, v in out.items() if k == owner}
    return out
