"""``/api/v1/reports/owner-statements`` and ``/api/v1/reports/emissions``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from kwhub.hub.api.deps import hub_of, scope
from kwhub.hub.api.keys import Principal
from kwhub.hub.api.problems import ApiProblem, responses

router = APIRouter()
PERIOD = Query(..., pattern=r"^(19|20|21)\d{2}-(0[1-9]|1[0-2])$", description="Billing period YYYY-MM.")


@router.get("/reports/owner-statements", responses=responses(401, 403, 404, 422),
            summary="Owner statements: revenue and costs of co-owned assets by share")
def owner_statements(request: Request, period: str = PERIOD, owner: str | None = Query(None, max_length=200),
                     who: Principal = Depends(scope("reports:read"))) -> dict[str, Any]:
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.settle.owners import period_owner_statements

    hub = hub_of(request)
    if owner is not None and not who.sees(owner):
        raise ApiProblem(404, f"no owner statement for {owner!r}")
    try:
        statements = period_owner_statements(hub.db, hub.config, period, owner=owner)
    except SettlementError as exc:
        raise ApiProblem(404, str(exc)) from None
    return {"period": period, "statements": {p: json.loads(st.model_dump_json()) for p, st in statements.items()
                                             if who.sees(p)}}


@router.get("/reports/emissions", responses=responses(401, 403, 404, 422),
            summary="Scope 1, 2 and 3 (category 3) per party from the runs' frozen allocation (a tenant sees its own)")
def emissions(request: Request, period: str = PERIOD, who: Principal = Depends(scope("reports:read"))) -> dict[str, Any]:
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.esg.reports import period_disclosure

    hub = hub_of(request)
    try:
        disclosure = period_disclosure(hub.db, hub.config, period)
    except (SettlementError, ValueError) as exc:
        raise ApiProblem(404, str(exc)) from None
    rows = [r for r in disclosure.summary() if who.sees(r["party"])]
    return {"period": period, "gwp_set": disclosure.gwp_set, "region": disclosure.region, "parties": rows,
            "notes": list(disclosure.notes)}
