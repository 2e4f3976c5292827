"""Settlement runs: drafts held by the review gate with their reasons, approve or reject with a reason,
one run's checks, energy accounting and decisions. Every read and decision goes through the API's routes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from kwhub.hub.api import runs as runs_api
from kwhub.hub.api.models import Reason
from kwhub.hub.ui.auth import UiError, Viewer, call_api, form_of, form_viewer, viewer
from kwhub.hub.ui.flow import ALL
from kwhub.hub.ui.periods import PERIOD_RE
from kwhub.hub.ui.render import page
from kwhub.hub.ui.run_rows import PER_PAGE, run_rows

router = APIRouter()
STATUSES = ("held", "draft", "issued", "no_change", "rejected", "superseded")


@router.get("/runs", response_class=HTMLResponse)
def runs(request: Request, status: str = "", period: str = "", page_no: int = Query(1, alias="page"),
         who: Viewer = Depends(viewer("runs:read"))) -> HTMLResponse:
    if status and status not in STATUSES:
        raise UiError(422, f"Unknown status {status!r}; choose one of {', '.join(STATUSES)} or leave it empty.")
    if period and not PERIOD_RE.match(period):
        raise UiError(422, f"Period {period!r} is not YYYY-MM (for example 2026-10).")
    rows, waiting, total = run_rows(request.app.state.hub, who.principal, period=period or None,
                                    status=status or None, page_no=page_no)
    pages = max(1, -(-total // PER_PAGE))
    if not 1 <= page_no <= pages:
        raise UiError(404, f"There is no page {page_no} of runs (pages 1 to {pages}); go back to page 1.")
    return page(request, "runs.html", title="Settlement runs", who=who, rows=rows, waiting=waiting,
                status=status, period=period, statuses=STATUSES, flash=request.query_params.get("done", ""),
                page_no=page_no, pages=pages, total=total, first=(page_no - 1) * PER_PAGE)


@router.get("/runs/{run_id:path}", response_class=HTMLResponse)
def run_detail(run_id: str, request: Request, who: Viewer = Depends(viewer("runs:read"))) -> HTMLResponse:
    run = call_api(runs_api.show_run, run_id=run_id, request=request, who=who.principal)
    siblings = call_api(runs_api.list_runs, request=request, period=run["period"], contract=run["contract"],
                        status=None, who=who.principal, params=ALL)["items"]
    ids = [r["id"] for r in siblings]
    prev = None
    if run_id in ids and ids.index(run_id) > 0:
        prev = call_api(runs_api.show_run, run_id=ids[ids.index(run_id) - 1], request=request, who=who.principal)
    currency = next((c.currency for c in request.app.state.hub.campus.contracts if c.id == run["contract"]), "")
    return page(request, "run.html", title=f"Run {run['contract']} {run['period']} ({run['version']} #{run['seq']})",
                who=who, run=run, prev=prev, diff=accounting_diff(prev, run) if prev else [], currency=currency,
                columns=ACCOUNTING_COLUMNS, flash=request.query_params.get("done", ""))


ACCOUNTING_COLUMNS = ("party", "source", "billed_by", "allocated_kwh", "billed_kwh", "unbilled_kwh", "declared", "reason")


def accounting_diff(prev: dict[str, Any], run: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (party, source): allocated and billed kWh in the previous version and in this one, and the change."""
    def by_key(r: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(a.get("party", ""), a.get("source", "")): a for a in r.get("accounting") or []}

    old, new = by_key(prev), by_key(run)
    out = []
    for key in sorted(set(old) | set(new)):
        row: dict[str, Any] = {"party": key[0], "source": key[1]}
        for col in ("allocated_kwh", "billed_kwh"):
            a = Decimal(str(old.get(key, {}).get(col, "0") or "0"))
            b = Decimal(str(new.get(key, {}).get(col, "0") or "0"))
            row[col] = (a, b, b - a)
        out.append(row)
    return out


async def _decide(request: Request, who: Viewer, run_id: str, action: str) -> Response:
    form = await form_of(request)
    try:
        reason = Reason(reason=str(form.get("reason") or ""))
    except ValidationError:
        raise UiError(422, f"To {action} a run, write the reason in the form (it goes to the audit log).") from None
    fn: Any = runs_api.approve if action == "approve" else runs_api.reject
    done = await run_in_threadpool(call_api, fn, run_id=run_id, body=reason, request=request, who=who.principal)
    what = (f"approved; invoice {done.detail.get('number')} issued, total {done.detail.get('total')}"
            if action == "approve" else "rejected")
    back = str(form.get("back") or "")
    target = back if back.startswith("/ui/runs") else "/ui/runs"
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}done={quote(f'Run {run_id} {what}.')}", status_code=303)


@router.post("/runs/{run_id:path}/approve")
async def approve(run_id: str, request: Request, who: Viewer = Depends(form_viewer("runs:approve"))) -> Response:
    return await _decide(request, who, run_id, "approve")


@router.post("/runs/{run_id:path}/reject")
async def reject(run_id: str, request: Request, who: Viewer = Depends(form_viewer("runs:approve"))) -> Response:
    return await _decide(request, who, run_id, "reject")
