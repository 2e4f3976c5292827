"""Adds the dashboard to the API application: pages under ``/ui``, static files, error pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from kwhub.hub.ui.auth import SignInNeeded, UiError
from kwhub.hub.ui.flow import FlowCache, FlowWarmer
from kwhub.hub.ui.owner_data import SettledRuns
from kwhub.hub.ui.render import page
from kwhub.hub.ui.session import SessionStore
from kwhub.hub.ui.throttle import SignInThrottle

STATIC = Path(__file__).parent / "static"
HEADINGS = {400: "Bad request", 401: "Not signed in", 403: "Not allowed", 404: "Not found", 409: "Not possible now",
            413: "Form too large", 422: "Check the form", 500: "Something went wrong"}


def install(app: Any) -> None:
    """Mount the dashboard on ``app`` (the FastAPI app of :func:`kwhub.hub.api.app.create_app`)."""
    from kwhub.hub.ui import (
        pages_auth,
        pages_campus,
        pages_invoices,
        pages_markets,
        pages_ops,
        pages_quality,
        pages_reports,
        pages_runs,
    )

    app.state.ui_sessions = SessionStore(app.state.hub.db)  # in the database: shared by every worker
    app.state.ui_signin_throttle = SignInThrottle()  # 10 failed sign-ins per address and minute, then 429
    app.state.ui_flow_cache = FlowCache()
    app.state.ui_settled_runs = SettledRuns()  # parsed statements of settled runs (they never change)
    app.state.ui_flow_warmer = warmer = FlowWarmer(app)
    app.state.hub.issue_listeners.append(warmer.kick)  # runs issued through this app: recompute at once
    for module in (pages_auth, pages_campus, pages_runs, pages_invoices, pages_ops, pages_quality, pages_reports,
                   pages_markets):
        app.include_router(module.router, prefix="/ui", include_in_schema=False)
    app.mount("/ui/static", StaticFiles(directory=str(STATIC)), name="ui-static")

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": exc.location})
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(UiError)
    async def _ui_error(request: Request, exc: UiError) -> Response:
        from kwhub.hub.ui.auth import Viewer

        who = None
        sess = getattr(request.state, "ui_session", None)  # set when the session was read for this request
        principal = getattr(request.state, "principal", None)
        if sess is not None and principal is not None:
            who = Viewer(principal, sess)
        return page(request, "error.html", status_code=exc.status, title=HEADINGS.get(exc.status, "Error"), who=who,
                    code=exc.status, heading=HEADINGS.get(exc.status, "Error"), detail=exc.detail)
