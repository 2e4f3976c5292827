"""The runs list as ``kwhub runs list``, the API and the dashboard show it: one summary per
run, from the ``settlement_run`` columns in :data:`RUN_COLUMNS` (statements not parsed).

Kept free of SQLAlchemy so that the read command can build the same summaries from rows read
on the driver's own connection (:mod:`kwhub.hub.store.plain_read`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from kwhub.core.versions import kind_order

RUN_COLUMNS = ("id", "contract_id", "period", "version_kind", "seq", "status", "invoice_id", "created_at", "stale",
               "draft", "checks")


def summarise_runs(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each row of :data:`RUN_COLUMNS` as its summary: the document's kind, total, currency and
    number (None before one is drafted) and the failed checks as ``held_reasons``; ordered by
    period, contract, version kind and sequence."""
    out = []
    for row in rows:
        r = dict(row)
        draft = json.loads(r.pop("draft")) if r.get("draft") else None
        checks = json.loads(r.pop("checks", None) or "[]")
        r["document"] = None if draft is None else {"kind": draft["kind"], "total": draft["total"],
                                                    "currency": draft["currency"], "number": draft["number"]}
        r["held_reasons"] = [f"{c['check']}: {c['message']}" for c in checks if not c["passed"]]
        out.append(r)
    out.sort(key=lambda r: (r["period"], r["contract_id"], kind_order(r["version_kind"]), r["seq"]))
    return out
