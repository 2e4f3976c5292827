"""``/api/v1/invoices`` (list, show, render in any installed format, explain) and ``/api/v1/outbox``."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import bindparam, select

from kwhub.hub.api.deps import PageParams, hub_of, page_params, scope
from kwhub.hub.api.keys import Principal
from kwhub.hub.api.models import JSON_OBJECT, Done, Page
from kwhub.hub.api.problems import ApiProblem, responses
from kwhub.hub.store.settlement_tables import invoice_table as T

router = APIRouter()
_LIST_COLS = (T.c.id, T.c.number, T.c.kind, T.c.version, T.c.seller, T.c.buyer, T.c.contract_id, T.c.period,
              T.c.run_id, T.c.original_invoice_id, T.c.issue_date, T.c.currency, T.c.line_total, T.c.tax_total,
              T.c.total)


def _not_found(invoice_id: str) -> ApiProblem:
    return ApiProblem(404, f"no invoice {invoice_id!r} (GET /api/v1/invoices lists the ones this key may read)")


def _invoice(hub: Any, who: Principal, invoice_id: str) -> Any:
    from kwhub.core.invoice import Invoice

    with hub.db.engine.connect() as conn:
        row = conn.execute(select(T.c.buyer, T.c.document).where(T.c.id == invoice_id)).first()
    if row is None or not who.sees(row.buyer):
        raise _not_found(invoice_id)
    return Invoice.model_validate_json(row.document)


@router.get("/invoices", response_model=Page, responses=responses(400, 401, 403, 422), summary="Issued documents")
def list_invoices(request: Request, contract: str | None = Query(None, max_length=200),
                  period: str | None = Query(None, max_length=40),
                  who: Principal = Depends(scope("invoices:read")),
                  params: PageParams = Depends(page_params)) -> dict[str, Any]:
    from kwhub.hub.api.deps import encode_cursor

    hub = hub_of(request)
    q = select(*_LIST_COLS).order_by(T.c.issued_at, T.c.seller, T.c.number_seq)
    if who.party is not None:
        q = q.where(T.c.buyer == who.party)
    if contract:
        q = q.where(T.c.contract_id == contract)
    if period:
        q = q.where(T.c.period == period)
    with hub.db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q.offset(params.offset).limit(params.limit + 1))]
    more = len(rows) > params.limit
    items = [{**r, "issue_date": r["issue_date"].isoformat()} for r in rows[:params.limit]]
    return {"items": items, "next_cursor": encode_cursor(params.offset + params.limit) if more else None}


_DOCUMENT = select(T.c.buyer, T.c.document).where(T.c.id == bindparam("invoice_id"))


def _document(hub: Any, invoice_id: str) -> Any:
    with hub.db.engine.connect() as conn:
        return conn.execute(_DOCUMENT, {"invoice_id": invoice_id}).first()


@router.get("/invoices/{invoice_id}", responses={**responses(401, 403, 404),
                                                 200: {"description": "The issued document (JSON)",
                                                       "content": JSON_OBJECT}},
            response_class=Response, summary="One issued document, as stored")
async def get_invoice(request: Request, invoice_id: str = Path(..., max_length=200),
                      who: Principal = Depends(scope("invoices:read"))) -> Response:
    # One primary-key read, run on the event loop: cheaper than the hop to a worker thread.
    return invoice_document(request, invoice_id, who)


def invoice_document(request: Request, invoice_id: str, who: Principal) -> Response:
    """The issued document as stored, for ``who`` (404 for another party's): the route's body,
    callable from synchronous code such as the dashboard's pages."""
    row = _document(hub_of(request), invoice_id)
    if row is None or not who.sees(row.buyer):
        raise _not_found(invoice_id)
    return Response(row.document, media_type="application/json")


@router.get("/invoices/{invoice_id}/documents/{format_id}", response_class=Response,
            responses={**responses(401, 403, 404, 409),
                       200: {"description": "The document in that format, byte for byte as delivered",
                             "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}},
            summary="An issued document in any installed format (PDF, UBL, CII, X12, IDoc, CSV, JSON)")
def render(request: Request, invoice_id: str = Path(..., max_length=200), format_id: str = Path(..., max_length=64),
           who: Principal = Depends(scope("invoices:read"))) -> Response:
    from kwhub.hub.deliver.outbox import OutboxError, renderers_for_formats
    from kwhub.hub.deliver.render_context import render_context
    from kwhub.hub.deliver.rendering import render_document

    hub = hub_of(request)
    inv = _invoice(hub, who, invoice_id)
    try:
        renderer = renderers_for_formats(hub.registry, [format_id], hub.config)[format_id]
    except OutboxError:
        raise ApiProblem(404, f"no installed renderer {format_id!r} (GET /api/v1/plugins lists them)") from None
    try:
        ctx = render_context(hub.db, inv, hub.campus)
        with hub.db.write_transaction() as conn:
            doc = render_document(conn, inv, renderer, ctx)
    except ValueError as exc:
        raise ApiProblem(409, f"invoice {inv.number}: {exc}") from None
    return Response(doc.body, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{inv.number}{renderer.file_extension}"',
                             "X-Content-Type": renderer.media_type})


@router.get("/invoices/{invoice_id}/explain", responses=responses(401, 403, 404, 409, 422),
            summary="Why each line says what it says: determinants, data versions, prices, allocation")
def explain(request: Request, invoice_id: str = Path(..., max_length=200),
            line: int | None = Query(None, ge=1, le=100_000),
            who: Principal = Depends(scope("invoices:read"))) -> dict[str, Any]:
    from kwhub.core.explain import ExplainError, explain_line
    from kwhub.hub.settle.runs_read import get_run, run_allocation, run_inputs

    hub = hub_of(request)
    inv = _invoice(hub, who, invoice_id)
    run = get_run(hub.db, inv.run_id)
    inputs = run_inputs(hub.db, inv.run_id)
    alloc = run_allocation(hub.db, inv.run_id)
    numbers = [line] if line is not None else [ln.number for ln in inv.lines]
    try:
        lines = [explain_line(inv, n, run, inputs, alloc) for n in numbers]
    except ExplainError as exc:
        raise ApiProblem(404, str(exc)) from None
    credits = [ln for ln in inv.lines if ln.number in numbers and ln.charge_type == "market_credit"]
    if credits:  # market revenue credits walk back to their ISO statements
        from kwhub.hub.markets.credit import credit_sections
        from kwhub.hub.markets.service import MarketServiceError

        try:
            market = credit_sections(hub.db, hub.config, credits, str(run["period"]))
        except (MarketServiceError, KeyError, ValueError) as exc:
            raise ApiProblem(409, f"invoice {inv.number}: {exc}") from None
        for item in lines:
            if item["line"]["number"] in market:
                item["market"] = market[item["line"]["number"]]
    return {"invoice": inv.id, "lines": json.loads(json.dumps(lines, default=str))}


@router.get("/outbox", response_model=Page, responses=responses(400, 401, 403, 422), summary="Deliveries")
def outbox(request: Request, status: Literal["pending", "sending", "delivered", "dead"] | None = Query(None),
           invoice: str | None = Query(None, max_length=200),
           who: Principal = Depends(scope("outbox:read")), params: PageParams = Depends(page_params)) -> dict[str, Any]:
    from kwhub.hub.api.deps import page
    from kwhub.hub.deliver.outbox import list_outbox

    hub = hub_of(request)
    rows = list_outbox(hub.db, status=status, invoice_id=invoice)
    if who.party is not None:
        with hub.db.engine.connect() as conn:
            mine = {i for (i,) in conn.execute(select(T.c.id).where(T.c.buyer == who.party))}
        rows = [r for r in rows if r["event_type"] is None and r["invoice_id"] in mine]
    return page(json.loads(json.dumps(rows, default=str)), params)


@router.post("/outbox/{row_id}/retry", response_model=Done, responses=responses(401, 403, 404, 409, 422),
             summary="Send a dead-lettered delivery again")
def retry(request: Request, row_id: int = Path(..., ge=1, le=2**62),
          who: Principal = Depends(scope("outbox:retry"))) -> Done:
    from kwhub.hub.deliver.outbox import OutboxError, retry_dead
    from kwhub.hub.store import record_audit

    hub = hub_of(request)
    try:
        retry_dead(hub.db, row_id, now=hub.now())
    except OutboxError as exc:
        raise ApiProblem(404 if "no outbox row" in str(exc) else 409, str(exc)) from None
    with hub.db.write_transaction() as conn:
        record_audit(conn, "outbox.retry", actor=who.actor, object_type="outbox", object_id=str(row_id))
    return Done(ok=True, detail={"row": row_id, "status": "pending"})
