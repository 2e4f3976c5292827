"""Markets: bids, acceptance, awards and the variance per charge code of each statement version.

Market data belongs to the campus, not to one party, so the pages need ``markets:read``
(operators and auditors; tenant keys lack it). The period page lists the operating days that
have bids or statements; the day page (``/ui/markets/{iso}/{day}``) shows the day's
submissions with the ISO's verdict per bid, the awards in MWh per hour and, through the
API's own route function (``GET /api/v1/markets/{iso}/variance``), the shadow settlement
against every statement version.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from kwhub.hub.api import markets as markets_api
from kwhub.hub.ui.auth import UiError, Viewer, call_api, viewer
from kwhub.hub.ui.periods import chosen_period
from kwhub.hub.ui.render import page

router = APIRouter()
SCOPE = "markets:read"


def _campus_only(who: Viewer) -> None:
    if who.principal.party is not None:
        raise UiError(403, "Market bids and statements belong to the campus, not to one party: "
                           "an operator or auditor key sees them.")


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
def markets(request: Request, period: str = "", who: Viewer = Depends(viewer(SCOPE))) -> HTMLResponse:
    _campus_only(who)
    from kwhub.hub.markets.store import list_submissions

    period = chosen_period(request, who, period)
    db = request.app.state.hub.db
    isos = _isos(db)
    y, m = (int(x) for x in period.split("-"))
    subs = [s for s in list_submissions(db) if (s["trading_date"].year, s["trading_date"].month) == (y, m)]
    statements = {iso: period_statements(db, iso, period) for iso in isos}
    return page(request, "markets.html", title=f"Markets {period}", who=who, period=period, isos=isos,
                submissions=subs, statements=statements)


def day_awards(hub: Any, iso: str, day: date) -> dict[str, Any]:
    """The day's awards in MWh per hour of the ISO's operating day, per market and resource."""
    from kwhub.core.markets.hour_labels import DayGrid
    from kwhub.hub.markets.service import iso_timezone
    from kwhub.hub.markets.store import load_award_hours
    from kwhub.hub.store.market_tables import market_award_day_table as t

    with hub.db.read_connection() as conn:
        keys = sorted({(r[0], r[1]) for r in conn.execute(
            select(t.c.market, t.c.resource).where(t.c.iso == iso, t.c.trading_date == day))})
    if not keys:
        return {"hours": [], "rows": []}
    try:
        tz = iso_timezone(hub.config, iso)
    except Exception:  # noqa: BLE001 - no adapter configured any more: the hub's zone
        tz = hub.config.hub.timezone
    grid = DayGrid(day, tz, 60)
    rows = []
    for market, resource in keys:
        wh = load_award_hours(hub.db, iso, market, [resource], int(grid.starts[0]), len(grid))[0]
        mwh = [Decimal(int(v)) / Decimal(1_000_000) for v in wh.tolist()]
        rows.append({"market": market, "resource": resource, "mwh": mwh, "total": sum(mwh, Decimal(0))})
    return {"hours": [grid.he_label(i) for i in range(len(grid))], "rows": rows, "tz": tz}


def day_submissions(db: Any, iso: str, day: date) -> list[dict[str, Any]]:
    """The day's submissions, each with the ISO's verdict per bid."""
    from kwhub.hub.markets.store import list_submissions, load_submission

    out = []
    for row in list_submissions(db, iso, day):
        sub, _bids = load_submission(db, str(row["id"]))
        out.append({**row, "outcomes": [o if isinstance(o, dict) else o.model_dump() for o in sub.outcomes],
                    "messages": list(sub.messages)})
    return out


@router.get("/markets/{iso}/{day}", response_class=HTMLResponse)
def market_day(iso: str, day: str, request: Request, who: Viewer = Depends(viewer(SCOPE))) -> HTMLResponse:
    """One operating day: bids and acceptance, awards per hour, variance per charge code per statement version."""
    _campus_only(who)
    from kwhub.core.markets.rules import known_isos

    isos = known_isos()  # the built-ins and every ISO a plugin registered rules for
    if iso not in isos:
        raise UiError(404, f"No ISO {iso!r}: the dashboard knows {', '.join(isos)}. Pick a day on the Markets page.")
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise UiError(422, f"{day!r} is not a day (YYYY-MM-DD); pick one on the Markets page.") from None
    hub = request.app.state.hub
    subs = day_submissions(hub.db, iso, when)
    awards = day_awards(hub, iso, when)
    try:
        statements = call_api(markets_api.market_variance, request=request, iso=iso, day=when, statement=None,
                              who=who.principal)["statements"]
        missing = ""
    except UiError as exc:
        if exc.status != 404:
            raise
        statements, missing = [], exc.detail
    for st in statements:  # the version's totals over its charge codes (exact decimals, as the API gives them)
        st["total"] = {k: sum((Decimal(c[k]) for c in st["codes"]), Decimal(0)) for k in ("shadow", "iso", "variance")}
    if not subs and not awards["rows"] and not statements:
        raise UiError(404, f"No {iso} bids, awards or statements for {when}. Pick a day on the Markets page.")
    return page(request, "market_day.html", title=f"{iso} {when}", who=who, iso=iso, day=when,
                period=f"{when:%Y-%m}", submissions=subs, awards=awards, statements=statements, missing=missing)
