"""Market data in the database (tables in :mod:`kwhub.hub.store.market_tables`).

Awards and prices are written as one row per (resource or node, operating day) holding
int64 arrays; a price day that differs from its latest stored version is stored as the
next version (a correction), an equal one changes nothing. A statement is stored once
per ISO statement id; the same id arriving with other content is refused, never
overwritten.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import String, and_, cast, func, select

from kwhub.core.markets.fixed import wh_from_mwh
from kwhub.core.markets.hour_labels import operating_day_of
from kwhub.core.markets.models import Award, Bid, Statement, StatementLine, Submission
from kwhub.core.markets.prices import MarketPrices
from kwhub.core.timeline import local_day
from kwhub.hub.store import Database
from kwhub.hub.store.market_tables import (
    market_award_day_table,
    market_price_day_table,
    market_shadow_run_table,
    market_statement_line_table,
    market_statement_table,
    market_submission_table,
)


class MarketStoreError(ValueError):
    """Market data that the store refuses (a statement id reused with other content ...)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _blob(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<i8").tobytes()


def _arr(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<i8").astype(np.int64)


# ----------------------------------------------------------------------- submissions


def save_submission(db: Database, submission_id: str, sub: Submission, bids: Sequence[Bid]) -> None:
    """Record a submission (or its new status, for an id already stored)."""
    t = market_submission_table
    now = _now()
    row = {"iso": sub.iso, "market": sub.market, "trading_date": sub.trading_date, "status": sub.status.value,
           "document_sha256": sub.document_sha256, "iso_ref": sub.iso_ref,
           "bids": json.dumps([b.model_dump(mode="json") for b in bids]),
           "outcomes": json.dumps([o.model_dump(mode="json") for o in sub.outcomes]),
           "messages": "\n".join(sub.messages), "updated_at": now}
    with db.write_transaction() as conn:
        if conn.execute(select(t.c.id).where(t.c.id == submission_id)).first():
            conn.execute(t.update().where(t.c.id == submission_id).values(**row))
        else:
            conn.execute(t.insert().values(id=submission_id, created_at=now, **row))


def load_submission(db: Database, submission_id: str) -> tuple[Submission, list[Bid]]:
    """A stored submission and its bids."""
    t = market_submission_table
    with db.read_connection() as conn:
        r = conn.execute(select(t).where(t.c.id == submission_id)).mappings().first()
    if r is None:
        raise MarketStoreError(f"no market submission {submission_id!r} (see `kwhub market submissions`)")
    sub = Submission(iso=r["iso"], market=r["market"], trading_date=r["trading_date"], status=r["status"],
                     document_sha256=r["document_sha256"], iso_ref=r["iso_ref"],
                     outcomes=tuple(json.loads(r["outcomes"])), messages=tuple(filter(None, r["messages"].split("\n"))))
    return sub, [Bid.model_validate(b) for b in json.loads(r["bids"])]


def list_submissions(db: Database, iso: str | None = None, day: date | None = None) -> list[dict[str, object]]:
    t = market_submission_table
    q = select(t.c.id, t.c.iso, t.c.market, t.c.trading_date, t.c.status, t.c.iso_ref, t.c.created_at)
    if iso:
        q = q.where(t.c.iso == iso)
    if day:
        q = q.where(t.c.trading_date == day)
    with db.read_connection() as conn:
        return [dict(r) for r in conn.execute(q.order_by(t.c.created_at)).mappings()]


# ----------------------------------------------------------------------- awards


def save_awards(db: Database, awards: Sequence[Award], tz: str) -> int:
    """Store awards as day arrays per (ISO, market, resource, trading day); returns the rows written.

    A day's row is replaced by a later answer for the same day (the ISO's award of a day is
    final once published; a repeated fetch writes the same values).
    """
    groups: dict[tuple[str, str, str, date], list[Award]] = defaultdict(list)
    for a in awards:
        groups[(a.iso, a.market, a.resource, operating_day_of(int(a.start.timestamp()), tz))].append(a)
    t = market_award_day_table
    now = _now()
    with db.write_transaction() as conn:
        for (iso, market, resource, day), items in groups.items():
            minutes = (int(items[0].end.timestamp()) - int(items[0].start.timestamp())) // 60
            span = local_day(day, tz)
            n = span.seconds // (minutes * 60)
            wh = np.zeros(n, dtype=np.int64)
            for a in items:
                off = int(a.start.timestamp()) - span.start_epoch
                i = off // (minutes * 60) if off % (minutes * 60) == 0 and 0 <= off < span.seconds else None
                if i is None:
                    raise MarketStoreError(f"award {a.resource} {a.start.isoformat()} is not a {minutes}-minute "
                                           f"interval of {day} in {tz}")
                wh[i] += wh_from_mwh(a.mwh)
            key = and_(t.c.iso == iso, t.c.market == market, t.c.resource == resource, t.c.trading_date == day)
            conn.execute(t.delete().where(key))
            conn.execute(t.insert().values(iso=iso, market=market, resource=resource, trading_date=day,
                                           start_epoch=span.start_epoch, interval_minutes=minutes,
                                           n_values=n, wh=_blob(wh), bid_id=items[0].bid_id,
                                           iso_ref=",".join(sorted({a.iso_ref for a in items if a.iso_ref})),
                                           received_at=now))
    return len(groups)


def load_award_hours(db: Database, iso: str, market: str, resources: Sequence[str], start_epoch: int,
                     hours: int) -> np.ndarray:
    """``(R, hours)`` awarded Wh from ``start_epoch``; hours without an award are 0."""
    return load_award_intervals(db, iso, market, resources, start_epoch, hours, 60)


def load_award_intervals(db: Database, iso: str, market: str, resources: Sequence[str], start_epoch: int,
                         n: int, minutes: int) -> np.ndarray:
    """``(R, n)`` awarded Wh per ``minutes``-long interval from ``start_epoch`` (day-ahead
    hours, real-time quarter-hours ...); intervals without an award are 0. Awards stored on
    another grain are refused, not resampled."""
    out = np.zeros((len(resources), n), dtype=np.int64)
    t = market_award_day_table
    step = minutes * 60
    end = start_epoch + n * step
    with db.read_connection() as conn:
        rows = conn.execute(select(t.c.resource, t.c.start_epoch, t.c.interval_minutes, t.c.n_values, t.c.wh)
                            .where(t.c.iso == iso, t.c.market == market, t.c.resource.in_(list(resources)),
                                   t.c.start_epoch < end, t.c.start_epoch > start_epoch - 2 * 86_400)).all()
    if not rows:
        return out
    res, s0, m, count, blobs = zip(*rows, strict=True)
    bad = [k for k, mk in enumerate(m) if mk != minutes]
    if bad:
        raise MarketStoreError(f"{iso} {market} awards of {res[bad[0]]} are {m[bad[0]]}-minute; "
                               f"{minutes}-minute expected")
    pos = {r: i for i, r in enumerate(resources)}
    return _place(out.shape, [pos[r] for r in res], (np.array(s0, np.int64) - start_epoch) // step, count, blobs,
                  f"{iso} {market} awards")[0]


def _place(shape: tuple[int, int], rows: Sequence[int], firsts: np.ndarray, counts: Sequence[int],
           blobs: Sequence[bytes], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Lay day arrays (int64 blobs) out as ``out[row, first:first + count]`` on an ``(R, n)``
    grid, clipped to it, and mark the intervals written: whole-array steps only (one join,
    then a reshape when the days tile the grid exactly, else one scatter), no Python per value."""
    r_n, n = shape
    rows_a = np.asarray(rows, dtype=np.int64)
    firsts = np.asarray(firsts, dtype=np.int64)
    counts_a = np.asarray(counts, dtype=np.int64)
    order = np.lexsort((firsts, rows_a))
    rows_a, firsts, counts_a = rows_a[order], firsts[order], counts_a[order]
    flat = np.frombuffer(b"".join([blobs[k] for k in order.tolist()]), dtype="<i8")
    if flat.size != int(counts_a.sum()):
        raise MarketStoreError(f"{what}: a stored day holds another number of values than its n_values says")
    ends = firsts + counts_a
    new_row = np.ones(len(rows_a), dtype=bool)
    new_row[1:] = rows_a[1:] != rows_a[:-1]
    last_of_row = np.ones(len(rows_a), dtype=bool)
    last_of_row[:-1] = new_row[1:]
    tiles = (flat.size == r_n * n and np.array_equal(rows_a[new_row], np.arange(r_n))
             and not firsts[new_row].any() and (ends[last_of_row] == n).all()
             and np.array_equal(firsts[~new_row], ends[:-1][~new_row[1:]]))
    if tiles:  # the common case: every row's days follow each other from the first interval to the last
        return flat.reshape(r_n, n).astype(np.int64), np.ones(shape, dtype=bool)
    out = np.zeros(shape, dtype=np.int64)
    ok = np.zeros(shape, dtype=bool)
    begin = np.cumsum(counts_a) - counts_a  # where each day's values start in flat
    col = np.arange(flat.size, dtype=np.int64)
    col += np.repeat(firsts - begin, counts_a)
    lin = np.repeat(rows_a * n, counts_a)
    lin += col
    if col.size and (col.min() < 0 or col.max() >= n):
        keep = (col >= 0) & (col < n)
        lin, flat = lin[keep], flat[keep]
    out.reshape(-1)[lin] = flat
    ok.reshape(-1)[lin] = True
    return out, ok


# ----------------------------------------------------------------------- prices


def _sha(units: np.ndarray, start: int, minutes: int) -> str:
    return hashlib.sha256(f"{start}|{minutes}|".encode() + _blob(units)).hexdigest()


def _day_slices(starts: np.ndarray, tz: str) -> list[tuple[date, int, int, int]]:
    """``(operating day, first epoch of the day, lo, hi)``: which of the sorted ``starts``
    fall in each local operating day they touch (no per-interval Python work)."""
    if len(starts) == 0:
        return []
    first = operating_day_of(int(starts[0]), tz)
    last = operating_day_of(int(starts[-1]), tz)
    out = []
    day = first
    while day <= last:
        span = local_day(day, tz)
        lo, hi = np.searchsorted(starts, [span.start_epoch, span.end_epoch])
        if hi > lo:
            out.append((day, span.start_epoch, int(lo), int(hi)))
        day += timedelta(days=1)
    return out


def save_prices(db: Database, prices: Sequence[MarketPrices], tz: str, source: str = "") -> dict[str, int]:
    """Store each (node, market, operating day): new, a correction (next version), or unchanged."""
    counts = {"new": 0, "corrected": 0, "unchanged": 0}
    t = market_price_day_table
    now = _now()
    with db.write_transaction() as conn:
        for p in prices:
            step = p.interval_minutes * 60
            key = and_(t.c.iso == p.iso, t.c.node == p.node, t.c.market == p.market)
            latest = {r.day: (r.version, r.content_sha256) for r in conn.execute(
                select(t.c.day, t.c.version, t.c.content_sha256).where(key).order_by(t.c.version))}
            rows = []
            for day, day_start, lo, hi in _day_slices(p.starts, tz):
                n_day = local_day(day, tz).seconds // step
                starts = p.starts[lo:hi]
                if hi - lo != n_day or starts[0] != day_start or (n_day > 1 and not (np.diff(starts) == step).all()):
                    raise MarketStoreError(f"{p.iso} {p.node} {p.market} prices of {day}: {hi - lo} of the "
                                           f"day's {n_day} intervals; a price day is stored whole")
                units = p.price_units[lo:hi]
                sha = _sha(units, day_start, p.interval_minutes)
                last = latest.get(day)
                if last is not None and last[1] == sha:
                    counts["unchanged"] += 1
                    continue
                counts["new" if last is None else "corrected"] += 1
                rows.append({"iso": p.iso, "node": p.node, "market": p.market, "day": day,
                             "version": 1 if last is None else last[0] + 1, "start_epoch": day_start,
                             "interval_minutes": p.interval_minutes, "n_values": n_day, "price_units": _blob(units),
                             "content_sha256": sha, "source": source or p.source, "received_at": now})
            if rows:
                conn.execute(t.insert(), rows)
    return counts


@dataclass
class PriceGrid:
    """Prices of R nodes on one grid: units, which are present, and the versions used."""

    units: np.ndarray
    ok: np.ndarray
    versions: dict[str, int]


def load_prices(db: Database, iso: str, nodes: Sequence[str], market: str, start_epoch: int, n: int, minutes: int,
                as_of: datetime | None = None) -> PriceGrid:
    """``(R, n)`` price units of ``nodes`` on a ``minutes`` grid from ``start_epoch``.

    Each day uses its latest version received at or before ``as_of`` (all versions when
    None); ``versions`` records them as ``"node/market/day" -> version``.
    """
    units = np.zeros((len(nodes), n), dtype=np.int64)
    ok = np.zeros((len(nodes), n), dtype=bool)
    versions: dict[str, int] = {}
    t = market_price_day_table
    end = start_epoch + n * minutes * 60
    # the day as its ISO text (no date object per row: a year of 5-minute prices is 18,250 rows per 50 nodes)
    q = select(t.c.node, cast(t.c.day, String), t.c.version, t.c.start_epoch, t.c.interval_minutes, t.c.n_values,
               t.c.price_units).where(t.c.iso == iso, t.c.market == market, t.c.node.in_(list(nodes)),
                                      t.c.start_epoch < end, t.c.start_epoch > start_epoch - 2 * 86_400)
    if as_of is not None:
        q = q.where(t.c.received_at <= as_of)
    with db.read_connection() as conn:
        rows = conn.execute(q).all()  # no ORDER BY: the latest version is picked here (a sort costs the database more)
    latest: dict[tuple[str, str], tuple[int, int, int, int, bytes]] = {}
    for node, day, version, s0, m, count, blob in rows:
        known = latest.get((node, day))
        if known is None or version > known[0]:
            latest[(node, day)] = (version, s0, m, count, blob)
    if not latest:
        return PriceGrid(units, ok, versions)
    bad = [(node, v[2]) for (node, _), v in latest.items() if v[2] != minutes]
    if bad:
        raise MarketStoreError(f"{iso} {market} prices of {bad[0][0]} are {bad[0][1]}-minute, {minutes} expected")
    pos = {nd: i for i, nd in enumerate(nodes)}
    keys = list(latest)
    vals = list(latest.values())
    firsts = (np.fromiter((v[1] for v in vals), np.int64, len(vals)) - start_epoch) // (minutes * 60)
    counts = np.fromiter((v[3] for v in vals), np.int64, len(vals))
    units, ok = _place(units.shape, [pos[k[0]] for k in keys], firsts, counts, [v[4] for v in vals],
                       f"{iso} {market} prices")
    used = (firsts < n) & (firsts + counts > 0)
    versions = {f"{node}/{market}/{day}": v[0] for (node, day), v, u in zip(keys, vals, used.tolist(), strict=True)
                if u}
    return PriceGrid(units, ok, versions)


def price_versions(db: Database, iso: str, node: str, market: str, day: date) -> list[tuple[int, datetime, np.ndarray]]:
    """Every stored version of one price day (version, received, units)."""
    t = market_price_day_table
    with db.read_connection() as conn:
        rows = conn.execute(select(t.c.version, t.c.received_at, t.c.price_units).where(
            t.c.iso == iso, t.c.node == node, t.c.market == market, t.c.day == day).order_by(t.c.version)).all()
    return [(v, r if r.tzinfo else r.replace(tzinfo=UTC), _arr(b)) for v, r, b in rows]


# ----------------------------------------------------------------------- statements


def save_statement(db: Database, st: Statement, document_sha256: str) -> tuple[int, bool]:
    """Store a statement version; ``(id, True)`` when new, ``(id, False)`` when already stored."""
    t, tl = market_statement_table, market_statement_line_table
    with db.write_transaction() as conn:
        old = conn.execute(select(t.c.id, t.c.document_sha256).where(t.c.iso == st.iso,
                                                                     t.c.statement_id == st.statement_id)).first()
        if old is not None:
            if old.document_sha256 != document_sha256:
                raise MarketStoreError(f"{st.iso} statement {st.statement_id} arrived again with different "
                                       "content; a new version must carry a new statement id")
            return int(old.id), False
        pk = conn.execute(t.insert().values(iso=st.iso, operating_day=st.operating_day, market=st.market,
                                            kind=st.kind, statement_id=st.statement_id, total=str(st.total()),
                                            document_sha256=document_sha256, source=st.source,
                                            received_at=_now())).inserted_primary_key[0]
        if st.lines:
            conn.execute(tl.insert(), [
                {"statement_pk": pk, "code": ln.code, "resource": ln.resource, "start_epoch": int(ln.start.timestamp()),
                 "minutes": ln.minutes, "amount": str(ln.amount), "label": ln.label,
                 "determinants": json.dumps({k: str(v) for k, v in ln.determinants.items()})}
                for ln in st.lines])
    return int(pk), True


@dataclass
class StoredStatement:
    """A statement version as stored, with its row id and when it arrived."""

    pk: int
    statement: Statement
    received_at: datetime


def load_statements(db: Database, iso: str, day: date | None = None, first: date | None = None,
                    last: date | None = None) -> list[StoredStatement]:
    """Statement versions of one day (or a day range), in the order they arrived."""
    t, tl = market_statement_table, market_statement_line_table
    q = select(t).where(t.c.iso == iso)
    if day is not None:
        q = q.where(t.c.operating_day == day)
    if first is not None:
        q = q.where(t.c.operating_day >= first)
    if last is not None:
        q = q.where(t.c.operating_day <= last)
    out = []
    with db.read_connection() as conn:
        heads = conn.execute(q.order_by(t.c.received_at, t.c.id)).mappings().all()
        for h in heads:
            rows = conn.execute(select(tl).where(tl.c.statement_pk == h["id"])
                                .order_by(tl.c.code, tl.c.resource, tl.c.start_epoch)).mappings().all()
            lines = tuple(StatementLine(code=r["code"], resource=r["resource"],
                                        start=datetime.fromtimestamp(r["start_epoch"], tz=UTC), minutes=r["minutes"],
                                        amount=Decimal(r["amount"]), label=r["label"],
                                        determinants={k: Decimal(v) for k, v in json.loads(r["determinants"]).items()})
                          for r in rows)
            st = Statement(iso=h["iso"], operating_day=h["operating_day"], kind=h["kind"], market=h["market"],
                           statement_id=h["statement_id"], lines=lines, source=h["source"])
            rec = h["received_at"]
            out.append(StoredStatement(h["id"], st, rec if rec.tzinfo else rec.replace(tzinfo=UTC)))
    return out


def record_shadow_run(db: Database, iso: str, day: date, statement_pk: int | None, inputs_sha256: str,
                      versions: dict[str, int], totals: dict[str, dict[str, str]]) -> int:
    """Record a shadow run; the same inputs against the same statement are recorded once."""
    t = market_shadow_run_table
    with db.write_transaction() as conn:
        same = conn.execute(select(t.c.id).where(t.c.iso == iso, t.c.operating_day == day,
                                                 t.c.inputs_sha256 == inputs_sha256,
                                                 t.c.statement_pk == statement_pk if statement_pk is not None
                                                 else t.c.statement_pk.is_(None))).first()
        if same is not None:
            return int(same.id)
        return int(conn.execute(t.insert().values(iso=iso, operating_day=day, statement_pk=statement_pk,
                                                  inputs_sha256=inputs_sha256, price_versions=json.dumps(versions),
                                                  totals=json.dumps(totals), created_at=_now())).inserted_primary_key[0])


def count_shadow_runs(db: Database, iso: str, day: date) -> int:
    t = market_shadow_run_table
    with db.read_connection() as conn:
        return int(conn.execute(select(func.count()).select_from(t).where(t.c.iso == iso,
                                                                          t.c.operating_day == day)).scalar() or 0)
