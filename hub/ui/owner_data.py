"""Owner statements for the dashboard: the API's figures, with each settled run's statement read once.

``GET /api/v1/reports/owners`` (:func:`kwhub.hub.settle.owners.period_owner_statements`) reads and
parses the stored statement of each contract's latest settled run on every call; on a campus-year
that is most of a page's time (a statement holds every channel the run read). A settled run
(issued, or no change) never changes, so :class:`SettledRuns` keeps the parsed runs by run id.
Which runs are the latest is asked of the database on every request (one narrow query, the run's
key columns only), and the assets' metered generation and fuel and the market revenue are read
fresh each time, exactly as the API reads them; only the immutable part is remembered.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from sqlalchemy import select

from kwhub.core.money import MoneyPolicy
from kwhub.core.ownership import SettledRun, owner_statements
from kwhub.core.settlement import SettlementError
from kwhub.core.versions import SETTLED
from kwhub.hub.store.settlement_tables import settlement_run_table

_ORDER = {"initial": 0, "final": 1, "true_up": 2}  # as kwhub.hub.settle.owners picks the latest version


class SettledRuns:
    """Parsed settled runs by run id (the latest ``size``)."""

    def __init__(self, size: int = 96) -> None:
        self._items: OrderedDict[str, SettledRun] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def latest(self, db: Any, period: str) -> list[SettledRun]:
        """The period's settled runs, the latest version of each contract (as ``settled_runs``)."""
        t = settlement_run_table
        with db.engine.connect() as conn:
            rows = conn.execute(select(t.c.id, t.c.contract_id, t.c.version_kind, t.c.seq)
                                .where(t.c.period == period, t.c.status.in_(SETTLED))).all()
        best: dict[str, Any] = {}
        for r in rows:
            key = (_ORDER.get(r.version_kind, 9), r.seq)
            if r.contract_id not in best or key > best[r.contract_id][0]:
                best[r.contract_id] = (key, r.id)
        ids = [best[c][1] for c in sorted(best)]
        with self._lock:
            missing = [i for i in ids if i not in self._items]
        if missing:
            with db.engine.connect() as conn:
                read = dict(conn.execute(select(t.c.id, t.c.statement).where(t.c.id.in_(missing))).all())
            parsed = {i: SettledRun.from_statement(json.loads(read[i])) for i in missing}
            with self._lock:
                self._items.update(parsed)
        with self._lock:
            out = []
            for i in ids:
                self._items.move_to_end(i)
                out.append(self._items[i])
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return out


def period_owner_statements(hub: Any, runs: SettledRuns, period: str) -> dict[str, Any]:
    """Every owner's statement of ``period`` (what :func:`kwhub.hub.settle.owners.period_owner_statements`
    gives with no owner chosen); SettlementError when the period has no settled run."""
    from kwhub.hub.settle.owners import asset_operations

    cfg, db = hub.config, hub.db
    settled = runs.latest(db, period)
    if not settled:
        raise SettlementError(f"no settled run for period {period}: owner revenue follows issued runs "
                              f"(`kwhub settle --period {period}`, then approve held runs)")
    market = []
    if cfg.file.markets.resources:
        from kwhub.hub.markets.service import market_revenue_items

        market = market_revenue_items(db, cfg, period)
    return owner_statements(cfg.campus, settled, asset_operations(db, cfg, period), cfg.file.ownership,
                            MoneyPolicy(currency=cfg.hub.currency), period, market)
