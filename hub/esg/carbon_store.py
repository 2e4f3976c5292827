"""Write and read the content-addressed carbon data runs freeze (``carbon_data``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert, select

from kwhub.core.line_emissions import PeriodBasis
from kwhub.hub.store.carbon_tables import carbon_data_table

_CHUNK = 500


def _put(conn: Any, data_id: str, blobs: Sequence[tuple[str, bytes]]) -> int:
    t = carbon_data_table
    have = {r[0] for r in conn.execute(select(t.c.key).where(t.c.data_id == data_id))}
    rows = [{"data_id": data_id, "key": k, "blob": b} for k, b in blobs if k not in have]
    for i in range(0, len(rows), _CHUNK):
        conn.execute(insert(t), rows[i:i + _CHUNK])
    return len(rows)


HEADER = "header.json"
FACTORS = "factors.json"


def store_basis(conn: Any, basis: PeriodBasis) -> int:
    """Store a period's activity (arrays and header) and factors (values, lineage, arrays), once per content;
    returns rows written."""
    header = json.dumps(basis.activity.header(), sort_keys=True).encode()
    written = _put(conn, basis.activity_id, [*basis.activity.blobs(), (HEADER, header)])
    data, factor_blobs = basis.factors.to_json()
    return written + _put(conn, basis.factors_id, [*factor_blobs, (FACTORS, json.dumps(data, sort_keys=True).encode())])


def read_blobs(conn: Any, data_ids: Iterable[str]) -> dict[str, dict[str, bytes]]:
    """``{data_id: {key: blob}}`` of the given ids."""
    ids = sorted(set(data_ids))
    out: dict[str, dict[str, bytes]] = {i: {} for i in ids}
    t = carbon_data_table
    for i in range(0, len(ids), _CHUNK):
        for did, key, blob in conn.execute(select(t.c.data_id, t.c.key, t.c.blob)
                                           .where(t.c.data_id.in_(ids[i:i + _CHUNK]))):
            out[did][key] = bytes(blob)
    return out
