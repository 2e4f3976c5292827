"""What every route needs: the Hub, the caller (API key, scopes, party) and pages.

A route states the scope it needs with ``Depends(scope("invoices:read"))``. The caller's
party becomes the row scope of every database transaction of the request
(:data:`kwhub.hub.store.db.ROW_SCOPE`: PostgreSQL's row-level security applies it); the
routes filter by party in code as well, so SQLite gives the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from kwhub.hub.api.keys import Principal, verify_cached, verify_token
from kwhub.hub.api.problems import ApiProblem
from kwhub.hub.store.db import ROW_SCOPE

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer kwh_<id>_<secret>` "
                                                  "(`kwhub keys create` prints it once).")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kwhub"'}
CURSOR_PATTERN = r"^[0-9a-z]{1,12}$"


def hub_of(request: Request) -> Any:
    return request.app.state.hub


def scope(needed: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency: the caller, who must hold ``needed`` (401 without a valid key, 403 without the scope)."""

    async def dependency(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiProblem(401, "send an API key: Authorization: Bearer kwh_<id>_<secret>", CHALLENGE)
        hub = request.app.state.hub
        ttl = hub.config.file.api.key_cache_s
        principal = verify_cached(credentials.credentials, ttl=ttl)  # on the event loop: no thread hop
        if principal is False:  # not in the cache (or older than ttl): read the key table in a worker thread
            principal = await run_in_threadpool(verify_token, hub.db, credentials.credentials, ttl=ttl)
        if not isinstance(principal, Principal):
            raise ApiProblem(401, "the API key is unknown, expired or revoked", CHALLENGE)
        if needed not in principal.scopes:
            raise ApiProblem(403, f"this key lacks the scope {needed!r} (it has: {', '.join(sorted(principal.scopes))})")
        ROW_SCOPE.set(principal.row_scope)
        request.state.principal = principal
        return principal

    return dependency


class PageParams(BaseModel):
    """``limit`` and ``cursor`` of a list request."""

    limit: int
    offset: int


def page_params(request: Request, limit: int | None = Query(None, ge=1, le=10_000, description="Items per page."),
                cursor: str | None = Query(None, pattern=CURSOR_PATTERN,
                                           description="`next_cursor` of the previous page.")) -> PageParams:
    api = request.app.state.hub.config.file.api
    lim = min(limit or api.page_limit, api.page_limit_max)
    return PageParams(limit=lim, offset=decode_cursor(cursor) if cursor else 0)


def encode_cursor(position: int) -> str:
    """An opaque cursor for a position (an offset, or a readings page's first instant)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    n = max(position, 0)
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def decode_cursor(cursor: str) -> int:
    """The position of a cursor (any cursor matching :data:`CURSOR_PATTERN` is one)."""
    try:
        return int(cursor, 36)
    except ValueError:
        raise ApiProblem(400, "cursor is not one this API gave out; start again without it") from None


def page(items: list[Any], params: PageParams) -> dict[str, Any]:
    """Slice ``items`` (already filtered and ordered) into the page's shape."""
    chunk = items[params.offset:params.offset + params.limit]
    more = params.offset + params.limit < len(items)
    return {"items": chunk, "next_cursor": encode_cursor(params.offset + params.limit) if more else None}
