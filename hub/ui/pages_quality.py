"""Data quality: the channel x day heatmap, VEE events with their rule, drill-down to one channel-day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from kwhub.hub.api import campus as campus_api
from kwhub.hub.ui.auth import UiError, Viewer, call_api, viewer
from kwhub.hub.ui.flow import ALL
from kwhub.hub.ui.periods import chosen_period
from kwhub.hub.ui.quality import cells_html, heatmap
from kwhub.hub.ui.render import page

router = APIRouter()
LAYERS = ("validated", "raw")


def _channels(request: Request, who: Viewer) -> list[object]:
    visible = {c["id"] for c in call_api(campus_api.list_channels, request=request, who=who.principal,
                                         params=ALL)["items"]}
    return [c for c in request.app.state.hub.campus.channels if c.id in visible and c.unit == "kWh"]


PER_PAGE = 100  # heatmap rows (channels) per page: a readable table, and a read of at most 100 channel-months


@router.get("/quality", response_class=HTMLResponse)
def quality(request: Request, period: str = "", layer: str = "validated", party: str = "", page_no: int = Query(1, alias="page"),
            who: Viewer = Depends(viewer("vee:read"))) -> HTMLResponse:
    if layer not in LAYERS:
        raise UiError(422, f"Unknown layer {layer!r}; choose raw or validated.")
    period = chosen_period(request, who, period)
    hub = request.app.state.hub
    channels = _channels(request, who)
    parties = sorted({str(c.party) for c in channels if c.party})
    if party:
        if party not in parties:
            raise UiError(404, f"No energy channel of party {party!r} is visible to your key; "
                               "choose a party from the list, or clear the filter.")
        channels = [c for c in channels if c.party == party]
    pages = max(1, -(-len(channels) // PER_PAGE))
    if not 1 <= page_no <= pages:
        raise UiError(404, f"There is no page {page_no} of channels (pages 1 to {pages}); go back to page 1.")
    first = (page_no - 1) * PER_PAGE
    shown = channels[first:first + PER_PAGE]
    days, counted = heatmap(hub, shown, period, layer)
    rows = [(ch, cells_html(ch.id, days, cells, layer)) for ch, cells in counted]
    events = call_api(campus_api.vee_events, request=request, channel=None, rule=None, who=who.principal,
                      params=ALL)["items"]
    events = [e for e in events if e["day"][:7] == period]
    return page(request, "quality.html", title=f"Data quality {period}", who=who, period=period, layer=layer,
                layers=LAYERS, days=days, rows=rows, events=events, party=party, parties=parties, page_no=page_no,
                pages=pages, first=first, total=len(channels))


@router.get("/quality/{channel_id}/{day}", response_class=HTMLResponse)
def channel_day(channel_id: str, day: str, request: Request, layer: str = "validated",
                who: Viewer = Depends(viewer("readings:read"))) -> HTMLResponse:
    """One channel's intervals of one local day, from the API's readings route."""
    from kwhub.core.timeline import zone

    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise UiError(422, f"Day {day!r} is not YYYY-MM-DD.") from None
    if layer not in LAYERS:
        raise UiError(422, f"Unknown layer {layer!r}; choose raw or validated.")
    tz = zone(request.app.state.hub.config.hub.timezone)
    start = datetime(d.year, d.month, d.day, tzinfo=tz)
    nxt = d + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    rows, series, minutes = readings_rows(request, who, channel_id, start, end, layer)
    return page(request, "channel_day.html", title=f"{channel_id} on {d.isoformat()}", who=who, rows=rows,
                channel=channel_id, day=d, layer=layer, minutes=minutes, series_json=series)


def readings_rows(request: Request, who: Viewer, channel_id: str, start: datetime, end: datetime,
                  layer: str) -> tuple[list[tuple[datetime, Any, str]], str, int]:
    """A channel's intervals in [start, end) from the API's readings route (same scope and party checks):
    (start, kWh, quality) rows, the uPlot series as JSON and the interval length."""
    import json

    resp = call_api(campus_api.readings, channel_id=channel_id, request=request, start=start, end=end, layer=layer,
                    fmt="json", limit=None, cursor=None, who=who.principal)
    body = json.loads(resp.body)
    rows = [(datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC), v, q)
            for s, v, q in zip(body["start"], body["kwh"], body["quality"], strict=True)]
    series = json.dumps({"t": [int(t.timestamp()) for t, _, _ in rows], "kwh": [v for _, v, _ in rows],
                         "tz": request.app.state.hub.config.hub.timezone})
    return rows, series, int(body["interval_minutes"])
