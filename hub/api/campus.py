"""``/api/v1/campus``, ``/channels``, ``/channels/{id}/readings``, ``/vee/events``."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from kwhub.hub.api.deps import (
    CURSOR_PATTERN,
    PageParams,
    decode_cursor,
    encode_cursor,
    hub_of,
    page,
    page_params,
    scope,
)
from kwhub.hub.api.keys import Principal
from kwhub.hub.api.models import Page
from kwhub.hub.api.problems import ApiProblem, responses

router = APIRouter()


def _visible_channels(hub: Any, who: Principal) -> list[Any]:
    return [c for c in hub.campus.channels if who.sees(c.party or None)]


def _channel(hub: Any, who: Principal, channel_id: str) -> Any:
    for c in hub.campus.channels:
        if c.id == channel_id and who.sees(c.party or None):
            return c
    raise ApiProblem(404, f"no channel {channel_id!r} (GET /api/v1/channels lists the ones this key may read)")


@router.get("/campus", responses=responses(401, 403), summary="The campus: sites, parties, contracts, channels")
def get_campus(request: Request, who: Principal = Depends(scope("campus:read"))) -> dict[str, Any]:
    hub = hub_of(request)
    campus = hub.campus
    parties = [p for p in campus.parties if who.sees(p.id)]
    contracts = [c for c in campus.contracts if who.sees(c.buyer)]
    return {
        "name": hub.config.hub.name, "timezone": campus.timezone,
        "sites": [s.model_dump(mode="json") for s in campus.sites],
        "parties": [{"id": p.id, "name": p.name, "roles": list(p.roles)} for p in parties],
        "contracts": [{"id": c.id, "seller": c.seller, "buyer": c.buyer, "kind": c.kind, "currency": c.currency,
                       "timezone": c.timezone} for c in contracts],
        "channels": [_channel_json(c) for c in _visible_channels(hub, who)],
    }


def _channel_json(c: Any) -> dict[str, Any]:
    return {"id": c.id, "role": c.role, "party": c.party, "asset": c.asset, "unit": c.unit,
            "interval_minutes": c.interval_minutes, "direction": c.direction}


@router.get("/channels", response_model=Page, responses=responses(401, 403, 422), summary="Channels")
def list_channels(request: Request, who: Principal = Depends(scope("campus:read")),
                  params: PageParams = Depends(page_params)) -> dict[str, Any]:
    return page([_channel_json(c) for c in _visible_channels(hub_of(request), who)], params)


@router.get("/channels/{channel_id}", responses=responses(401, 403, 404), summary="One channel")
def get_channel(channel_id: str, request: Request, who: Principal = Depends(scope("campus:read"))) -> dict[str, Any]:
    return _channel_json(_channel(hub_of(request), who, channel_id))


@cache
def _labels() -> np.ndarray:
    """Quality code -> label, for all 256 codes."""
    from kwhub.core.quality import QUALITY_LABELS

    return np.array([QUALITY_LABELS.get(q, str(q)) for q in range(256)], dtype=object)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ApiProblem(422, f"{name} needs a UTC offset (e.g. 2026-10-01T00:00:00-04:00)")
    return value.astimezone(UTC)


@router.get("/channels/{channel_id}/readings", responses={**responses(400, 401, 403, 404, 422), 200: {
    "description": "Interval readings (columns), or CSV with `format=csv`",
    "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}}}},
    summary="Interval readings of a channel, paged by time")
def readings(channel_id: str, request: Request,
             start: datetime = Query(..., description="First instant (with offset)."),
             end: datetime = Query(..., description="End instant, exclusive (with offset)."),
             layer: Literal["raw", "validated"] = Query("validated"),
             fmt: Literal["json", "csv"] = Query("json", alias="format"),
             limit: int | None = Query(None, ge=1, le=1_000_000, description="Intervals per page."),
             cursor: str | None = Query(None, pattern=CURSOR_PATTERN),
             who: Principal = Depends(scope("readings:read"))) -> Response:
    from kwhub.core.timeline import Span

    hub = hub_of(request)
    ch = _channel(hub, who, channel_id)
    t0, t1 = _aware(start, "start"), _aware(end, "end")
    if t1 <= t0:
        raise ApiProblem(422, "end must come after start")
    step = ch.interval_minutes * 60
    lim = min(limit or hub.config.file.api.readings_limit_max, hub.config.file.api.readings_limit_max)
    first = int(t0.timestamp())
    if cursor:  # a page's first instant; outside [start, end) the page is empty
        first = min(max(decode_cursor(cursor), first), int(t1.timestamp()))
    last = min(int(t1.timestamp()), first + lim * step)
    if last > first:
        series = hub.db.intervals.read_series(channel_id, Span(datetime.fromtimestamp(first, UTC),
                                                                 datetime.fromtimestamp(last, UTC)),
                                              layer=layer, interval_minutes=ch.interval_minutes)
    else:
        from kwhub.core.intervals import ChannelSeries

        series = ChannelSeries(channel_id, ch.interval_minutes, np.zeros(0, np.int64), np.zeros(0),
                               np.zeros(0, np.uint8))
    nxt = encode_cursor(last) if last < int(t1.timestamp()) else None
    if fmt == "csv":
        return _csv(series, nxt)
    # orjson writes the numpy columns directly: instants as RFC 3339 UTC (``...Z``), NaN as null.
    body = {"channel": channel_id, "layer": layer, "interval_minutes": ch.interval_minutes, "unit": "kWh",
            "start": series.starts.astype("datetime64[s]"), "kwh": np.ascontiguousarray(series.values, dtype=np.float64),
            "quality": _labels()[series.quality].tolist(), "next_cursor": nxt}
    return Response(orjson.dumps(body, option=_NUMPY_UTC), media_type="application/json")


_NUMPY_UTC = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def _csv(series: Any, nxt: str | None) -> Response:
    starts = np.datetime_as_string(series.starts.astype("datetime64[s]"), unit="s", timezone="UTC")
    labels = _labels()[series.quality]
    buf = io.StringIO()
    buf.write("start,kwh,quality\n")
    for s, v, q in zip(starts.tolist(), series.values.tolist(), labels.tolist(), strict=True):
        buf.write(f"{s},{v!r},{q}\n")
    headers = {"X-Next-Cursor": nxt} if nxt else {}
    return Response(buf.getvalue(), media_type="text/csv", headers=headers)


@router.get("/vee/events", response_model=Page, responses=responses(400, 401, 403, 422), summary="VEE events")
def vee_events(request: Request, channel: str | None = Query(None, max_length=200),
               rule: str | None = Query(None, max_length=100),
               who: Principal = Depends(scope("vee:read")), params: PageParams = Depends(page_params)) -> dict[str, Any]:
    from kwhub.hub.store.tables import vee_event_table as t

    hub = hub_of(request)
    visible = [c.id for c in _visible_channels(hub, who)]
    q = select(t.c.id, t.c.run_label, t.c.channel_id, t.c.day, t.c.rule_id, t.c.action, t.c.count, t.c.detail,
               t.c.created_at).order_by(t.c.id)
    if who.party is not None:
        q = q.where(t.c.channel_id.in_(visible or [""]))
    if channel:
        q = q.where(t.c.channel_id == channel)
    if rule:
        q = q.where(t.c.rule_id == rule)
    q = q.offset(params.offset).limit(params.limit + 1)
    with hub.db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    more = len(rows) > params.limit
    items = [{**r, "day": r["day"].isoformat(), "created_at": r["created_at"].isoformat()} for r in rows[:params.limit]]
    return {"items": items, "next_cursor": encode_cursor(params.offset + params.limit) if more else None}
