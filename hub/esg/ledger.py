"""The granular certificate ledger in the database (``gc_bundle``, ``gc_action``).

Plain functions of a database (and the configuration): issue certificates from the
generation meters of carbon-free devices, transfer them to tenants by the settled
allocation, cancel and claim them for a tenant's consumption hour, withdraw, export and
import in the documented JSON form (``kwhub.gc/1``). Every action runs in one write
transaction and is logged; :func:`kwhub.core.certificates.ledger_problems` is checked before
commit, so a certificate can never count twice.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import and_, func, insert, select, update

from kwhub.core.certificates import (
    GC_SCHEMA,
    Bundle,
    CertificateError,
    Change,
    GcAttributes,
    bundle_from_json,
    cancel,
    claim,
    issue,
    ledger_problems,
    transfer,
    withdraw,
)
from kwhub.core.settlement import kwh_factor
from kwhub.core.timeline import billing_period
from kwhub.hub.store import Database
from kwhub.hub.store.carbon_tables import gc_action_table, gc_bundle_table

HOUR = 3600


def _row(b: Bundle) -> dict[str, Any]:
    return {"bundle_id": b.bundle_id, "issuance_id": b.issuance_id, "parent_id": b.parent_id, "device_id": b.device_id,
            "range_start": b.range_start, "range_end": b.range_end, "quantity_wh": b.quantity_wh,
            "production_start": b.production_start, "production_end": b.production_end, "issued_at": b.issued_at,
            "attributes": b.attributes.model_dump_json(), "account": b.account, "status": b.status,
            "beneficiary": b.beneficiary, "consumption_hour": b.consumption_hour, "hash": b.digest()}


def _bundle(r: Any) -> Bundle:
    issued = r.issued_at if r.issued_at.tzinfo else r.issued_at.replace(tzinfo=UTC)
    return Bundle(bundle_id=r.bundle_id, issuance_id=r.issuance_id, device_id=r.device_id, range_start=int(r.range_start),
                  range_end=int(r.range_end), production_start=int(r.production_start),
                  production_end=int(r.production_end), issued_at=issued,
                  attributes=GcAttributes.model_validate_json(r.attributes), account=r.account, status=r.status,
                  beneficiary=r.beneficiary,
                  consumption_hour=None if r.consumption_hour is None else int(r.consumption_hour),
                  parent_id=r.parent_id)


def bundles(conn: Any, *conditions: Any) -> list[Bundle]:
    """Bundles matching SQL ``conditions`` (all of them without any), by device and id."""
    t = gc_bundle_table
    q = select(t)
    if conditions:
        q = q.where(and_(*conditions))
    return [_bundle(r) for r in conn.execute(q.order_by(t.c.device_id, t.c.range_start, t.c.bundle_id))]


def apply(conn: Any, change: Change, now: datetime | None = None) -> None:
    """Write ``change`` and check the touched devices' invariants before the transaction commits."""
    t = gc_bundle_table
    at = now or datetime.now(UTC)
    for b in change.updated:
        conn.execute(update(t).where(t.c.bundle_id == b.bundle_id).values(
            account=b.account, status=b.status, beneficiary=b.beneficiary, consumption_hour=b.consumption_hour))
    if change.added:
        conn.execute(insert(t), [_row(b) for b in change.added])
    if change.actions:
        conn.execute(insert(gc_action_table), [
            {"at": at, "action": a.action, "bundle_id": a.bundle_id, "quantity_wh": a.quantity_wh,
             "from_account": a.from_account, "to_account": a.to_account, "actor": a.actor, "reason": a.reason}
            for a in change.actions])
    touched: dict[str, tuple[int, int]] = {}
    for b in change.updated + change.added:
        lo, hi = touched.get(b.device_id, (b.range_start, b.range_end))
        touched[b.device_id] = (min(lo, b.range_start), max(hi, b.range_end))
    for device, (lo, hi) in sorted(touched.items()):  # only the bundles that share ids with what changed
        problems = ledger_problems(bundles(conn, t.c.device_id == device, t.c.range_end >= lo, t.c.range_start <= hi))
        if problems:
            raise CertificateError("; ".join(problems))


def _next_id(conn: Any, device: str) -> int:
    t = gc_bundle_table
    top = conn.execute(select(func.max(t.c.range_end)).where(t.c.device_id == device)).scalar()
    return 1 if top is None else int(top) + 1


def certificate_devices(cfg: Any) -> list[str]:
    """Assets whose generation issues certificates: carbon-free kinds with a generation channel."""
    kinds = set(cfg.emissions.carbon_free_kinds)
    gen = {c.asset for c in cfg.campus.channels if c.role == "generation" and c.asset}
    return [a.id for a in cfg.campus.assets if a.kind in kinds and a.id in gen]


def _holder(cfg: Any, asset: Any) -> str:
    if asset.owners:
        return max(asset.owners, key=lambda o: o.share).party
    from kwhub.core.inventory import operator_of

    op = operator_of(cfg.campus, cfg.emissions)
    if not op:
        raise CertificateError(f"{asset.id} has no owner and the campus no operator: nobody can hold its certificates")
    return op


def issue_period(db: Database, cfg: Any, period: str, devices: Sequence[str] | None = None,
                 now: datetime | None = None) -> list[Bundle]:
    """Issue hourly certificates for ``period`` from the validated generation of ``devices``.

    Each hour's output is rounded down to whole Wh; an hour already issued is skipped
    (issuing twice changes nothing), so only hours whose data arrived since are issued.
    """
    per = billing_period(period, cfg.hub.timezone)
    chosen = list(devices) if devices is not None else certificate_devices(cfg)
    assets = {a.id: a for a in cfg.campus.assets}
    region = cfg.grid_region()
    at = now or datetime.now(UTC)
    out: list[Bundle] = []
    with db.write_transaction() as conn:
        for dev in chosen:
            if dev not in assets:
                raise CertificateError(f"{dev!r} is not an asset (assets: {', '.join(sorted(assets))})")
            a = assets[dev]
            chans = [c for c in cfg.campus.channels if c.asset == dev and c.role == "generation"]
            if not chans:
                raise CertificateError(f"{dev} has no generation channel to issue certificates from")
            m = db.intervals.read_matrix([c.id for c in chans], per.span, 60, layer="validated")
            kwh = np.zeros(m.n_intervals)
            for c, row in zip(chans, m.values, strict=True):
                kwh += np.nan_to_num(row) * kwh_factor(c, 60)
            starts = m.starts()
            t = gc_bundle_table
            done = {r[0] for r in conn.execute(select(t.c.issuance_id).where(
                t.c.device_id == dev, t.c.production_start >= per.span.start_epoch,
                t.c.production_start < per.span.end_epoch))}
            attrs = GcAttributes(energy_source=a.kind, technology={"solar": "photovoltaic"}.get(a.kind, a.kind),
                                 device_name=f"{a.oem} {a.model}".strip() or a.id, device_id=a.id,
                                 device_capacity_kw=a.capacity_kw, region=region, issuer=f"kwhub:{cfg.hub.name}",
                                 is_storage=a.kind == "battery")
            wh = [0 if f"{dev}:{int(s)}" in done or np.isnan(m.values[:, i]).all() else int(math.floor(v * 1000.0))
                  for i, (s, v) in enumerate(zip(starts.tolist(), kwh.tolist(), strict=True))]
            issued, change = issue(attrs, _holder(cfg, a), starts.tolist(), wh, HOUR, _next_id(conn, dev), at)
            apply(conn, change, at)
            out += issued
    return out


def transfer_by_allocation(db: Database, cfg: Any, period: str, now: datetime | None = None) -> list[Bundle]:
    """Transfer each hour's certificates of a device to the tenants the settled allocation gave its energy.

    A tenant gets ``floor(kWh x 1000)`` Wh of the device's certificates of that hour (its
    share of the frozen split); a device-hour already transferred to a tenant is skipped.
    """
    from kwhub.core.cfe import hour_index
    from kwhub.hub.esg.inputs import period_inputs

    at = now or datetime.now(UTC)
    moved: list[Bundle] = []
    inputs = period_inputs(db, cfg.campus, period)
    with db.write_transaction() as conn:
        for inp in inputs:
            hours, idx = hour_index(inp.activity.starts)
            t = gc_bundle_table
            for dev in sorted(inp.tracked):
                j = inp.activity.index(dev)
                by_hour: dict[int, list[Bundle]] = defaultdict(list)
                for b in bundles(conn, t.c.device_id == dev, t.c.production_start >= int(hours[0]),
                                 t.c.production_start < int(hours[-1]) + HOUR):
                    if b.live:
                        by_hour[b.production_start - b.production_start % HOUR].append(b)
                for k, tenant in enumerate(inp.tenants):
                    per_hour = np.bincount(idx, weights=inp.kwh[k, j], minlength=hours.size)
                    for h, kwh in zip(hours.tolist(), per_hour.tolist(), strict=True):
                        want = int(math.floor(kwh * 1000.0 + 1e-6))
                        live = by_hour.get(h, [])
                        if want <= 0 or any(b.account == tenant or b.beneficiary == tenant for b in live):
                            continue
                        for b in list(live):
                            if want <= 0:
                                break
                            if b.status != "Active" or b.account in inp.tenants:
                                continue
                            q = min(want, b.quantity_wh)
                            got, change = transfer(b, tenant, q, actor="allocation")
                            apply(conn, change, at)
                            gone = {x.bundle_id for x in change.updated}
                            by_hour[h] = [x for x in by_hour[h] if x.bundle_id not in gone] + \
                                [x for x in change.added + change.updated if x.live]
                            moved.append(got)
                            want -= q
    return moved


def claim_for(db: Database, tenant: str, period: str, tz: str, now: datetime | None = None) -> list[Bundle]:
    """Cancel and claim every Active bundle ``tenant`` holds for its consumption in the bundle's own hour."""
    per = billing_period(period, tz)
    at = now or datetime.now(UTC)
    t = gc_bundle_table
    out = []
    with db.write_transaction() as conn:
        for b in bundles(conn, t.c.account == tenant, t.c.status == "Active",
                         t.c.production_start >= per.span.start_epoch, t.c.production_start < per.span.end_epoch):
            done, change = cancel(b, tenant, b.production_start, actor=tenant)
            apply(conn, change, at)
            claimed, change = claim(done, tenant, actor=tenant)
            apply(conn, change, at)
            out.append(claimed)
    return out


def withdraw_bundle(db: Database, bundle_id: str, reason: str, quantity_wh: int | None = None,
                    actor: str = "") -> Bundle:
    """Withdraw (part of) an Active bundle."""
    with db.write_transaction() as conn:
        found = bundles(conn, gc_bundle_table.c.bundle_id == bundle_id)
        if not found:
            raise CertificateError(f"no bundle {bundle_id!r}")
        done, change = withdraw(found[0], reason, quantity_wh, actor)
        apply(conn, change)
        return done


def export_json(db: Database, path: Path, account: str | None = None) -> int:
    """Write the ledger's live bundles (or one account's) in the ``kwhub.gc/1`` form; returns the count."""
    t = gc_bundle_table
    with db.engine.connect() as conn:
        found = [b for b in bundles(conn, *([t.c.account == account] if account else [])) if b.live]
    path.write_text(json.dumps({"schema": GC_SCHEMA, "bundles": [b.as_json() for b in found]}, indent=2) + "\n")
    return len(found)


def import_json(db: Database, path: Path, account: str, now: datetime | None = None) -> list[Bundle]:
    """Import Active bundles from a ``kwhub.gc/1`` file into ``account`` (e.g. contracted clean energy).

    The whole file is refused when a bundle is malformed, not Active, or overlaps
    certificates the ledger already holds (the same certificates imported twice).
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"{path}: cannot read the certificate file ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != GC_SCHEMA or not isinstance(data.get("bundles"), list):
        raise CertificateError(f"{path}: not a {GC_SCHEMA} file (needs \"schema\": \"{GC_SCHEMA}\" and a bundles list)")
    parsed = []
    for i, item in enumerate(data["bundles"]):
        b = bundle_from_json(item, f"{path}: bundles[{i}]")
        if b.status != "Active":
            raise CertificateError(f"{path}: bundles[{i}] ({b.bundle_id}) is {b.status}; only Active bundles can be "
                                   "imported")
        parsed.append(Bundle(**{**b.__dict__, "account": account, "parent_id": None}))
    change = Change(added=parsed)
    from kwhub.core.certificates import Action

    change.actions = [Action("import", b.bundle_id, b.quantity_wh, to_account=account, reason=str(path.name))
                      for b in parsed]
    with db.write_transaction() as conn:
        existing = {r[0] for r in conn.execute(select(gc_bundle_table.c.bundle_id).where(
            gc_bundle_table.c.bundle_id.in_([b.bundle_id for b in parsed])))}
        if existing:
            raise CertificateError(f"{path}: bundle(s) {', '.join(sorted(existing))} are already in the ledger")
        apply(conn, change, now)
    return parsed


def claimed_wh_by_hour(conn: Any, tenants: Iterable[str], hours: np.ndarray) -> dict[str, np.ndarray]:
    """Wh of certificates each tenant claimed for each hour of ``hours`` (UTC hour starts)."""
    out: dict[str, np.ndarray] = {}
    if hours.size == 0:
        return out
    t = gc_bundle_table
    first, last = int(hours[0]), int(hours[-1])
    rows = conn.execute(select(t.c.beneficiary, t.c.consumption_hour, t.c.quantity_wh).where(
        t.c.status == "Claimed", t.c.beneficiary.in_(list(tenants)), t.c.consumption_hour >= first,
        t.c.consumption_hour <= last)).all()
    acc: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(hours.size))
    for who, hour, q in rows:
        acc[who][(int(hour) - first) // HOUR] += int(q)
    out.update(acc)
    return out


def tracked_devices(conn: Any, start: int, end: int) -> set[str]:
    """Devices that issued certificates for production in ``[start, end)``."""
    t = gc_bundle_table
    return {r[0] for r in conn.execute(select(t.c.device_id).where(
        t.c.production_start >= start, t.c.production_start < end).distinct())}


def summary(db: Database) -> list[dict[str, Any]]:
    """Wh per device, account and status (live bundles)."""
    t = gc_bundle_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.device_id, t.c.account, t.c.status, func.sum(t.c.quantity_wh),
                                   func.count()).where(t.c.status != "Bundle Split")
                            .group_by(t.c.device_id, t.c.account, t.c.status)).all()
    return [{"device": d, "account": a, "status": s, "wh": int(q), "bundles": int(n)} for d, a, s, q, n in rows]
