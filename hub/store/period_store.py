"""Period readings per channel: daily, billing-period and register readings, versioned.

Readings that are not intervals are few (one a day, one a month) but they are data: they
are stored with their quality, re-ingesting the same file changes nothing, and a restated
value gets a new version while the old one stays. A batch is validated completely and
written with bulk statements in the caller's transaction (the same one as the batch's
interval data), so a bad reading rejects the whole file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, func, select, update

from kwhub.core.input_limits import excerpt, instant_text
from kwhub.core.intervals import MAX_CHANNEL_ID, PERIOD_KINDS, IntervalDataError, PeriodSeries
from kwhub.core.quality import Quality
from kwhub.hub.store.tables import period_reading_table, utcnow

if TYPE_CHECKING:
    from kwhub.hub.store.db import Database

P = period_reading_table.c
SOURCE_MAX = 400
IN_CHUNK = 500


@dataclass
class PeriodWriteReport:
    """What one write of period readings did."""

    readings: int = 0  # readings in the batch
    new: int = 0
    changed: int = 0  # restated: a new version
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"readings": self.readings, "new": self.new, "changed": self.changed, "unchanged": self.unchanged}


@dataclass
class PeriodSummary:
    """Current period readings of one channel and kind."""

    channel_id: str
    kind: str
    readings: int
    first_start: int
    last_end: int
    total_kwh: float  # sum of the values (for registers: not an energy, reported as is)


def _prepare(p: PeriodSeries, source: str) -> PeriodSeries:
    """Validate one series and drop identical repeats (a conflicting repeat is an error)."""
    cid = p.channel_id
    where = cid if len(cid) <= 60 else excerpt(cid)
    if not cid:
        raise IntervalDataError("period readings without a channel id", source=source, field="channel")
    if len(cid) > MAX_CHANNEL_ID:
        raise IntervalDataError(f"channel id {excerpt(cid)} is {len(cid)} characters long, more than the "
                                f"{MAX_CHANNEL_ID} a channel id may have", source=source, field="channel")
    if p.kind not in PERIOD_KINDS:
        raise IntervalDataError(f"kind {p.kind!r} is not one of {PERIOD_KINDS}", source=source, where=where,
                                field="kind")
    bad = ~np.isfinite(p.values)
    if bad.any():
        i = int(np.argmax(bad))
        raise IntervalDataError(f"reading at {instant_text(int(p.starts[i]))} is not a finite number ({p.values[i]})",
                                source=source, where=where, field="value")
    bad = p.quality >= Quality.MISSING
    if bad.any():
        i = int(np.argmax(bad))
        raise IntervalDataError(f"reading at {instant_text(int(p.starts[i]))} has quality code {int(p.quality[i])}; "
                                "a stored reading has a value (valid, estimated, edited or suspect)",
                                source=source, where=where, field="quality")
    span = p.ends - p.starts
    bad = span != 0 if p.kind == "register" else span <= 0
    if bad.any():
        i = int(np.argmax(bad))
        want = "a register reading is one instant (start = end)" if p.kind == "register" else \
            "a period must end after it starts"
        raise IntervalDataError(f"reading {instant_text(int(p.starts[i]))}..{instant_text(int(p.ends[i]))}: {want}",
                                source=source, where=where, field="end")
    order = np.lexsort((p.ends, p.starts))
    s, e, v, q = p.starts[order], p.ends[order], p.values[order], p.quality[order]
    same = (s[1:] == s[:-1]) & (e[1:] == e[:-1])
    if same.any():
        differ = same & ((v[1:] != v[:-1]) | (q[1:] != q[:-1]))
        if differ.any():
            i = int(np.argmax(differ))
            raise IntervalDataError(f"reading {instant_text(int(s[i]))}..{instant_text(int(e[i]))} appears twice "
                                    f"with different values ({v[i]!r} and {v[i + 1]!r})", source=source, where=where,
                                    field="value")
        keep = np.concatenate(([True], ~same))
        s, e, v, q = s[keep], e[keep], v[keep], q[keep]
    return PeriodSeries(cid, p.kind, s, e, v, q)


class PeriodStore:
    """Period readings of one :class:`~kwhub.hub.store.db.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def write(self, periods: Sequence[PeriodSeries], source: str = "",
              conn: Connection | None = None) -> PeriodWriteReport:
        """Store ``periods``: new keys are inserted, restated values get a new version.

        Re-writing the same readings changes nothing. Any invalid series rejects all
        (:class:`IntervalDataError`) before anything is written.
        """
        merged: dict[tuple[str, str], list[PeriodSeries]] = {}
        for p in periods:
            if len(p):
                merged.setdefault((p.channel_id, p.kind), []).append(p)
        prepared = []
        for (cid, kind), parts in merged.items():
            one = parts[0] if len(parts) == 1 else PeriodSeries(
                cid, kind, np.concatenate([x.starts for x in parts]), np.concatenate([x.ends for x in parts]),
                np.concatenate([x.values for x in parts]), np.concatenate([x.quality for x in parts]))
            prepared.append(_prepare(one, source))
        report = PeriodWriteReport(readings=int(sum(len(p) for p in periods)))
        if not prepared:
            return report
        if conn is None:
            with self.db.write_transaction() as own:
                return self._write(prepared, source, own, report)
        return self._write(prepared, source, conn, report)

    def _write(self, prepared: list[PeriodSeries], source: str, conn: Connection,
               report: PeriodWriteReport) -> PeriodWriteReport:
        now = utcnow()
        src = source[-SOURCE_MAX:]
        rows: list[dict[str, Any]] = []
        retire: list[int] = []
        for p in prepared:
            stored = conn.execute(
                select(P.id, P.start_epoch, P.end_epoch, P.value, P.quality, P.version).where(
                    P.channel_id == p.channel_id, P.kind == p.kind, P.is_current.is_(True),
                    P.start_epoch >= int(p.starts.min()), P.start_epoch <= int(p.starts.max()))).all()
            old = {(int(r.start_epoch), int(r.end_epoch)): r for r in stored}
            for s, e, v, q in zip(p.starts.tolist(), p.ends.tolist(), p.values.tolist(), p.quality.tolist(),
                                  strict=True):
                prev = old.get((s, e))
                version = 1
                if prev is not None:
                    if float(prev.value) == v and int(prev.quality) == q:
                        report.unchanged += 1
                        continue
                    version = int(prev.version) + 1
                    retire.append(int(prev.id))
                    report.changed += 1
                else:
                    report.new += 1
                rows.append({"channel_id": p.channel_id, "kind": p.kind, "start_epoch": s, "end_epoch": e,
                             "value": v, "quality": q, "version": version, "is_current": True, "source": src,
                             "created_at": now})
        for i in range(0, len(retire), IN_CHUNK):
            conn.execute(update(period_reading_table).where(P.id.in_(retire[i:i + IN_CHUNK]))
                         .values(is_current=False))
        if rows:
            conn.execute(period_reading_table.insert(), rows)
        return report

    def read(self, channel_ids: Sequence[str], start_epoch: int, end_epoch: int,
             kind: str | None = None) -> list[PeriodSeries]:
        """Current readings of ``channel_ids`` that overlap ``[start_epoch, end_epoch]``, per channel and kind.

        A period overlaps when it starts before ``end_epoch`` and ends after
        ``start_epoch``; a register reading when its instant lies inside (ends included).
        """
        ids = list(dict.fromkeys(channel_ids))
        out: list[PeriodSeries] = []
        if not ids:
            return out
        with self.db.read_connection() as conn:
            for i in range(0, len(ids), IN_CHUNK):
                stmt = select(P.channel_id, P.kind, P.start_epoch, P.end_epoch, P.value, P.quality).where(
                    P.channel_id.in_(ids[i:i + IN_CHUNK]), P.is_current.is_(True),
                    P.start_epoch <= end_epoch, P.end_epoch >= start_epoch)
                if kind is not None:
                    stmt = stmt.where(P.kind == kind)
                rows = conn.execute(stmt.order_by(P.channel_id, P.kind, P.start_epoch, P.end_epoch)).all()
                out += _group(rows)
        return out

    def history(self, channel_id: str, kind: str, start_epoch: int, end_epoch: int) -> list[dict[str, Any]]:
        """Every stored version of one reading, oldest first."""
        stmt = select(P.version, P.value, P.quality, P.is_current, P.source, P.created_at).where(
            P.channel_id == channel_id, P.kind == kind, P.start_epoch == start_epoch,
            P.end_epoch == end_epoch).order_by(P.version)
        with self.db.read_connection() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def summary(self) -> list[PeriodSummary]:
        """Per channel and kind: how many current readings, first start, last end, sum of values."""
        stmt = select(P.channel_id, P.kind, func.count(), func.min(P.start_epoch), func.max(P.end_epoch),
                      func.sum(P.value)).where(P.is_current.is_(True)).group_by(P.channel_id, P.kind) \
            .order_by(P.channel_id, P.kind)
        with self.db.read_connection() as conn:
            return [PeriodSummary(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), float(r[5] or 0.0))
                    for r in conn.execute(stmt)]

    def count_rows(self) -> int:
        """Stored rows, every version."""
        with self.db.read_connection() as conn:
            return int(conn.execute(select(func.count()).select_from(period_reading_table)).scalar() or 0)


def _group(rows: Sequence[Any]) -> list[PeriodSeries]:
    """Rows sorted by (channel, kind, start) as one :class:`PeriodSeries` per channel and kind."""
    out: list[PeriodSeries] = []
    i = 0
    while i < len(rows):
        j = i
        key = (rows[i][0], rows[i][1])
        while j < len(rows) and (rows[j][0], rows[j][1]) == key:
            j += 1
        part = rows[i:j]
        out.append(PeriodSeries(key[0], key[1], np.array([r[2] for r in part], dtype=np.int64),
                                np.array([r[3] for r in part], dtype=np.int64),
                                np.array([r[4] for r in part], dtype=np.float64),
                                np.array([r[5] for r in part], dtype=np.uint8)))
        i = j
    return out
