"""Who is looking at a page: the session's key, read with the session from the database.

``Depends(viewer("invoices:read"))`` gives the page a :class:`Viewer` (the API's
:class:`~kwhub.hub.api.keys.Principal` plus the session's CSRF token) and sets the same
database row scope the API sets (:data:`kwhub.hub.store.db.ROW_SCOPE`). Without a session
the browser is sent to the sign-in page; without the scope the page answers 403.
``Depends(form_viewer(...))`` does the same for a form POST and also requires the CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from kwhub.hub.api.keys import Principal
from kwhub.hub.api.problems import ApiProblem
from kwhub.hub.store.db import ROW_SCOPE
from kwhub.hub.ui.session import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, SessionStore, same_token


class UiError(Exception):
    """A page that cannot be shown: its status and what to do about it."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class SignInNeeded(Exception):
    """No valid session: the browser goes to the sign-in page and comes back to ``next``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path

    @property
    def location(self) -> str:
        return f"/ui/login?next={quote(self.next_path, safe='/')}"


@dataclass(frozen=True)
class Viewer:
    """The signed-in caller of a page."""

    principal: Principal
    session: Session

    @property
    def csrf(self) -> str:
        return self.session.csrf

    def can(self, scope: str) -> bool:
        return scope in self.principal.scopes


async def form_of(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form POST (the first value of each; read once per request)."""
    cached = getattr(request.state, "ui_form", None)
    if cached is None:
        body = await request.body()
        if len(body) > 64 * 1024:
            raise UiError(413, "The form is too large (64 KiB at most); shorten the text and submit again.")
        cached = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        request.state.ui_form = cached
    return cached  # type: ignore[no-any-return]


def sessions(request: Request) -> SessionStore:
    return request.app.state.ui_sessions  # type: ignore[no-any-return]


async def _current(request: Request, needed: str | None) -> Viewer:
    sess = await run_in_threadpool(sessions(request).get, request.cookies.get(COOKIE))
    if sess is None:
        raise SignInNeeded(request.url.path)
    principal = sess.principal
    if needed is not None and needed not in principal.scopes:
        raise UiError(403, f"Your key ({principal.role}) lacks the scope {needed!r}. "
                           "Sign in with a key that has it, or ask an operator for one.")
    ROW_SCOPE.set(principal.row_scope)
    request.state.principal = principal
    request.state.ui_session = sess
    return Viewer(principal, sess)


def viewer(needed: str | None = None) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """A dependency for a page: the signed-in viewer, who must hold ``needed``."""

    async def dependency(request: Request) -> Viewer:
        return await _current(request, needed)

    return dependency


def form_viewer(needed: str) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """A dependency for a form POST: the viewer, who must hold ``needed`` and send the session's CSRF token."""

    async def dependency(request: Request) -> Viewer:
        who = await _current(request, None)
        form = await form_of(request)
        given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not same_token(who.csrf, given):
            raise UiError(403, "The form's security token is missing or out of date. "
                               "Reload the page and submit the form again.")
        if needed not in who.principal.scopes:
            raise UiError(403, f"Your key ({who.principal.role}) lacks the scope {needed!r}; "
                               "ask an operator to do this or to give you a key that may.")
        return who

    return dependency


def call_api(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Call an API route function directly; its problems become page errors with the same status."""
    try:
        return fn(**kwargs)
    except ApiProblem as exc:
        raise UiError(exc.status, exc.detail) from None
