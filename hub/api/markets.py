"""``/api/v1/markets/{iso}/variance``: the shadow settlement of an operating day against the ISO's statements."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request

from kwhub.hub.api.deps import hub_of, scope
from kwhub.hub.api.keys import Principal
from kwhub.hub.api.problems import ApiProblem, responses

router = APIRouter()


@router.get("/markets/{iso}/variance", responses=responses(401, 403, 404, 422),
            summary="Shadow settlement against every statement version of an operating day, by charge code")
def market_variance(request: Request,
                    iso: str = Path(..., pattern=r"^(ERCOT|CAISO|PJM)$", description="The ISO/RTO."),
                    day: date = Query(..., description="Operating day (YYYY-MM-DD, the ISO's market day)."),
                    statement: str | None = Query(None, max_length=200, description="Only this statement id."),
                    who: Principal = Depends(scope("markets:read"))) -> dict[str, Any]:
    """What ``kwhub market variance --format json`` prints: per statement version the totals per charge
    code (shadow, ISO, variance), the lines outside the tolerance with their cause, and what the
    version changed against the one before it. Each comparison is recorded as a shadow run (its
    inputs' digest and price versions), as the command records it."""
    from kwhub.hub.markets.service import MarketServiceError, variance_as_json, variance_for_day

    hub = hub_of(request)
    try:
        checks = variance_for_day(hub.db, hub.config, iso, day, statement)
    except MarketServiceError as exc:
        raise ApiProblem(404, str(exc)) from None
    return {"iso": iso, "day": day.isoformat(), "statements": variance_as_json(checks)}
