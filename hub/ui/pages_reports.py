"""Owner statements and emissions of a period, from the API's report routes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from kwhub.hub.api import reports
from kwhub.hub.api.problems import ApiProblem
from kwhub.hub.ui.auth import Viewer, viewer
from kwhub.hub.ui.periods import chosen_period
from kwhub.hub.ui.render import page

router = APIRouter()


@router.get("/owners", response_class=HTMLResponse)
def owners(request: Request, period: str = "", who: Viewer = Depends(viewer("reports:read"))) -> HTMLResponse:
    period = chosen_period(request, who, period)
    try:
        body = reports.owner_statements(request=request, period=period, owner=None, who=who.principal)
        problem = ""
    except ApiProblem as exc:
        body, problem = {"statements": {}}, exc.detail
    return page(request, "owners.html", title=f"Owner statements {period}", who=who, period=period,
                statements=body["statements"], problem=problem)


@router.get("/emissions", response_class=HTMLResponse)
def emissions(request: Request, period: str = "", who: Viewer = Depends(viewer("reports:read"))) -> HTMLResponse:
    period = chosen_period(request, who, period)
    try:
        body = reports.emissions(request=request, period=period, who=who.principal)
        problem = ""
    except ApiProblem as exc:
        body, problem = {"parties": [], "notes": []}, exc.detail
    return page(request, "emissions.html", title=f"Emissions {period}", who=who, period=period, body=body,
                problem=problem)
