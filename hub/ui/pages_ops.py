"""Operations: deliveries (retry a dead letter), jobs, the audit log, API keys (create, revoke)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from kwhub.hub.api import admin
from kwhub.hub.api import invoices as invoices_api
from kwhub.hub.api.models import Reason
from kwhub.hub.store.service_tables import ROLES
from kwhub.hub.ui.auth import UiError, Viewer, call_api, form_of, form_viewer, sessions, viewer
from kwhub.hub.ui.flow import ALL
from kwhub.hub.ui.render import page

router = APIRouter()
OUTBOX_STATUSES = ("pending", "sending", "delivered", "dead")


def _done(path: str, text: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={quote(text)}", status_code=303)


@router.get("/deliveries", response_class=HTMLResponse)
def deliveries(request: Request, status: str = "", who: Viewer = Depends(viewer("outbox:read"))) -> HTMLResponse:
    if status and status not in OUTBOX_STATUSES:
        raise UiError(422, f"Unknown status {status!r}; choose one of {', '.join(OUTBOX_STATUSES)} or leave it empty.")
    rows = call_api(invoices_api.outbox, request=request, status=status or None, invoice=None, who=who.principal,
                    params=ALL)["items"]
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in OUTBOX_STATUSES} if not status else {}
    return page(request, "deliveries.html", title="Deliveries", who=who, rows=rows, status=status,
                statuses=OUTBOX_STATUSES, counts=counts, flash=request.query_params.get("done", ""))


@router.post("/deliveries/{row_id}/retry")
async def retry(row_id: int, request: Request, who: Viewer = Depends(form_viewer("outbox:retry"))) -> Response:
    await run_in_threadpool(call_api, invoices_api.retry, request=request, row_id=row_id, who=who.principal)
    return _done("/ui/deliveries", f"Delivery {row_id} is pending again; the relay sends it on its next pass.")


@router.get("/jobs", response_class=HTMLResponse)
def jobs(request: Request, who: Viewer = Depends(viewer("jobs:read"))) -> HTMLResponse:
    sched = call_api(admin.schedule, request=request, who=who.principal)
    history = call_api(admin.jobs, request=request, job=None, status=None, who=who.principal,
                       params=ALL.model_copy(update={"limit": 200}))["items"]
    return page(request, "jobs.html", title="Jobs", who=who, schedule=sched, history=history)


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, object_type: str = "", who: Viewer = Depends(viewer("audit:read"))) -> HTMLResponse:
    rows = call_api(admin.audit, request=request, object_type=object_type or None, object_id=None,
                    who=who.principal, params=ALL.model_copy(update={"limit": 500}))["items"]
    return page(request, "audit.html", title="Audit log", who=who, rows=rows, object_type=object_type)


@router.get("/keys", response_class=HTMLResponse)
def keys(request: Request, who: Viewer = Depends(viewer("keys:write"))) -> HTMLResponse:
    rows = call_api(admin.keys, request=request, who=who.principal, params=ALL)["items"]
    parties = [p.id for p in request.app.state.hub.campus.parties]
    return page(request, "keys.html", title="API keys", who=who, rows=rows, parties=parties,
                roles=list(ROLES),
                flash=request.query_params.get("done", ""), created=None)


@router.post("/keys", response_class=HTMLResponse)
async def create_key(request: Request, who: Viewer = Depends(form_viewer("keys:write"))) -> HTMLResponse:
    form = await form_of(request)
    try:
        body = admin.KeyRequest(role=str(form.get("role") or ""), party=str(form.get("party") or ""),
                                name=str(form.get("name") or ""),
                                days=int(str(form.get("days"))) if form.get("days") else None)
    except (ValidationError, ValueError) as exc:
        raise UiError(422, f"Check the key form: {exc}") from None
    created = await run_in_threadpool(call_api, admin.create, body=body, request=request, who=who.principal)
    rows = await run_in_threadpool(call_api, admin.keys, request=request, who=who.principal, params=ALL)
    parties = [p.id for p in request.app.state.hub.campus.parties]
    return page(request, "keys.html", title="API keys", who=who, rows=rows["items"], parties=parties,
                roles=list(ROLES), created=created, flash="")


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, who: Viewer = Depends(form_viewer("keys:write"))) -> Response:
    form = await form_of(request)
    try:
        reason = Reason(reason=str(form.get("reason") or ""))
    except ValidationError:
        raise UiError(422, "To revoke a key, write the reason (it goes to the audit log).") from None
    await run_in_threadpool(call_api, admin.revoke, body=reason, request=request, key_id=key_id, who=who.principal)
    ended = await run_in_threadpool(sessions(request).end_key, key_id)
    return _done("/ui/keys", f"Key {key_id} revoked; it stops working at once "
                             f"({ended} dashboard session{'' if ended == 1 else 's'} ended).")
