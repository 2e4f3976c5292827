"""Reference data from configuration: upsert sites, assets, channels, parties and contracts.

The configuration file is the source of truth; the tables mirror it (each row keeps the
pydantic model dump in ``spec``) so that runs, invoices and reports can join on ids.
Rows that are no longer configured are kept: history may refer to them.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, SQLModel

from kwhub.core.campus import Campus
from kwhub.hub.store.tables import AssetRow, ChannelRow, ContractRow, PartyRow, SiteRow, utcnow


def _upsert(session: Session, model: type[SQLModel], key: str, fields: dict[str, Any]) -> str:
    row = session.get(model, key)
    if row is None:
        session.add(model(id=key, **fields, updated_at=utcnow()))
        return "added"
    changed = False
    for name, value in fields.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        row.updated_at = utcnow()  # type: ignore[attr-defined]
        session.add(row)
        return "updated"
    return "unchanged"


def sync_reference_data(session: Session, campus: Campus) -> dict[str, int]:
    """Upsert the campus's reference data into ``session`` (the caller commits).

    Returns counts ``{"added": n, "updated": n, "unchanged": n}``.
    """
    counts = {"added": 0, "updated": 0, "unchanged": 0}

    def put(model: type[SQLModel], key: str, fields: dict[str, Any]) -> None:
        counts[_upsert(session, model, key, fields)] += 1

    for s in campus.sites:
        put(SiteRow, s.id, {"name": s.name, "timezone": s.timezone, "spec": s.model_dump(mode="json")})
    for a in campus.assets:
        put(AssetRow, a.id, {"name": a.model or a.id, "site_id": a.site, "kind": a.kind,
                             "spec": a.model_dump(mode="json")})
    for c in campus.channels:
        put(ChannelRow, c.id, {"name": c.id, "asset_id": c.asset, "party_id": c.party, "role": c.role,
                               "unit": c.unit, "interval_minutes": c.interval_minutes,
                               "spec": c.model_dump(mode="json")})
    for p in campus.parties:
        put(PartyRow, p.id, {"name": p.name, "spec": p.model_dump(mode="json")})
    for k in campus.contracts:
        put(ContractRow, k.id, {"name": k.id, "seller": k.seller, "buyer": k.buyer,
                                "spec": k.model_dump(mode="json")})
    session.flush()
    return counts
