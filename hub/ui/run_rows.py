"""The runs page's rows: the API's run list (``GET /api/v1/runs``), read a page at a time.

:func:`kwhub.hub.settle.review.list_runs` reads every run's draft and checks, which the store
keeps after the run's full statement; on a campus-year (240 runs, each statement holding every
channel it read) reading past the statements is most of the page's time. Here the runs' key
columns (stored before the statement) are read for all runs, sorted and filtered exactly as the
API does (the same order, the caller sees a run when it sees the run's contract's buyer), and
the draft, checks and the rest only for the runs shown: the page's runs and those waiting for
a decision. The rows have the API's shape (``tests/test_ui_pages.py`` checks they equal it).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from kwhub.core.versions import kind_order
from kwhub.hub.store.settlement_tables import settlement_run_table as T

PER_PAGE = 100
WAITING = ("held", "draft")


def run_rows(hub: Any, who: Any, *, period: str | None, status: str | None, page_no: int
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(this page's runs, newest first; the runs waiting for a decision; the number of runs that match)."""
    buyers = {c.id: c.buyer for c in hub.campus.contracts}
    q = select(T.c.id, T.c.contract_id, T.c.period, T.c.version_kind, T.c.seq, T.c.status)
    if period:
        q = q.where(T.c.period == period)
    if status:
        q = q.where(T.c.status == status)
    with hub.db.engine.connect() as conn:
        keys = [dict(r._mapping) for r in conn.execute(q) if who.sees(buyers.get(r.contract_id))]
    keys.sort(key=lambda r: (r["period"], r["contract_id"], kind_order(r["version_kind"]), r["seq"]))
    keys.reverse()
    shown = keys[(page_no - 1) * PER_PAGE:page_no * PER_PAGE]
    waiting = [r for r in keys if r["status"] in WAITING]
    ids = {r["id"] for r in shown} | {r["id"] for r in waiting}
    rest: dict[str, dict[str, Any]] = {}
    if ids:
        with hub.db.engine.connect() as conn:
            for r in conn.execute(select(T.c.id, T.c.invoice_id, T.c.created_at, T.c.stale, T.c.draft, T.c.checks)
                                  .where(T.c.id.in_(sorted(ids)))):
                draft = json.loads(r.draft) if r.draft else None
                checks = json.loads(r.checks or "[]")
                rest[r.id] = {
                    "invoice_id": r.invoice_id, "created_at": str(r.created_at), "stale": r.stale,
                    "document": None if draft is None else {"kind": draft["kind"], "total": draft["total"],
                                                            "currency": draft["currency"], "number": draft["number"]},
                    "held_reasons": [f"{c['check']}: {c['message']}" for c in checks if not c["passed"]]}
    return ([{**r, **rest[r["id"]]} for r in shown], [{**r, **rest[r["id"]]} for r in waiting[::-1]], len(keys))
