"""Sign in with an API key, sign out, and the dashboard's front door."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kwhub.hub.api.keys import verify_token
from kwhub.hub.ui.auth import UiError, form_of, sessions
from kwhub.hub.ui.render import page
from kwhub.hub.ui.session import COOKIE, CSRF_FIELD, PRE_COOKIE, same_token

router = APIRouter()


def _safe_next(value: object) -> str:
    text = value if isinstance(value, str) else ""
    return text if text.startswith("/ui/") and not text.startswith("//") and "\\" not in text else "/ui/campus"


def _cookie_args(request: Request) -> dict[str, object]:
    return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https", "path": "/ui"}


def _login_page(request: Request, next_path: str, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    resp = page(request, "login.html", status_code=status, title="Sign in", who=None, csrf=token,
                next=_safe_next(next_path), error=error)
    resp.set_cookie(PRE_COOKIE, sessions(request).sign(token), max_age=3600, **_cookie_args(request))  # type: ignore[arg-type]
    return resp


@router.get("/", include_in_schema=False)
def index() -> RedirectResponse:
    return RedirectResponse("/ui/campus", status_code=303)


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str = "/ui/campus") -> Response:  # noqa: A002
    return _login_page(request, next)


def client_address(request: Request) -> str:
    """The address sign-in attempts are counted by (behind a proxy: what uvicorn's
    ``--forwarded-allow-ips`` lets it take from ``X-Forwarded-For``)."""
    return request.client.host if request.client is not None else "unknown"


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await form_of(request)
    store = sessions(request)
    throttle = request.app.state.ui_signin_throttle
    client = client_address(request)
    wait = throttle.retry_after(client)
    if wait is not None:
        resp = _login_page(request, str(form.get("next") or ""), status=429,
                           error=f"Too many failed sign-ins from your address ({throttle.limit} within "
                                 f"{throttle.window_s:g} seconds). Wait {wait} seconds, then sign in with a valid key.")
        resp.headers["Retry-After"] = str(wait)
        return resp
    expected = await run_in_threadpool(store.unsign, request.cookies.get(PRE_COOKIE))  # the secret may be read now
    given = form.get(CSRF_FIELD)
    if not same_token(expected, given):
        raise UiError(403, "The sign-in form's security token is missing or out of date. "
                           "Open the sign-in page again and submit it from there.")
    key = form.get("key")
    hub = request.app.state.hub
    principal = None
    if isinstance(key, str) and key.strip():
        principal = await run_in_threadpool(verify_token, hub.db, key.strip(), ttl=hub.config.file.api.key_cache_s)
    if principal is None:
        throttle.failed(client)
        return _login_page(request, str(form.get("next") or ""), status=401,
                           error="That API key is unknown, expired or revoked. Check it, or create a new one "
                                 "with `kwhub keys create`.")
    cookie, _ = await run_in_threadpool(store.create, principal)
    resp = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    resp.set_cookie(COOKIE, cookie, **_cookie_args(request))  # type: ignore[arg-type]
    resp.delete_cookie(PRE_COOKIE, path="/ui")
    return resp


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    form = await form_of(request)
    store = sessions(request)
    sess = await run_in_threadpool(store.get, request.cookies.get(COOKIE))
    given = form.get(CSRF_FIELD)
    if sess is not None and not same_token(sess.csrf, given):
        raise UiError(403, "The sign-out form's security token is out of date. Reload the page and try again.")
    await run_in_threadpool(store.drop, request.cookies.get(COOKIE))
    resp = RedirectResponse("/ui/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/ui")
    return resp
