"""Invoices: the list, one document with its lines and determinants, every installed format, corrections."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from kwhub.hub.api import invoices as invoices_api
from kwhub.hub.ui.auth import Viewer, call_api, viewer
from kwhub.hub.ui.flow import ALL
from kwhub.hub.ui.render import page

router = APIRouter()


def formats(hub: Any) -> list[str]:
    """Format ids of the installed invoice renderers (what ``/documents/{format}`` accepts)."""
    from kwhub.core.adapters import InvoiceRenderer

    renderers: list[type[InvoiceRenderer]] = [cls for cls in hub.registry.adapters.values()
                                              if isinstance(cls, type) and issubclass(cls, InvoiceRenderer)]
    return sorted({r.format_id for r in renderers if r.format_id})


@router.get("/invoices", response_class=HTMLResponse)
def invoice_list(request: Request, period: str = "", who: Viewer = Depends(viewer("invoices:read"))) -> HTMLResponse:
    rows = call_api(invoices_api.list_invoices, request=request, contract=None, period=period or None,
                    who=who.principal, params=ALL)["items"]
    return page(request, "invoices.html", title="Invoices", who=who, rows=rows[::-1], period=period)


@router.get("/invoices/{invoice_id}/documents/{format_id}")
def invoice_document(invoice_id: str, format_id: str, request: Request,
                     who: Viewer = Depends(viewer("invoices:read"))) -> Response:
    """The document in one format, byte for byte as the API gives it (PDF opens in the browser)."""
    resp: Response = call_api(invoices_api.render, request=request, invoice_id=invoice_id, format_id=format_id,
                              who=who.principal)
    media = resp.headers.get("X-Content-Type", "application/octet-stream")
    inline = media in ("application/pdf", "application/json") or media.startswith("text/")
    disposition = resp.headers["Content-Disposition"].replace("attachment", "inline" if inline else "attachment")
    return Response(resp.body, media_type=media, headers={"Content-Disposition": disposition})


@router.get("/invoices/{invoice_id}/lines/{line}", response_class=HTMLResponse)
def invoice_line(invoice_id: str, line: int, request: Request,
                 who: Viewer = Depends(viewer("invoices:read"))) -> HTMLResponse:
    """Why one line says what it says: the API's explanation (arithmetic, determinants, intervals, allocation)."""
    body = call_api(invoices_api.explain, request=request, invoice_id=invoice_id, line=line, who=who.principal)
    item = body["lines"][0]
    ln = item.get("line", {})
    return page(request, "invoice_line.html", title=f"Line {line} of {item.get('invoice', {}).get('number', invoice_id)}",
                who=who, invoice_id=invoice_id, ln=ln, currency=item.get("invoice", {}).get("currency", ""),
                sections={k: v for k, v in item.items() if k not in ("invoice", "line")})


@router.get("/invoices/{invoice_id}", response_class=HTMLResponse)
def invoice_detail(invoice_id: str, request: Request, who: Viewer = Depends(viewer("invoices:read"))) -> HTMLResponse:
    hub = request.app.state.hub
    doc = json.loads(call_api(invoices_api.get_invoice, request=request, invoice_id=invoice_id,
                              who=who.principal).body)
    same_contract = call_api(invoices_api.list_invoices, request=request, contract=doc.get("contract_id") or None,
                             period=None, who=who.principal, params=ALL)["items"]
    own = next((r for r in same_contract if r["id"] == doc["id"]), None)
    related = [r for r in same_contract  # the original and every correction of the same contract and period
               if own is not None and r["id"] != doc["id"] and r["period"] == own["period"]]
    return page(request, "invoice.html", title=f"{doc['kind'].replace('_', ' ').capitalize()} {doc['number']}",
                who=who, doc=doc, related=related, formats=formats(hub))

