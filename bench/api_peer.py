"""The API benchmark's peer: the same two queries through a minimal Starlette app, no kwhub layers.

No key check, no party scoping, no parameter validation, no problem details, no access
log: ``GET /invoices/{id}`` selects the stored document; ``GET /readings/{channel}``
reads the channel's days from the interval store and writes the same columnar JSON the
kwhub API answers, with the same writer (orjson, numpy columns as they are). Served by
uvicorn with the same number of workers (``KWHUB_PEER_DB`` names the database).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import numpy as np
import orjson
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kwhub.core.quality import QUALITY_LABELS
from kwhub.core.timeline import Span
from kwhub.hub.store import Database
from kwhub.hub.store.settlement_tables import invoice_table as T

db = Database.open(os.environ["KWHUB_PEER_DB"], migrate=False)
OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z  # the JSON writer kwhub uses
LABELS = np.array([QUALITY_LABELS.get(q, str(q)) for q in range(256)], dtype=object)


def invoice(request: Request) -> Response:
    with db.engine.connect() as conn:
        doc = conn.execute(select(T.c.document).where(T.c.id == request.path_params["id"])).scalar()
    return Response(doc, media_type="application/json") if doc else Response(status_code=404)


def readings(request: Request) -> Response:
    start = datetime.fromisoformat(request.query_params["start"]).astimezone(UTC)
    end = datetime.fromisoformat(request.query_params["end"]).astimezone(UTC)
    s = db.intervals.read_series(request.path_params["channel"], Span(start, end), layer="validated",
                                 interval_minutes=15)
    body = {"channel": request.path_params["channel"], "layer": "validated", "interval_minutes": 15, "unit": "kWh",
            "start": s.starts.astype("datetime64[s]"), "kwh": np.ascontiguousarray(s.values),
            "quality": LABELS[s.quality].tolist(), "next_cursor": None}
    return Response(orjson.dumps(body, option=OPTS), media_type="application/json")


app = Starlette(routes=[Route("/invoices/{id}", invoice), Route("/readings/{channel}", readings)])
