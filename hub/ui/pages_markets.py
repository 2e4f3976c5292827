"""Markets: bid submissions and the ISO statements of a period, totals per charge code (operators and auditors).

Market data belongs to the campus, not to one party, so the page needs ``reports:read`` and
a key for every party (a tenant or a party-limited key gets 403). It reads the market store
(:mod:`kwhub.hub.markets.store`); the API has no market routes yet.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from kwhub.hub.ui.auth import UiError, Viewer, viewer
from kwhub.hub.ui.periods import chosen_period
from kwhub.hub.ui.render import page

router = APIRouter()


def _isos(db: Any) -> list[str]:
    from kwhub.hub.store.market_tables import market_statement_table as t
    from kwhub.hub.store.market_tables import market_submission_table as s

    with db.read_connection() as conn:
        found = {r[0] for r in conn.execute(select(t.c.iso).distinct())}
        found |= {r[0] for r in conn.execute(select(s.c.iso).distinct())}
    return sorted(found)


def period_statements(db: Any, iso: str, period: str) -> list[dict[str, Any]]:
    """Per operating day and market of ``period``: the latest statement version and its totals per charge code."""
    from kwhub.hub.markets.store import load_statements

    y, m = (int(x) for x in period.split("-"))
    first, last = date(y, m, 1), date(y + (m == 12), m % 12 + 1, 1)
    versions: dict[tuple[date, str], list[Any]] = defaultdict(list)
    for s in load_statements(db, iso, first=first, last=last):
        if s.statement.operating_day < last:
            versions[(s.statement.operating_day, s.statement.market)].append(s)
    out = []
    for (day, market), vs in sorted(versions.items()):
        latest = vs[-1]  # arrival order: the later one wins
        codes: dict[str, Decimal] = defaultdict(lambda: Decimal("0"))
        for ln in latest.statement.lines:
            codes[ln.code] += ln.amount
        out.append({"day": day, "market": market, "kind": latest.statement.kind, "id": latest.statement.statement_id,
                    "versions": len(vs), "received_at": latest.received_at, "codes": dict(sorted(codes.items())),
                    "total": latest.statement.total()})
    return out


@router.get("/markets", response_class=HTMLResponse)
def markets(request: Request, period: str = "", who: Viewer = Depends(viewer("reports:read"))) -> HTMLResponse:
    if who.principal.party is not None:
        raise UiError(403, "Market bids and statements belong to the campus, not to one party: "
                           "an operator or auditor key sees them.")
    from kwhub.hub.markets.store import list_submissions

    period = chosen_period(request, who, period)
    db = request.app.state.hub.db
    isos = _isos(db)
    y, m = (int(x) for x in period.split("-"))
    subs = [s for s in list_submissions(db) if (s["trading_date"].year, s["trading_date"].month) == (y, m)]
    statements = {iso: period_statements(db, iso, period) for iso in isos}
    return page(request, "markets.html", title=f"Markets {period}", who=who, period=period, isos=isos,
                submissions=subs, statements=statements)
