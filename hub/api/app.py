"""The FastAPI application: ``/api/v1`` routes, ``/healthz``, ``/openapi.json``, problem details.

:func:`create_app` builds it around a :class:`~kwhub.hub.app.Hub`; the routes reach the
services only through that hub. The API's database scopes every transaction to the
caller's party (:meth:`kwhub.hub.store.Database.scope_requests`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI

from kwhub.hub.api import admin, campus, health, invoices, markets, problems, reports, runs

API_PREFIX = "/api/v1"
log = logging.getLogger("kwhub.api")


class AccessLog:
    """A pure ASGI middleware writing one structured log line per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            state = scope.get("state") or {}
            principal = state.get("principal")
            log.info("%s %s %s", scope["method"], scope["path"], status["code"], extra={
                "method": scope["method"], "path": scope["path"], "status": status["code"],
                "ms": round((time.perf_counter() - started) * 1000, 3),
                "key": getattr(principal, "key_id", None)})


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with every 422 answer documented as the problem details it is."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    problem = {"description": problems.TITLES[422],
               "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}},
                           "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for path in schema.get("paths", {}).values():
        for op in path.values():
            if "422" in op.get("responses", {}):
                op["responses"]["422"] = problem
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        comps.pop(name, None)
    comps.setdefault("Problem", problems.Problem.model_json_schema(ref_template="#/components/schemas/{model}"))
    app.openapi_schema = schema
    return schema


def create_app(hub: Any, *, access_log: bool = True) -> FastAPI:
    """The API for ``hub`` (its database is switched to per-request row scopes)."""
    from kwhub.hub.api.reload import config_sha256

    hub.db.scope_requests()
    app = FastAPI(
        title="kwhub", version="1",
        description="Meter-to-cash hub API. Every route under /api/v1 needs an API key "
                    "(`Authorization: Bearer kwh_...`, created with `kwhub keys create`); a tenant key sees "
                    "only its own party's documents and data. Errors are RFC 9457 problem details "
                    "(application/problem+json); lists are pages `{items, next_cursor}`.",
        openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.hub = hub
    app.state.config_sha256 = config_sha256(hub)
    problems.install(app)
    for module in (campus, runs, invoices, reports, markets, admin):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    from kwhub.hub.ui.mount import install as install_ui

    install_ui(app)  # the dashboard under /ui (kwhub.hub.ui)
    if access_log:
        app.add_middleware(AccessLog)
    return app
