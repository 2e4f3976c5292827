"""Owner statements and emissions of a period, from the API's report routes."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from kwhub.hub.api import reports
from kwhub.hub.api import runs as runs_api
from kwhub.hub.api.problems import ApiProblem
from kwhub.hub.ui.auth import Viewer, viewer
from kwhub.hub.ui.flow import ALL
from kwhub.hub.ui.periods import chosen_period
from kwhub.hub.ui.render import page

router = APIRouter()


@router.get("/owners", response_class=HTMLResponse)
def owners(request: Request, period: str = "", who: Viewer = Depends(viewer("reports:read"))) -> HTMLResponse:
    from kwhub.core.settlement import SettlementError
    from kwhub.hub.ui.owner_data import period_owner_statements

    period = chosen_period(request, who, period)
    try:  # the API's figures (GET /api/v1/reports/owners), each settled run's statement parsed once
        statements = period_owner_statements(request.app.state.hub, request.app.state.ui_settled_runs, period)
        body = {"statements": {p: json.loads(st.model_dump_json()) for p, st in statements.items()
                               if who.principal.sees(p)}}
        problem = ""
    except SettlementError as exc:
        body, problem = {"statements": {}}, str(exc)
    return page(request, "owners.html", title=f"Owner statements {period}", who=who, period=period,
                statements=body["statements"], problem=problem)


@router.get("/emissions", response_class=HTMLResponse)
def emissions(request: Request, period: str = "", who: Viewer = Depends(viewer("reports:read"))) -> HTMLResponse:
    period = chosen_period(request, who, period)
    issued = runs_api.list_runs(request=request, period=period, contract=None, status="issued", who=who.principal,
                                params=ALL)["items"]
    key = ("emissions", who.principal.row_scope, getattr(request.app.state, "config_sha256", ""), period,
           tuple(sorted(r["id"] for r in issued)))

    figs = request.app.state.ui_flow_warmer.figures.get(period)
    if (figs is not None and figs.report is not None and figs.run_ids == set(key[-1])
            and figs.config == key[2]):  # the warmer computed this report when the runs were issued
        body = {**figs.report, "parties": [r for r in figs.report["parties"] if who.principal.sees(r["party"])]}
        return page(request, "emissions.html", title=f"Emissions {period}", who=who, period=period, body=body,
                    problem="")

    def make() -> tuple[dict[str, object], str]:
        try:
            return reports.emissions(request=request, period=period, who=who.principal), ""
        except ApiProblem as exc:
            return {"parties": [], "notes": []}, exc.detail

    body, problem = request.app.state.ui_flow_cache.get(key, make)
    return page(request, "emissions.html", title=f"Emissions {period}", who=who, period=period, body=body,
                problem=problem)
