"""Invoices: the list, one document with its lines and determinants, every installed format, corrections."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from kwhub.hub.api import campus as campus_api
from kwhub.hub.api import invoices as invoices_api
from kwhub.hub.ui.auth import UiError, Viewer, call_api, viewer
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


def _explained(request: Request, who: Viewer, invoice_id: str, line: int) -> dict[str, Any]:
    """The API's explanation of one line (404 for an invoice or line this key may not read)."""
    body = call_api(invoices_api.explain, request=request, invoice_id=invoice_id, line=line, who=who.principal)
    return body["lines"][0]  # type: ignore[no-any-return]


def _line_channels(request: Request, who: Viewer, item: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """The channels the line's run read that this key may read (kWh only), and how many it may not."""
    refs = (item.get("data") or {}).get("channels") or {}
    visible = {c["id"] for c in call_api(campus_api.list_channels, request=request, who=who.principal,
                                         params=ALL)["items"]}
    campus = {c.id: c for c in request.app.state.hub.campus.channels}
    shown = [campus[cid] for cid in refs if cid in visible and cid in campus and campus[cid].unit == "kWh"]
    hidden = [cid for cid in refs if cid not in visible]
    return shown, hidden


@router.get("/invoices/{invoice_id}/lines/{line}", response_class=HTMLResponse)
def invoice_line(invoice_id: str, line: int, request: Request,
                 who: Viewer = Depends(viewer("invoices:read"))) -> HTMLResponse:
    """Why one line says what it says: the API's explanation (arithmetic, determinants, intervals, allocation)
    and the interval data behind it, per channel and local day, with quality flags."""
    from kwhub.hub.ui.line_data import line_channels, parse_span

    item = _explained(request, who, invoice_id, line)
    ln = item.get("line", {})
    span = parse_span(item["intervals"]["span"])
    shown, hidden = _line_channels(request, who, item)
    data = line_channels(request.app.state.hub, shown, item["data"]["channels"], span) if who.can("readings:read") else []
    return page(request, "invoice_line.html", title=f"Line {line} of {item.get('invoice', {}).get('number', invoice_id)}",
                who=who, invoice_id=invoice_id, line_no=line, ln=ln, currency=item.get("invoice", {}).get("currency", ""),
                span=span, channels=data, hidden=hidden, determinants=item.get("determinants", {}),
                sections={k: v for k, v in item.items() if k not in ("invoice", "line", "determinants")})


@router.get("/invoices/{invoice_id}/lines/{line}/intervals/{channel_id}/{day}", response_class=HTMLResponse)
def invoice_line_intervals(invoice_id: str, line: int, channel_id: str, day: str, request: Request,
                           who: Viewer = Depends(viewer("invoices:read"))) -> HTMLResponse:
    """The intervals of one channel's local day inside the line's span, as the run read them (its layer)."""
    from datetime import UTC, date, datetime, timedelta

    from kwhub.core.timeline import zone
    from kwhub.hub.ui.line_data import parse_span
    from kwhub.hub.ui.pages_quality import readings_rows

    item = _explained(request, who, invoice_id, line)
    refs = item["data"]["channels"]
    if channel_id not in refs:
        raise UiError(404, f"The run behind line {line} did not read channel {channel_id!r}; "
                           "open the line to see the channels it read.")
    if not who.can("readings:read"):
        raise UiError(403, f"Your key ({who.principal.role}) lacks the scope 'readings:read' to see intervals.")
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise UiError(422, f"Day {day!r} is not YYYY-MM-DD.") from None
    tz = zone(request.app.state.hub.config.hub.timezone)
    first, last = parse_span(item["intervals"]["span"])
    nxt = d + timedelta(days=1)
    start = max(datetime(d.year, d.month, d.day, tzinfo=tz), first)
    end = min(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz), last)
    if end <= start:
        raise UiError(404, f"{d} is outside the line's period ({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC); "
                           "pick a day on the line's page.")
    ref = refs[channel_id]
    layer = (ref.get("layers") or ["validated"])[0]
    rows, series, minutes = readings_rows(request, who, channel_id, start, end, layer)
    utc_days = {start.astimezone(UTC).date().isoformat(), (end - timedelta(seconds=1)).astimezone(UTC).date().isoformat()}
    versions = ", ".join(sorted({str(r["version"]) for r in ref.get("rows") or [] if r["day"] in utc_days})) or "—"
    back = (f"/ui/invoices/{invoice_id}/lines/{line}", f"Back to line {line}")
    return page(request, "channel_day.html", title=f"{channel_id} on {d.isoformat()}, line {line}", who=who,
                rows=rows, channel=channel_id, day=d, layer=layer, minutes=minutes, series_json=series, back=back,
                note=f"the run read data version {versions}")


@router.get("/invoices/{invoice_id}", response_class=HTMLResponse)
def invoice_detail(invoice_id: str, request: Request, who: Viewer = Depends(viewer("invoices:read"))) -> HTMLResponse:
    hub = request.app.state.hub
    doc = json.loads(call_api(invoices_api.invoice_document, request=request, invoice_id=invoice_id,
                              who=who.principal).body)
    same_contract = call_api(invoices_api.list_invoices, request=request, contract=doc.get("contract_id") or None,
                             period=None, who=who.principal, params=ALL)["items"]
    own = next((r for r in same_contract if r["id"] == doc["id"]), None)
    related = [r for r in same_contract  # the original and every correction of the same contract and period
               if own is not None and r["id"] != doc["id"] and r["period"] == own["period"]]
    return page(request, "invoice.html", title=f"{doc['kind'].replace('_', ' ').capitalize()} {doc['number']}",
                who=who, doc=doc, related=related, formats=formats(hub))

