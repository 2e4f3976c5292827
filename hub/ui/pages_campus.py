"""Campus now: the energy flow as a Sankey (refreshed by htmx) and per-tenant kW, CFE % and intensity."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from kwhub.hub.ui.auth import Viewer, viewer
from kwhub.hub.ui.flow import campus_now
from kwhub.hub.ui.render import page

router = APIRouter()


def _context(request: Request, who: Viewer) -> dict[str, object]:
    hub = request.app.state.hub
    flow, carbon, note = campus_now(hub, request, who.principal, request.app.state.ui_flow_warmer)
    return {"flow": flow, "carbon": carbon, "carbon_note": note, "updating": request.app.state.ui_flow_warmer.updating,
            "sankey_json": json.dumps(flow.sankey()), "refresh_s": 30}


@router.get("/campus", response_class=HTMLResponse)
def campus(request: Request, who: Viewer = Depends(viewer("campus:read"))) -> HTMLResponse:
    return page(request, "campus.html", title="Campus now", who=who, **_context(request, who))


@router.get("/campus/flow", response_class=HTMLResponse)
def campus_flow(request: Request, who: Viewer = Depends(viewer("campus:read"))) -> HTMLResponse:
    """The fragment htmx swaps in every ``refresh_s`` seconds."""
    return page(request, "campus_flow.html", title="", who=who, **_context(request, who))
