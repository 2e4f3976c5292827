"""Settlement runs against the store: load, allocate, price, issue, detect staleness.

:func:`settle` runs one version (``initial`` | ``final`` | ``true_up``) of one billing
period for some or all contracts. Per group of contracts sharing a time zone it reads
the period's dense matrix once (layer ``validated``; ``raw`` only for channel-days
without validated content and only when ``SettlementOptions.fallback_raw``), balances and
allocates the campus once, then prices each contract and writes, in ONE write
transaction per run: the ``settlement_run`` row (the database refuses a duplicate
(contract, period, version kind, sequence)), the ``run_input`` rows (channel-day
versions and content hashes), the buyer's ``run_allocation`` rows, the next invoice
number of the seller (``invoice_sequence``, row-locked) and the invoice with its lines.
A failure rolls all of it back, so invoice numbers have no gaps.

A later version bills only the difference to the previous version, as an adjustment
invoice or a credit note referencing the original invoice. A run is stale when any
channel-day it read has different content now, or when its market revenue credits rest on
ISO statements that a later version has replaced (:func:`stale_runs`).

Invoices are read back with :func:`list_invoices` / :func:`get_invoice`; nothing here
updates or deletes an invoice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from kwhub.core.accounting import campus_accounts
from kwhub.core.allocation import AllocationResult, allocate, pack_array
from kwhub.core.campus import Campus, Contract
from kwhub.core.contract_energy import EnergyPlan, EnergyPlanError, plan_energy
from kwhub.core.contract_versions import changed_since, terms_for_period
from kwhub.core.intervals import DayHashes, IntervalMatrix, day_start_epoch
from kwhub.core.invoice import DocumentReference, Invoice
from kwhub.core.line_emissions import PeriodBasis, period_basis
from kwhub.core.money import money_str
from kwhub.core.pricing.base import PeriodHistory, PricingError
from kwhub.core.quality import Quality
from kwhub.core.review import CheckResult, ReviewInputs, effective_checks, held_reasons, run_checks
from kwhub.core.settlement import (
    BALANCE_ROLES,
    InputRef,
    InputSummary,
    RunComputation,
    RunKey,
    SettlementError,
    SettlementOptions,
    build_statement,
    canonical_json,
    compute_run,
    contract_channels,
    credits_market_revenue,
    draft_document,
    draft_invoice,
    history_from_statement,
    kwh_factor,
    line_from_json,
    missing_report,
    needs_allocation,
    regrid,
    statement_hash,
    unbilled_rows,
)
from kwhub.core.timeline import BillingPeriod, Span, billing_period, previous_periods
from kwhub.core.versions import (
    VersionError,
    kind_order,
    plan_version,
    rerun_decision,
)
from kwhub.hub.esg.carbon_store import store_basis
from kwhub.hub.settle.integrity import chain_link
from kwhub.hub.store import Database
from kwhub.hub.store.carbon_tables import run_carbon_table
from kwhub.hub.store.settlement_tables import (
    invoice_line_table,
    invoice_sequence_table,
    invoice_table,
    run_allocation_table,
    run_input_table,
    settlement_run_table,
)
from kwhub.hub.store.tables import interval_day_table


class DuplicateRunError(SettlementError):
    """The database refused a run that already exists."""


RUN_STATUSES = ("draft", "held", "issued", "no_change", "rejected", "superseded")


@dataclass
class RunOutcome:
    """What happened to one contract in a :func:`settle` call.

    ``status``: ``draft`` (checks passed, awaiting approval), ``held`` (a check failed;
    ``checks`` says which), ``issued`` (approved, by policy or a person), ``no_change``
    (a later version with nothing to correct), ``unchanged`` (this version was settled
    before on the same data: nothing written), ``error`` (nothing written for it).
    With ``dry_run`` nothing was written at all.
    """

    contract_id: str
    period: str
    version_kind: str
    seq: int = 0
    run_id: str = ""
    status: str = "error"
    invoice: Invoice | None = None
    statement_hash: str = ""
    imbalance_intervals: int = 0
    error: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    draft: Invoice | None = None
    accounts: list[dict[str, Any]] = field(default_factory=list)
    missing_intervals: int = 0
    dry_run: bool = False
    note: str = ""

    @property
    def held_reasons(self) -> list[str]:
        return held_reasons(self.checks)

    def as_dict(self) -> dict[str, Any]:
        inv = self.invoice
        doc = inv or self.draft
        return {
            "contract": self.contract_id, "period": self.period, "version": self.version_kind, "seq": self.seq,
            "run_id": self.run_id, "status": self.status, "statement_hash": self.statement_hash,
            "invoice": None if inv is None else {"id": inv.id, "number": inv.number, "kind": inv.kind,
                                                  "total": money_str(inv.total), "currency": inv.currency},
            "document": None if doc is None else {"kind": doc.kind, "total": money_str(doc.total),
                                                   "currency": doc.currency, "lines": len(doc.lines)},
            "checks": [c.as_json() for c in self.checks], "held_reasons": self.held_reasons,
            "missing_intervals_zeroed": self.missing_intervals,
            "imbalance_intervals": self.imbalance_intervals, "error": self.error or None, "dry_run": self.dry_run,
            "note": self.note or None,
        }


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_IN_CHUNK = 500


def _day_no(d: date) -> int:
    return d.toordinal() - _EPOCH_ORDINAL


def _from_day_no(n: int) -> date:
    return date.fromordinal(n + _EPOCH_ORDINAL)


class InputTable:
    """The channel-days read over a loaded span, flat and ordered by (channel, day, layer).

    ``ch`` (row in ``channel_ids``), ``days`` (epoch-day numbers), ``layer_codes`` (into
    ``layer_names``, which are sorted), ``versions``, ``hashes`` (hex SHA-256) and
    ``lines`` (the ``day|layer|version|hash`` rows :func:`kwhub.core.settlement.channel_digests`
    hashes) are parallel.
    """

    def __init__(self, channel_ids: Sequence[str],
                 parts: Sequence[tuple[str, dict[tuple[str, date], str], dict[tuple[str, date], int]]]) -> None:
        """``parts``: per layer, ``{(channel, day): hash}`` read and ``{(channel, day): version}``
        of the days whose version is not 1."""
        self.channel_ids = list(channel_ids)
        self.pos = {c: i for i, c in enumerate(self.channel_ids)}
        self.layer_names = sorted({layer for layer, hashes, _ in parts if hashes})
        code = {name: i for i, name in enumerate(self.layer_names)}
        chs: list[np.ndarray] = []
        days: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        vers: list[np.ndarray] = []
        hashes: list[str] = []
        dnum: dict[date, int] = {}
        for layer, found, versions in parts:
            if not found:
                continue
            if isinstance(found, DayHashes):  # straight from a read: per-channel arrays
                offset: dict[str, int] = {}
                n = 0
                for cid, dn, digests in found.channels():
                    offset[cid] = n
                    n += len(dn)
                    chs.append(np.full(len(dn), self.pos[cid], dtype=np.int64))
                    days.append(dn)
                    hashes += digests

                def at(k: tuple[str, date], found: DayHashes = found, offset: dict[str, int] = offset) -> int | None:
                    i = found.position(k)
                    return None if i is None else offset[k[0]] + i
            else:
                n = len(found)
                keys = list(found)
                for d in {k[1] for k in keys}:
                    dnum[d] = _day_no(d)
                chs.append(np.fromiter((self.pos[k[0]] for k in keys), dtype=np.int64, count=n))
                days.append(np.fromiter((dnum[k[1]] for k in keys), dtype=np.int64, count=n))
                hashes += found.values()
                index = {k: i for i, k in enumerate(keys)} if versions else {}
                at = index.get  # type: ignore[assignment]
            codes.append(np.full(n, code[layer], dtype=np.int64))
            v = np.ones(n, dtype=np.int64)
            for k, ver in versions.items():
                i = at(k)
                if i is not None:
                    v[i] = ver
            vers.append(v)
        if chs:
            ch, dy, cd, vr = (np.concatenate(x) for x in (chs, days, codes, vers))
        else:
            ch = dy = cd = vr = np.zeros(0, dtype=np.int64)
        n_layers = max(1, len(self.layer_names))
        rank = (ch * 1_000_000 + dy) * n_layers + cd
        order = None if (rank[1:] > rank[:-1]).all() else np.lexsort((cd, dy, ch))  # reads come sorted
        if order is not None and len(order) and not (np.diff(order) == 1).all():
            ch, dy, cd, vr = ch[order], dy[order], cd[order], vr[order]
            hashes = [hashes[i] for i in order.tolist()]
        self.ch, self.days, self.layer_codes, self.versions, self.hashes = ch, dy, cd, vr, hashes
        self.key = ch * 1_000_000 + dy  # sorted: (channel, day)
        udays = np.unique(dy)
        iso = dict(zip(udays.tolist(), np.datetime_as_string(udays.astype("datetime64[D]")).tolist(), strict=True))
        prefix: dict[int, str] = {}
        pre_idx = np.zeros(len(ch), dtype=np.int64)
        self._lines: list[str] | None = None
        self._hex: str | None = None
        if len(ch):
            combo = (dy * len(self.layer_names) + cd) * 4096 + np.minimum(vr, 4095)
            uniq, inv = np.unique(combo, return_inverse=True)
            pre_idx = inv.reshape(-1)
            for j, c in enumerate(uniq.tolist()):
                dl, v = divmod(c, 4096)
                d, lc = divmod(dl, len(self.layer_names))
                prefix[j] = f"{iso[d]}|{self.layer_names[lc]}|{v}|"
            if not self._fixed_width(prefix, pre_idx, hashes, bool((vr >= 4095).any())):
                if (vr >= 4095).any():  # a version that does not fit the key: spell those out
                    pres = [prefix[j] for j in pre_idx.tolist()]
                    for i in np.flatnonzero(vr >= 4095).tolist():
                        pres[i] = f"{iso[int(dy[i])]}|{self.layer_names[int(cd[i])]}|{int(vr[i])}|"
                    pre = np.array(pres, dtype=object)
                else:
                    pre = np.array([prefix[j] for j in range(len(uniq))], dtype=object)[pre_idx]
                self._set_lines((pre + np.array(hashes, dtype=object) + "\n").tolist())
        else:
            self._set_lines([])
        self._raw: bytes | None = None
        self._packed: tuple[list[int], bytes, bytes] | None = None

    def _set_lines(self, lines: list[str]) -> None:
        self._lines = lines
        # all lines as one buffer: a channel's lines of a period are one slice of it
        self.buffer = memoryview("".join(lines).encode("utf-8"))
        ends = np.cumsum(np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)))
        if len(ends) and ends[-1] != len(self.buffer):  # non-ASCII layer names: count bytes
            ends = np.cumsum([len(x.encode("utf-8")) for x in lines])
        self.line_offsets: Sequence[int] = [0, *ends.tolist()]

    def _fixed_width(self, prefix: dict[int, str], pre_idx: np.ndarray, hashes: list[str], odd: bool) -> bool:
        """The buffer built as one byte matrix when every line has the same ASCII width
        (one layer name length, versions of one digit count, 64-character digests): no
        string per line. False (nothing done) otherwise."""
        pre_b = [prefix[j].encode("utf-8") for j in range(len(prefix))]
        width = len(pre_b[0])
        joined = "".join(hashes)
        if (odd or any(len(b) != width or len(b) != len(prefix[j]) for j, b in enumerate(pre_b))
                or len(joined) != 64 * len(hashes) or not joined.isascii()):
            return False
        n, size = len(hashes), width + 65
        rows = np.empty((n, size), dtype=np.uint8)
        rows[:, :width] = np.frombuffer(b"".join(pre_b), dtype=np.uint8).reshape(-1, width)[pre_idx]
        rows[:, width:width + 64] = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(n, 64)
        rows[:, width + 64] = ord("\n")
        self.buffer = memoryview(rows.tobytes())
        self.line_offsets = range(0, n * size + 1, size)
        self._hex = joined
        return True

    @property
    def lines(self) -> list[str]:
        """The ``day|layer|version|hash`` line of each channel-day (with its newline)."""
        if self._lines is None:
            text = bytes(self.buffer).decode("ascii")
            size = self.line_offsets[1] if len(self.line_offsets) > 1 else 1
            self._lines = [text[i:i + size] for i in range(0, len(text), size)]
        return self._lines

    def packed(self) -> tuple[list[int], bytes, bytes]:
        """Days as a list, versions as little-endian int32 and the raw digests (made once)."""
        if self._packed is None:
            self._packed = (self.days.tolist(), self.versions.astype("<i4").tobytes(), self.raw_hashes())
        return self._packed

    def raw_hashes(self) -> bytes:
        """The 32-byte digests, concatenated in order."""
        if self._raw is None:
            joined = self._hex if self._hex is not None else "".join(self.hashes)
            if len(joined) != 64 * len(self.hashes):
                raise SettlementError("content hashes must be SHA-256 hex digests")
            self._raw = bytes.fromhex(joined)
        return self._raw


class PeriodInputs:
    """The channel-days of one period (UTC days ``first..last``) of an :class:`InputTable`.

    Per channel: the digest (:func:`kwhub.core.settlement.channel_digests`), the packed
    ``run_input`` rows and, on demand, the :class:`InputRef` rows; per run an
    :class:`~kwhub.core.settlement.InputSummary`.
    """

    def __init__(self, table: InputTable, first: int, last: int) -> None:
        self.table = table
        self.first, self.last = first, last
        base = np.arange(len(table.channel_ids), dtype=np.int64) * 1_000_000
        self.lo = np.searchsorted(table.key, base + first, "left")
        self.hi = np.searchsorted(table.key, base + last, "right")
        self._lo: list[int] = self.lo.tolist()
        self._hi: list[int] = self.hi.tolist()
        self.single_layer = len(table.layer_names) <= 1
        self._digests: dict[str, str] = {}
        self._packed: tuple[bytes, int] | None = None

    def bounds(self, ch: str) -> tuple[int, int]:
        i = self.table.pos.get(ch)
        if i is None:
            return 0, 0
        return self._lo[i], self._hi[i]

    def count(self, ch: str) -> int:
        i = self.table.pos.get(ch)
        return 0 if i is None else self._hi[i] - self._lo[i]

    def digest(self, ch: str) -> str:
        d = self._digests.get(ch)
        if d is None:
            a, b = self.bounds(ch)
            t = self.table
            if self.single_layer:  # one layer: the lines are in sorted order already
                d = hashlib.sha256(t.buffer[t.line_offsets[a]:t.line_offsets[b]]).hexdigest()
            else:
                d = hashlib.sha256("".join(sorted(t.lines[a:b])).encode("utf-8")).hexdigest()
            self._digests[ch] = d
        return d

    def digests(self) -> dict[str, str]:
        """``{channel: digest}`` of the channels with days in the period."""
        return {ch: self.digest(ch) for ch in self.table.channel_ids if self.count(ch)}

    def refs(self, ch: str) -> list[InputRef]:
        a, b = self.bounds(ch)
        t = self.table
        return [InputRef(ch, _from_day_no(int(t.days[i])), t.layer_names[int(t.layer_codes[i])],
                         int(t.versions[i]), t.hashes[i]) for i in range(a, b)]

    def summary(self, channels: Iterable[str]) -> tuple[InputSummary, list[str]]:
        """The statement's input fields for a run reading ``channels``, and the channels with days."""
        count = self.count
        used = sorted(ch for ch in set(channels) if count(ch))
        t = self.table
        if self.single_layer:
            layers = list(t.layer_names) if used else []
        else:
            codes: set[int] = set()
            for ch in used:
                a, b = self.bounds(ch)
                codes.update(np.unique(t.layer_codes[a:b]).tolist())
            layers = sorted(t.layer_names[c] for c in codes)
        digest = hashlib.sha256("".join(f"{ch}:{self.digest(ch)}\n" for ch in used).encode("utf-8")).hexdigest()
        return InputSummary(sum(map(count, used)), digest, used, layers), used

    def _pack(self) -> tuple[bytes, int]:
        """Day offsets (from each channel's first day in the period) of the period's
        channel-days, packed once (from entry ``base`` on); runs slice them per channel."""
        if self._packed is None:
            t = self.table
            lo, hi = self.lo, self.hi
            has = hi > lo
            if not has.any():
                self._packed = (b"", 0)
                return self._packed
            base, top = int(lo[has].min()), int(hi[has].max())
            first = t.days[lo[has]]
            step = np.zeros(top - base + 1, dtype=np.int64)
            np.add.at(step, lo[has] - base, first)
            np.add.at(step, hi[has] - base, -first)
            first_of = np.cumsum(step[:-1])
            self._packed = ((t.days[base:top] - first_of).astype("<i4").tobytes(), base)
        return self._packed

    def rows(self, ch: str) -> list[tuple[Any, ...]]:
        """``(channel, layer, first day no, last day no, n, day_offsets, versions, hashes)`` per layer."""
        a, b = self.bounds(ch)
        if a == b:
            return []
        t = self.table
        if self.single_layer:
            offsets, base = self._pack()
            days, versions, raw = t.packed()
            return [(ch, t.layer_names[0], days[a], days[b - 1], b - a, offsets[4 * (a - base):4 * (b - base)],
                     versions[4 * a:4 * b], raw[32 * a:32 * b])]
        raw = t.raw_hashes()
        out = []
        codes = t.layer_codes[a:b]
        for code in np.unique(codes).tolist():
            idx = a + np.flatnonzero(codes == code)
            days = t.days[idx]
            d0 = int(days[0])
            out.append((ch, t.layer_names[code], d0, int(days[-1]), len(idx), (days - d0).astype("<i4").tobytes(),
                        t.versions[idx].astype("<i4").tobytes(),
                        b"".join(raw[32 * i:32 * i + 32] for i in idx.tolist())))
        return out


@dataclass
class PeriodData:
    """The period's matrix (kWh at the settlement interval) and the channel-days read."""

    period: BillingPeriod
    matrix: IntervalMatrix
    inputs: PeriodInputs

    @property
    def digests(self) -> dict[str, str]:
        return self.inputs.digests()


@dataclass
class LoadedSpan:
    """Channels read over one span (one or more consecutive billing periods)."""

    span: Span
    channel_ids: list[str]
    interval_minutes: int
    values: np.ndarray
    quality: np.ndarray
    inputs: InputTable

    def period(self, period: BillingPeriod) -> PeriodData:
        """The columns and channel-days of ``period`` (inside the span); views, no copies."""
        step = self.interval_minutes * 60
        a = (period.span.start_epoch - self.span.start_epoch) // step
        n = period.span.n_intervals(self.interval_minutes)
        if a < 0 or a + n > self.values.shape[1]:
            raise SettlementError(f"period {period.label} is outside the loaded span")
        matrix = IntervalMatrix(self.channel_ids, period.span.start_epoch, self.interval_minutes,
                                self.values[:, a:a + n], self.quality[:, a:a + n])
        days = period.span.utc_days()
        return PeriodData(period, matrix, PeriodInputs(self.inputs, _day_no(days[0]), _day_no(days[-1])))


# --------------------------------------------------------------------------- loading


def _current_days(db: Database, channel_ids: Sequence[str], days: Sequence[date], layer: str) -> dict[tuple[str, date], tuple[int, str]]:
    """``{(channel, day): (version, content_hash)}`` of the current versions in ``layer``."""
    if not channel_ids or not days:
        return {}
    return db.intervals.day_hashes(list(channel_ids), min(days), max(days), layer=layer)


def _restated(db: Database, ids: Sequence[str], first: date, last: date, layer: str) -> dict[tuple[str, date], tuple[int, str]]:
    """``{(channel, day): (version, hash)}`` of the current versions of channels that have a
    version above 1 between ``first`` and ``last``; every other day read is at version 1.

    The candidates come from the (channel, day, layer, version) unique index alone (no
    table rows), so this costs little next to reading the values.
    """
    t = interval_day_table.c
    chans: set[str] = set()
    lo, hi = last, first
    with db.read_connection() as conn:
        for i in range(0, len(ids), _IN_CHUNK):
            q = select(t.channel_id, t.day).where(
                t.channel_id.in_(list(ids[i:i + _IN_CHUNK])), t.day >= first, t.day <= last, t.layer == layer,
                t.version > 1)
            for ch, d in conn.execute(q):
                chans.add(ch)
                lo, hi = min(lo, d), max(hi, d)
    if not chans:
        return {}
    return db.intervals.day_hashes(sorted(chans), lo, hi, layer=layer)


def _day_slices(span: Span, minutes: int) -> dict[date, slice]:
    """Matrix column slice of each UTC day the span touches."""
    step = minutes * 60
    s0, s1 = span.start_epoch, span.end_epoch
    out = {}
    for d in span.utc_days():
        a = max(s0, day_start_epoch(d))
        b = min(s1, day_start_epoch(d) + 86_400)
        out[d] = slice((a - s0) // step, (b - s0) // step)
    return out


def _layer_days(db: Database, ids: Sequence[str], span: Span, m: IntervalMatrix, layer: str,
                wanted: set[tuple[str, date]] | None = None) -> tuple[str, dict[tuple[str, date], str], dict[tuple[str, date], int]]:
    """``(layer, {(channel, day): hash}, {(channel, day): version}`` of the channel-days ``m``
    read (versions only where not 1; see :func:`_restated`).

    A day whose current content differs from what was read was restated while it was
    read: the read is refused.
    """
    found = m.day_hashes if wanted is None else {k: h for k, h in m.day_hashes.items() if k in wanted}
    versions: dict[tuple[str, date], int] = {}
    if found:
        days = span.utc_days()
        for k, (ver, h) in _restated(db, ids, days[0], days[-1], layer).items():
            seen = found.get(k)
            if seen is None:
                continue
            if seen != h:
                raise SettlementError(f"channel {k[0]} day {k[1]}: data changed while it was read; settle again")
            if ver != 1:
                versions[k] = ver
    return layer, found, versions


def _read_group(db: Database, ids: list[str], span: Span, minutes: int, options: SettlementOptions,
                parts: list[tuple[str, dict[tuple[str, date], str], dict[tuple[str, date], int]]]
                ) -> tuple[np.ndarray, np.ndarray]:
    m = db.intervals.read_matrix(ids, span, minutes, layer=options.layer)
    parts.append(_layer_days(db, ids, span, m, options.layer))
    values = m.values
    quality = m.quality
    if options.fallback_raw:
        days = span.utc_days()
        day_nos = np.array([_day_no(d) for d in days], dtype=np.int64)
        have = m.day_hashes.has_days(ids, day_nos)
        gaps = [(ids[i], days[j]) for i, j in np.argwhere(~have).tolist()]
        if gaps:
            raw_ids = sorted({ch for ch, _ in gaps})
            raw = db.intervals.read_matrix(raw_ids, span, minutes, layer="raw")
            wanted = {g for g in gaps if g in raw.day_hashes}
            parts.append(_layer_days(db, raw_ids, span, raw, "raw", wanted))
            slices = _day_slices(span, minutes)
            values = values.copy()
            quality = quality.copy()
            row = {c: i for i, c in enumerate(ids)}
            raw_row = {c: i for i, c in enumerate(raw_ids)}
            for ch, d in sorted(wanted):
                sl = slices[d]
                values[row[ch], sl] = raw.values[raw_row[ch], sl]
                quality[row[ch], sl] = raw.quality[raw_row[ch], sl]
    return values, quality


def load_span(db: Database, campus: Campus, span: Span, channel_ids: Sequence[str],
              options: SettlementOptions) -> LoadedSpan:
    """Read ``channel_ids`` over ``span`` into one matrix of kWh at the coarsest interval.

    Channels are read at their own interval length; finer channels are summed (energy)
    or averaged (availability) onto the settlement grid; Wh/MWh/kW/MW become kWh.
    """
    chans = {c.id: c for c in campus.channels}
    unknown = [c for c in channel_ids if c not in chans]
    if unknown:
        raise SettlementError(f"unknown channel(s): {', '.join(unknown)}")
    ids = list(dict.fromkeys(channel_ids))
    minutes = max(chans[c].interval_minutes for c in ids)
    n = span.n_intervals(minutes)
    by_len: dict[int, list[str]] = {}
    for c in ids:
        by_len.setdefault(chans[c].interval_minutes, []).append(c)
    parts: list[tuple[str, dict[tuple[str, date], str], dict[tuple[str, date], int]]] = []
    values: np.ndarray | None = None
    quality: np.ndarray | None = None
    row = {c: i for i, c in enumerate(ids)}
    for length, group in sorted(by_len.items()):
        if minutes % length:
            raise SettlementError(f"channels of {length} and {minutes} minutes cannot share a settlement grid")
        vals, qual = _read_group(db, group, span, length, options, parts)
        factor = minutes // length
        fractions = [i for i, c in enumerate(group) if chans[c].role == "availability" or chans[c].unit == "fraction"]
        scale = np.array([kwh_factor(chans[c], length) for c in group])
        summed = regrid(vals * scale[:, None] if (scale != 1.0).any() else vals, factor, "sum")
        if fractions:
            summed[fractions] = regrid(vals[fractions], factor, "mean")
        worst = qual if factor == 1 else qual.reshape(qual.shape[0], -1, factor).max(axis=2)
        if len(by_len) == 1:
            values = summed if summed.flags.c_contiguous else np.ascontiguousarray(summed)
            quality = worst
        else:
            if values is None:
                values = np.full((len(ids), n), np.nan)
                quality = np.full((len(ids), n), Quality.MISSING, dtype=np.uint8)
            assert quality is not None
            values[[row[c] for c in group]] = summed
            quality[[row[c] for c in group]] = worst
    assert values is not None and quality is not None
    return LoadedSpan(span, ids, minutes, values, quality, InputTable(ids, parts))


def load_period(db: Database, campus: Campus, period: BillingPeriod, channel_ids: Sequence[str],
                options: SettlementOptions) -> PeriodData:
    """Read ``channel_ids`` over ``period`` (see :func:`load_span`)."""
    return load_span(db, campus, period.span, channel_ids, options).period(period)


# --------------------------------------------------------------------------- runs in the store




def existing_runs(db: Database, contract_id: str, period: str) -> list[dict[str, Any]]:
    """Runs of a contract and period, oldest version first (statement not parsed)."""
    t = settlement_run_table
    q = select(t.c.id, t.c.version_kind, t.c.seq, t.c.status, t.c.invoice_id, t.c.statement_hash, t.c.stale,
               t.c.created_at).where(t.c.contract_id == contract_id, t.c.period == period)
    with db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    return sorted(rows, key=lambda r: (kind_order(r["version_kind"]), r["seq"]))


@contextmanager
def _reading(source: Database | Any) -> Iterator[Any]:
    """A connection to read on: a new one for a :class:`Database`, else ``source`` itself (a
    connection inside the caller's transaction, which sees that transaction's own rows)."""
    if hasattr(source, "engine"):
        with source.engine.connect() as conn:
            yield conn
    else:
        yield source


def get_run(db: Database | Any, run_id: str) -> dict[str, Any]:
    """A run row with its parsed statement."""
    t = settlement_run_table
    with _reading(db) as conn:
        row = conn.execute(select(t).where(t.c.id == run_id)).first()
    if row is None:
        raise SettlementError(f"no settlement run {run_id!r}")
    out = dict(row._mapping)
    out["statement_json"] = json.loads(out["statement"])
    return out


def run_inputs(db: Database | Any, run_id: str) -> list[InputRef]:
    """The channel-days a run read, by channel and day (unpacked from its ``run_input`` rows)."""
    t = run_input_table
    with _reading(db) as conn:
        rows = conn.execute(select(t.c.channel_id, t.c.layer, t.c.first_day, t.c.n_days, t.c.day_offsets,
                                   t.c.versions, t.c.content_hashes).where(t.c.run_id == run_id)).all()
    out = []
    for ch, layer, first, n, offsets, versions, hashes in rows:
        d0 = first.toordinal()
        hexed = bytes(hashes).hex()
        offs = np.frombuffer(bytes(offsets), dtype="<i4").tolist()
        vers = np.frombuffer(bytes(versions), dtype="<i4").tolist()
        out += [InputRef(ch, date.fromordinal(d0 + offs[i]), layer, vers[i], hexed[64 * i:64 * i + 64])
                for i in range(int(n))]
    out.sort(key=lambda r: (r.channel_id, r.day, r.layer))
    return out


def run_allocation(db: Database | Any, run_id: str) -> list[dict[str, Any]]:
    """The run's tenant x source rows (kWh as exact strings; ``blob`` left packed)."""
    t = run_allocation_table
    with _reading(db) as conn:
        rows = conn.execute(select(t).where(t.c.run_id == run_id).order_by(t.c.tenant, t.c.source)).all()
    return [dict(r._mapping) for r in rows]


def _history(db: Database, contract: Contract, period: str) -> dict[str, PeriodHistory]:
    if not any(spec.kind == "demand" and spec.settings().get("ratchet_pct") for spec in contract.components):
        return {}
    labels = previous_periods(period, 12)
    t = settlement_run_table
    with db.engine.connect() as conn:
        rows = conn.execute(select(t.c.period, t.c.version_kind, t.c.seq, t.c.statement)
                            .where(t.c.contract_id == contract.id, t.c.period.in_(labels),
                                   t.c.status.notin_(("rejected", "superseded")))).all()
    latest: dict[str, tuple[tuple[int, int], str]] = {}
    for per, kind, seq, stmt in rows:
        order = (kind_order(kind), seq)
        if per not in latest or order > latest[per][0]:
            latest[per] = (order, stmt)
    return {per: history_from_statement(json.loads(stmt)) for per, (_, stmt) in latest.items()}


def stale_runs(db: Database, contract_id: str | None = None, period: str | None = None,
               run_ids: Iterable[str] | None = None) -> list[str]:
    """Runs whose recorded channel-day content differs from the current content (or is gone).

    A channel-day is also a change when it had no content in the run's layer at run time
    and has some now. ``run_ids`` limits the check to those runs.
    """
    t = settlement_run_table
    q = select(t.c.id, t.c.layer, t.c.statement)
    if contract_id:
        q = q.where(t.c.contract_id == contract_id)
    if period:
        q = q.where(t.c.period == period)
    if run_ids is not None:
        q = q.where(t.c.id.in_(sorted(set(run_ids))))
    with db.engine.connect() as conn:
        runs = conn.execute(q).all()
    out = []
    for run_id, layer, stmt in runs:
        if _run_changed(db, run_id, layer, json.loads(stmt)):
            out.append(run_id)
    return sorted(out)


def _run_changed(db: Database, run_id: str, layer: str, statement: dict[str, Any]) -> bool:
    """True when a channel-day the run read has other content now, or new content appeared
    (or, for market revenue credits, a later ISO statement version arrived).

    The first and last UTC day of a period in a local time zone lie partly outside it (1
    November 00:00-04:00 UTC is still October in New York); for those days only the part
    inside the run's span counts, so data for the next period does not make this one stale.
    """
    from kwhub.hub.markets.credit import credit_inputs_changed

    if credit_inputs_changed(db, statement):  # its market revenue credits rest on restated ISO statements
        return True
    used = run_inputs(db, run_id)
    channels = statement["inputs"]["channels"] or sorted({r.channel_id for r in used})
    start = datetime.fromisoformat(statement["span"]["start"])
    end = datetime.fromisoformat(statement["span"]["end"])
    span = Span(start, end)
    days = span.utc_days()
    partial = {d for d in (days[0], days[-1]) if not _whole_day(span, d)} if days else set()
    recorded = {(r.channel_id, r.day, r.layer): (r.version, r.content_hash) for r in used}
    for lay in sorted({layer} | {r.layer for r in used}):
        current = _current_days(db, channels, days, lay)
        for (ch, d), (_, h) in current.items():
            key = (ch, d, lay)
            if key in recorded:
                if recorded[key][1] != h and not (d in partial and _same_inside(db, ch, d, lay, recorded[key], span)):
                    return True
            elif lay == layer and not (d in partial and _same_inside(db, ch, d, lay, None, span)):
                return True  # new content in the primary layer
        for ch, d, rl in recorded:
            if rl == lay and (ch, d) not in current:
                return True
    return False


def _whole_day(span: Span, day: date) -> bool:
    start = day_start_epoch(day)
    return span.start_epoch <= start and start + 86_400 <= span.end_epoch


def _same_inside(db: Database, channel_id: str, day: date, layer: str, recorded: tuple[int, str] | None,
                 span: Span) -> bool:
    """Whether the part of a partial day inside ``span`` is what the run read.

    ``recorded`` is the (version, hash) the run read, or None when the day had no content
    then (unchanged when the part inside still has none). The read version is looked up
    among the stored versions by its hash; when it is no longer there (a raw day whose
    gaps were filled in place) the day counts as changed.
    """
    versions = db.intervals.history(channel_id, day, layer=layer)
    if not versions:
        return False
    now = versions[-1]
    n = len(now.values)
    step = 86_400 // n
    t0 = day_start_epoch(day)
    a = max(0, (span.start_epoch - t0 + step - 1) // step)
    b = min(n, max(0, (span.end_epoch - t0) // step))
    if recorded is None:
        return bool((now.quality[a:b] == Quality.MISSING).all())
    then = next((v for v in versions if v.version == recorded[0] and v.content_hash() == recorded[1]), None)
    if then is None or len(then.values) != n:
        return False
    same_values = np.array_equal(then.values[a:b], now.values[a:b], equal_nan=True)
    return same_values and bool((then.quality[a:b] == now.quality[a:b]).all())


def refresh_stale(db: Database, contract_id: str | None = None, period: str | None = None,
                  run_ids: Iterable[str] | None = None) -> list[str]:
    """Set ``settlement_run.stale`` for runs whose inputs changed; return their ids."""
    stale = stale_runs(db, contract_id, period, run_ids)
    if stale:
        with db.write_transaction() as conn:
            conn.execute(update(settlement_run_table).where(settlement_run_table.c.id.in_(stale)).values(stale=True))
    return stale


def stale_flags(db: Database, run_ids: Iterable[str]) -> dict[str, bool]:
    """``{run id: stale}`` after refreshing the flags of ``run_ids`` (:func:`refresh_stale`)."""
    ids = sorted(set(run_ids))
    if not ids:
        return {}
    refresh_stale(db, run_ids=ids)
    t = settlement_run_table
    out: dict[str, bool] = {}
    with db.engine.connect() as conn:
        for i in range(0, len(ids), _IN_CHUNK):
            out.update({rid: bool(flag) for rid, flag in conn.execute(
                select(t.c.id, t.c.stale).where(t.c.id.in_(ids[i:i + _IN_CHUNK])))})
    return out


# --------------------------------------------------------------------------- numbering and issuing


_TAKE_NUMBER = (update(invoice_sequence_table)
                .where(invoice_sequence_table.c.seller == bindparam("take_seller"))
                .values(next_number=invoice_sequence_table.c.next_number + 1)
                .returning(invoice_sequence_table.c.next_number))
_INSERT_RUN = insert(settlement_run_table)
_INSERT_INVOICE = insert(invoice_table)
_INSERT_LINES = insert(invoice_line_table)


def next_invoice_number(conn: Any, dialect: str, seller: str) -> int:
    """Take the seller's next number inside the caller's transaction (row-locked).

    One ``UPDATE ... RETURNING`` (it locks the row like ``SELECT ... FOR UPDATE``); the
    seller's row is created on its first number.
    """
    taken = conn.execute(_TAKE_NUMBER, {"take_seller": seller}).scalar()
    if taken is None:
        t = invoice_sequence_table
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        conn.execute(dialect_insert(t).values(seller=seller, next_number=1)
                     .on_conflict_do_nothing(index_elements=["seller"]))
        taken = conn.execute(_TAKE_NUMBER, {"take_seller": seller}).scalar_one()
    return int(taken) - 1


def _insert_invoice(conn: Any, inv: Invoice, seq: int, period: str, original_id: str | None) -> None:
    """Insert an issued document and its lines, linked into the seller's hash chain
    (:func:`kwhub.hub.settle.integrity.chain_link`, which also refuses a number out of sequence)."""
    now = datetime.now(UTC)
    document = inv.model_dump_json()
    conn.execute(_INSERT_INVOICE, dict(
        id=inv.id, number=inv.number, number_seq=seq, seller=inv.seller.id, buyer=inv.buyer.id, kind=inv.kind,
        version=inv.version, contract_id=inv.contract_id, period=period, run_id=inv.run_id,
        original_invoice_id=original_id, issue_date=inv.issue_date, issued_at=now, status="issued",
        currency=inv.currency, line_total=money_str(inv.line_total), tax_total=money_str(inv.tax_total),
        total=money_str(inv.total), document=document, **chain_link(conn, inv.seller.id, seq, inv.id, document),
    ))
    if inv.lines:
        conn.execute(_INSERT_LINES, [
            {"invoice_id": inv.id, "number": ln.number, "description": ln.description, "charge_type": ln.charge_type,
             "component_id": ln.component_id, "source_asset": ln.source_asset, "quantity": money_str(ln.quantity),
             "unit": ln.unit, "unit_price": money_str(ln.unit_price), "amount": money_str(ln.amount),
             "tax_category": ln.tax_category, "tax_percent": money_str(ln.tax_percent),
             "determinants": json.dumps(ln.determinants, sort_keys=True)}
            for ln in inv.lines
        ])


_INPUT_COLUMNS = ("run_id", "channel_id", "layer", "first_day", "last_day", "n_days", "day_offsets", "versions",
                  "content_hashes")


def _insert_inputs(conn: Any, dialect: str, run_id: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Bulk insert of packed run_input rows (driver-level executemany, one row per channel and layer).

    ``rows``: :meth:`PeriodInputs.rows` tuples (days as epoch-day numbers).
    """
    _insert_inputs_of(conn, dialect, [(run_id, rows)])


def _insert_inputs_of(conn: Any, dialect: str, runs: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
    """The run_input rows of several runs, ``(run_id, rows)`` each, in one executemany (in run order)."""
    if not any(rows for _, rows in runs):
        return
    mark = "?" if dialect == "sqlite" else "%s"
    sql = f"INSERT INTO run_input ({', '.join(_INPUT_COLUMNS)}) VALUES ({', '.join([mark] * len(_INPUT_COLUMNS))})"
    if dialect == "sqlite":
        def as_day(n: int) -> Any:
            return _from_day_no(n).isoformat()
    else:
        as_day = _from_day_no
    seen: dict[int, Any] = {}

    def day(n: int) -> Any:
        v = seen.get(n)
        if v is None:
            v = seen[n] = as_day(n)
        return v

    conn.exec_driver_sql(sql, [(run_id, ch, lay, day(d0), day(d1), n, offs, vers, hashes)
                               for run_id, rows in runs
                               for ch, lay, d0, d1, n, offs, vers, hashes in rows])


def _original_invoice(db: Database, contract_id: str, period: str) -> DocumentReference | None:
    t = invoice_table
    with db.engine.connect() as conn:
        row = conn.execute(select(t.c.id, t.c.number, t.c.issue_date)
                           .where(t.c.contract_id == contract_id, t.c.period == period, t.c.kind == "invoice")
                           .order_by(t.c.number_seq).limit(1)).first()
    return None if row is None else DocumentReference(id=row[0], number=row[1], issue_date=row[2])


# --------------------------------------------------------------------------- settle


def _alloc_rows(key: RunKey, allocation: AllocationResult | None, tenant: str) -> list[dict[str, Any]]:
    if allocation is None or tenant not in allocation.tenants or allocation.kwh is None:
        return []
    t = allocation.tenant_index(tenant)
    from kwhub.core.pricing.base import det

    return [
        {"run_id": key.run_id, "tenant": tenant, "source": s, "kwh": det(float(allocation.totals[t, j])),
         "loss_kwh": det(float(allocation.loss_kwh[t, j])), "intervals": int(allocation.kwh.shape[2]),
         "blob": pack_array(allocation.kwh[t, j])}
        for j, s in enumerate(allocation.sources)
    ]


def _carbon_row(key: RunKey, campus: Campus, contract: Contract, comp: RunComputation) -> dict[str, Any]:
    """The run's ``run_carbon`` row: its carbon basis ids, buyer, sellers of each source, frozen settings."""
    assert comp.carbon is not None
    seller_of = {c.id: c.seller for c in campus.contracts}
    sellers = {a.source: seller_of[a.billed_by] for a in comp.accounts if a.billed_by in seller_of}
    return {"run_id": key.run_id, "period": key.period, "tenant": contract.buyer,
            "activity_id": comp.carbon["activity_id"], "factors_id": comp.carbon["factors_id"],
            "sellers": json.dumps(sellers, sort_keys=True), "settings": json.dumps(comp.carbon["settings"], sort_keys=True)}


def settle_contract(
    db: Database,
    campus: Campus,
    contract: Contract,
    data: PeriodData,
    allocation: AllocationResult | None,
    version: str,
    options: SettlementOptions,
    *,
    issue_date: date | None = None,
    components: Any | None = None,
    conn: Any | None = None,
    on_issue: Callable[[Any, Invoice], None] | None = None,
    runs: list[dict[str, Any]] | None = None,
    channels: Sequence[str] | None = None,
    plan: EnergyPlan | None = None,
    campus_section: dict[str, Any] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    facts: dict[tuple[str, str], _PeriodFacts | None] | None = None,
    carbon: PeriodBasis | None = None,
    pending: list[_RunWrite] | None = None,
) -> RunOutcome:
    """Price one contract from loaded data and record its run as a draft (see module docs).

    The run's document is a draft until the run is approved (:mod:`kwhub.hub.settle.review`): the
    plausibility checks (:mod:`kwhub.core.review`) decide whether it waits as ``draft`` or is
    ``held`` with reasons. Settling a version again on the same data changes nothing
    (``unchanged``); a pending draft on other data is superseded by a new run; an issued
    run on other data is refused (settle the next version). With ``conn`` (a connection
    inside a write transaction) the run is written in a savepoint of it; ``dry_run``
    writes nothing. ``on_issue`` is unused here (documents are issued on approval) and
    kept for callers that pass it through. ``carbon``: the period's carbon basis
    (:func:`kwhub.core.line_emissions.period_basis`), stored by the caller; the energy lines carry
    their emissions from it. ``pending`` (with ``conn``): the run's rows are appended to it
    instead of written, for the caller to write with the others of its batch
    (:func:`_write_runs`).
    """
    period = data.period
    plan = plan or _plan(campus, components)
    if runs is None:
        runs = existing_runs(db, contract.id, period.label)
    if channels is None:
        channels = contract_channels(campus, contract, plan)
    where = f"contract {contract.id!r} period {period.label}"
    try:
        vplan = plan_version(runs, version, where)
    except VersionError as exc:
        raise SettlementError(str(exc)) from None
    prev = vplan.base
    comp = compute_run(campus, contract, period, data.matrix, allocation, options,
                       _history(db, contract, period.label), components, channels=channels, plan=plan,
                       campus_section=campus_section, carbon=carbon)
    summary, used = data.inputs.summary(channels)
    pol = comp.context.money
    old = [line_from_json(x) for x in get_run(db, prev["id"])["statement_json"]["lines"]] if prev else None
    doc = draft_document(comp.lines, old, pol)
    prev_id = prev["id"] if prev else None
    same = vplan.same
    probe_hash = None
    if same is not None:
        probe = build_statement(RunKey(contract.id, period.label, version, same["seq"]), comp, summary, options.layer,
                                doc, prev_id, missing_policy=options.missing)
        probe_hash = statement_hash(canonical_json(probe))
    try:
        decision = rerun_decision(vplan, probe_hash, doc.kind is not None, where)
    except VersionError as exc:
        raise SettlementError(str(exc)) from None
    if decision == "unchanged":
        assert same is not None
        if same["status"] == "draft":  # computed before and still waiting: the policy may issue it now
            row = get_run(db, same["id"])
            return RunOutcome(contract.id, period.label, version, same["seq"], same["id"], status="draft",
                              statement_hash=same["statement_hash"], checks=_checks_of(row),
                              draft=Invoice.model_validate_json(row["draft"]) if row.get("draft") else None,
                              accounts=row["statement_json"].get("accounting", []), dry_run=dry_run,
                              note="computed before on the same data; still awaiting approval")
        return RunOutcome(contract.id, period.label, version, same["seq"], same["id"], status="unchanged",
                          statement_hash=same["statement_hash"],
                          note=f"{same['status']} before on the same data; nothing to do")
    seq = vplan.next_seq
    supersede = same["id"] if decision == "supersede" and same is not None else None
    key = RunKey(contract.id, period.label, version, seq)
    statement = build_statement(key, comp, summary, options.layer, doc, prev_id, missing_policy=options.missing)
    body = canonical_json(statement)
    digest = statement_hash(body)
    checks = _review(db, contract, comp, options, now, facts,
                     _PeriodFacts.of(get_run(db, prev["id"])["statement_json"]) if prev and prev["status"] else None,
                     settled=_latest_settled(db, runs))
    status = "no_change" if doc.kind is None else ("held" if held_reasons(checks) else "draft")
    draft = draft_invoice(campus, key, contract, period, doc, issue_date or date.today()) if doc.kind else None
    outcome = RunOutcome(contract.id, period.label, version, seq, key.run_id, status=status, statement_hash=digest,
                         imbalance_intervals=int(comp.allocation.get("imbalance_intervals", 0)), checks=checks,
                         draft=draft, accounts=statement["accounting"], missing_intervals=comp.missing_intervals,
                         dry_run=dry_run)
    if supersede:
        outcome.note = f"supersedes {supersede} (its data changed)"
    if facts is not None:
        facts[(contract.id, period.label)] = _PeriodFacts.of(statement)
    if dry_run:
        return outcome
    input_rows = [row for ch in used for row in data.inputs.rows(ch)]
    work = _RunWrite(
        key=key, where=where, supersede=supersede, input_rows=input_rows,
        run=dict(id=key.run_id, contract_id=contract.id, period=period.label, version_kind=version, seq=seq,
                 status=status, layer=options.layer, statement=body.decode("utf-8"), statement_hash=digest,
                 invoice_id=None, created_at=datetime.now(UTC), stale=False,
                 draft=draft.model_dump_json() if draft is not None else None,
                 checks=json.dumps([c.as_json() for c in checks])),
        allocation=_alloc_rows(key, allocation, contract.buyer) if needs_allocation(plan, contract) else [],
        carbon=_carbon_row(key, campus, contract, comp) if comp.carbon is not None else None,
    )
    if pending is not None and conn is not None:
        pending.append(work)
        return outcome
    try:
        if conn is None:
            with db.write_transaction() as own:
                work.write(own, db.dialect)
        else:
            with conn.begin_nested():
                work.write(conn, db.dialect)
    except IntegrityError as exc:
        if _is_run_conflict(db, key):
            raise work.conflict() from exc
        raise
    return outcome


@dataclass
class _RunWrite:
    """The rows one computed run writes: its run row, inputs, allocation and carbon rows."""

    key: RunKey
    where: str
    supersede: str | None
    run: dict[str, Any]
    input_rows: list[tuple[Any, ...]]
    allocation: list[dict[str, Any]]
    carbon: dict[str, Any] | None

    def write(self, conn: Any, dialect: str) -> None:
        """Write this run alone on ``conn`` (inside the caller's transaction)."""
        _write_all(conn, dialect, [self])

    def conflict(self) -> DuplicateRunError:
        k = self.key
        return DuplicateRunError(
            f"{self.where}: run {k.version_kind} #{k.seq} already exists (the database refused it; another settle "
            "ran at the same time)")


def _write_all(conn: Any, dialect: str, works: Sequence[_RunWrite]) -> None:
    """Insert the rows of ``works`` with one executemany per table (runs in order)."""
    for w in works:
        if w.supersede:
            conn.execute(update(settlement_run_table).where(settlement_run_table.c.id == w.supersede)
                         .values(status="superseded"))
    conn.execute(_INSERT_RUN, [w.run for w in works])
    _insert_inputs_of(conn, dialect, [(w.key.run_id, w.input_rows) for w in works])
    alloc = [r for w in works for r in w.allocation]
    if alloc:
        conn.execute(insert(run_allocation_table), alloc)
    carbon = [w.carbon for w in works if w.carbon is not None]
    if carbon:
        conn.execute(insert(run_carbon_table), carbon)


def _write_runs(db: Database, conn: Any, works: Sequence[_RunWrite]) -> dict[str, DuplicateRunError]:
    """Write the computed runs of a batch in one savepoint of ``conn``.

    When the database refuses the batch (a run written by another settle at the same
    time), the runs are written one by one, each in its own savepoint, so only the
    refused ones fail: ``{run_id: error}`` of those.
    """
    if not works:
        return {}
    try:
        with conn.begin_nested():
            _write_all(conn, db.dialect, works)
        return {}
    except IntegrityError:
        pass
    failed: dict[str, DuplicateRunError] = {}
    for w in works:
        try:
            with conn.begin_nested():
                w.write(conn, db.dialect)
        except IntegrityError:
            if not _is_run_conflict(db, w.key):
                raise
            failed[w.key.run_id] = w.conflict()
    return failed


@dataclass(frozen=True)
class _PeriodFacts:
    """What the review gate compares with from a contract's run of the previous period (and,
    when that run is settled, the terms it used)."""

    period: str
    line_total: Decimal
    mean_kwh: dict[str, float]
    run_id: str = ""
    status: str = ""
    terms: dict[str, Any] | None = None

    @classmethod
    def of(cls, statement: dict[str, Any], status: str = "") -> _PeriodFacts:
        means = {}
        for ch, st in (statement.get("channels") or {}).items():
            measured = int(st["intervals"]) - int(st["missing"])
            if measured:
                means[ch] = float(st["kwh"]) / measured
        return cls(statement["run"]["period"], Decimal(statement["totals"]["line_total"]), means,
                   statement["run"]["id"], status, statement.get("terms"))


def _latest_settled(db: Database, runs: Sequence[dict[str, Any]]) -> _PeriodFacts | None:
    """The latest settled (issued or no-change) run among a period's ``runs``, if any."""
    settled = [r for r in runs if r["status"] in ("issued", "no_change")]
    if not settled:
        return None
    last = max(settled, key=lambda r: (kind_order(r["version_kind"]), int(r["seq"])))
    return _PeriodFacts.of(get_run(db, last["id"])["statement_json"], last["status"])


def _terms_changes(contract: Contract, comp: RunComputation, settled: _PeriodFacts | None,
                   previous: _PeriodFacts | None) -> list[str]:
    """Settled runs of this period and the previous one whose terms are not those in force now."""
    out = []
    if settled is not None and comp.terms is not None:
        msg = changed_since(settled.run_id, settled.status, settled.terms, comp.terms)
        if msg:
            out.append(msg)
    if previous is not None and previous.status in ("issued", "no_change") and previous.terms:
        now = terms_for_period(contract, billing_period(previous.period, contract.timezone))
        msg = changed_since(previous.run_id, previous.status, previous.terms, now, previous.period)
        if msg:
            out.append(msg)
    return out


def _previous_facts(db: Database, contract_id: str, label: str,
                    cache: dict[tuple[str, str], _PeriodFacts | None] | None) -> _PeriodFacts | None:
    prev = previous_periods(label, 1)[0] if _is_month(label) else None
    if prev is None:
        return None
    if cache is not None and (contract_id, prev) in cache:
        return cache[(contract_id, prev)]
    runs = [r for r in existing_runs(db, contract_id, prev) if r["status"] not in ("rejected", "superseded")]
    facts = _PeriodFacts.of(get_run(db, runs[-1]["id"])["statement_json"], runs[-1]["status"]) if runs else None
    if cache is not None:
        cache[(contract_id, prev)] = facts
    return facts


def _is_month(label: str) -> bool:
    try:
        y, m = (int(x) for x in label.split("-"))
    except ValueError:
        return False
    return 1 <= m <= 12 and y > 0


def _review(db: Database, contract: Contract, comp: RunComputation, options: SettlementOptions,
            now: datetime | None, cache: dict[tuple[str, str], _PeriodFacts | None] | None,
            previous_version: _PeriodFacts | None = None,
            settled: _PeriodFacts | None = None) -> list[CheckResult]:
    """The plausibility checks of a computed run (see :mod:`kwhub.core.review`).

    A first version moves against the previous period; a later version against the
    version it corrects (the move between periods was reviewed with the first one).
    ``settled``: the period's latest settled run, whose terms the run's are compared with
    (as are those of the previous period's settled run).
    """
    facts = _previous_facts(db, contract.id, comp.period.label, cache)
    terms_changes = _terms_changes(contract, comp, settled, facts)
    if previous_version is not None:
        facts = _PeriodFacts(f"{comp.period.label} as settled before", previous_version.line_total,
                             previous_version.mean_kwh)
    lines = comp.lines
    inputs = ReviewInputs(
        period_label=comp.period.label, period_end_epoch=comp.period.span.end_epoch,
        now_epoch=int((now or datetime.now(UTC)).timestamp()), channels=comp.channels,
        line_quantities=[(ln.description, ln.charge_type, ln.quantity) for ln in lines],
        line_total=sum((ln.amount for ln in lines), Decimal("0")),
        previous_total=facts.line_total if facts else None, previous_period=facts.period if facts else "",
        previous_mean_kwh=facts.mean_kwh if facts else {}, unbilled=unbilled_rows(comp), currency=contract.currency,
        terms_changes=terms_changes,
    )
    return run_checks(inputs, effective_checks(options.review_checks, contract.review.checks))


def _checks_of(row: dict[str, Any]) -> list[CheckResult]:
    return [CheckResult(c["check"], bool(c["passed"]), c["message"]) for c in json.loads(row.get("checks") or "[]")]


def review_policy(contract: Contract, options: SettlementOptions) -> str:
    """``auto`` or ``manual``: the contract's own policy, else the hub's."""
    return contract.review.policy or options.review_policy


def _plan(campus: Campus, components: Any | None) -> EnergyPlan:
    try:
        return plan_energy(campus, components)
    except EnergyPlanError as exc:
        raise SettlementError(str(exc)) from None


def _is_run_conflict(db: Database, key: RunKey) -> bool:
    t = settlement_run_table
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t).where(and_(
            t.c.contract_id == key.contract_id, t.c.period == key.period,
            t.c.version_kind == key.version_kind, t.c.seq == key.seq))).scalar_one() > 0


def settle(
    db: Database,
    campus: Campus,
    period: str,
    *,
    contracts: Iterable[str] | None = None,
    version: str = "initial",
    options: SettlementOptions | None = None,
    issue_date: date | None = None,
    components: Any | None = None,
    progress: Callable[[str], None] | None = None,
    max_channels: int = 2000,
    on_issue: Callable[[Any, Invoice], None] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = "policy:auto",
    issue: bool = True,
) -> list[RunOutcome]:
    """Settle ``period`` (``YYYY-MM``, local month of each contract) for the chosen contracts.

    Returns one :class:`RunOutcome` per contract; a contract that fails (missing data, a
    pricing error, a run awaiting review) is reported with ``status == "error"`` and the
    others still compute. See :func:`settle_periods` for the review gate.
    """
    return settle_periods(db, campus, [period], contracts=contracts, version=version, options=options,
                          issue_date=issue_date, components=components, progress=progress,
                          max_channels=max_channels, on_issue=on_issue, now=now, dry_run=dry_run, actor=actor,
                          issue=issue)


def settle_periods(
    db: Database,
    campus: Campus,
    periods: Sequence[str],
    *,
    contracts: Iterable[str] | None = None,
    version: str = "initial",
    options: SettlementOptions | None = None,
    issue_date: date | None = None,
    components: Any | None = None,
    progress: Callable[[str], None] | None = None,
    max_channels: int = 2000,
    max_cells: int = 12_000_000,
    on_issue: Callable[[Any, Invoice], None] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    actor: str = "policy:auto",
    read_ahead: bool = True,
    issue: bool = True,
) -> list[RunOutcome]:
    """Settle several billing periods; the same runs as :func:`settle` for each period in turn.

    Every run is first written as a draft (or ``held`` by a failed check). Then, when
    every contract of the call settled without error, the drafts of contracts whose review
    policy is ``auto`` are approved and issued (``on_issue(conn, invoice)`` queues each
    for delivery in the same transaction); when any contract failed, nothing is issued
    and the drafts wait. ``dry_run`` computes and checks everything and writes nothing.

    Consecutive periods are read from the store together (one read per batch of
    contracts over up to ``max_cells`` channel-intervals) and sliced per period in memory.
    With ``read_ahead`` the next read runs on a second thread while the runs of the one
    before are priced and written (SQLite and the database driver let go of the
    interpreter while they read, so the two overlap; two reads' worth of memory at most).
    Each period of a batch is written in one transaction. Outcomes come by period, then
    by contract. ``issue`` False leaves every draft as a draft: the caller issues them with
    :func:`issue_outcomes` (a portfolio run issues each campus' drafts once all its contracts
    have settled, in the same order as one call would).
    """
    options = options or SettlementOptions()
    if components is None:
        from kwhub.hub.registry import get_registry

        components = get_registry()
    chosen = list(campus.contracts)
    if contracts is not None:
        wanted = list(contracts)
        known = {c.id for c in chosen}
        bad = [c for c in wanted if c not in known]
        if bad:
            raise SettlementError(f"unknown contract(s) {', '.join(bad)} (known: {', '.join(sorted(known)) or 'none'})")
        chosen = [c for c in chosen if c.id in wanted]
    plan = _plan(campus, components)
    labels = list(periods)
    outcomes: list[RunOutcome] = []
    chans_of = {c.id: contract_channels(campus, c, plan) for c in chosen}
    by_id = {c.id: c for c in campus.channels}
    facts: dict[tuple[str, str], _PeriodFacts | None] = {}
    for tz, group in _batches(campus, chosen, max_channels, plan):
        channels: list[str] = []
        for c in group:
            channels += chans_of[c.id]
        alloc_needed = any(needs_allocation(plan, c) for c in group)
        if alloc_needed:
            channels += [c.id for c in campus.channels if c.role in BALANCE_ROLES]
            if options.carbon is not None:  # the fuel the plants burned, for the emissions on the lines
                channels += [c.id for c in campus.channels if c.role == "fuel" and c.asset]
        channels = list(dict.fromkeys(channels))
        finest = min((by_id[c].interval_minutes for c in channels if c in by_id), default=60)
        pers = [billing_period(label, tz) for label in labels]
        chunks = _period_chunks(pers, len(channels), finest, max_cells)
        with _Reader(db, campus, channels, options, chunks, read_ahead) as reader:
            for chunk in chunks:
                try:
                    loaded = reader.next()
                except (SettlementError, PricingError, ValueError) as exc:
                    outcomes += [RunOutcome(c.id, p.label, version, error=str(exc)) for p in chunk for c in group]
                    continue
                for per in chunk:
                    outcomes += _settle_batch(db, campus, group, loaded.period(per), version, options, alloc_needed,
                                              chans_of, issue_date=issue_date, components=components,
                                              progress=progress, plan=plan, now=now, dry_run=dry_run, facts=facts)
                del loaded
    if not dry_run and issue:
        _auto_approve(db, campus, outcomes, options, issue_date=issue_date, on_issue=on_issue, actor=actor)
    order = {c.id: i for i, c in enumerate(chosen)}
    rank = {label: i for i, label in reversed(list(enumerate(labels)))}
    return sorted(outcomes, key=lambda o: (rank.get(o.period, 0), order[o.contract_id]))


class _Reader:
    """The spans of ``chunks`` loaded in order (:func:`load_span`), each on a worker thread
    started when the one before is handed out (``ahead``), else when asked for."""

    def __init__(self, db: Database, campus: Campus, channels: list[str], options: SettlementOptions,
                 chunks: Sequence[Sequence[BillingPeriod]], ahead: bool) -> None:
        self.args = (db, campus)
        self.channels, self.options = channels, options
        self.spans = [Span(c[0].span.start, c[-1].span.end) for c in chunks]
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kwhub-read") if ahead and len(chunks) > 1 else None
        self.pending: Future[LoadedSpan] | None = None
        self.i = 0

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            if self.pending is not None:
                self.pending.cancel()
            self.pool.shutdown(wait=True)

    def _load(self, span: Span) -> LoadedSpan:
        return load_span(*self.args, span, self.channels, self.options)

    def next(self) -> LoadedSpan:
        """The next span's data (raises what :func:`load_span` raised for it)."""
        span = self.spans[self.i]
        self.i += 1
        if self.pool is None:
            return self._load(span)
        current = self.pending if self.pending is not None else self.pool.submit(self._load, span)
        self.pending = self.pool.submit(self._load, self.spans[self.i]) if self.i < len(self.spans) else None
        return current.result()


def issue_outcomes(db: Database, campus: Campus, outcomes: list[RunOutcome], options: SettlementOptions, *,
                   issue_date: date | None = None, on_issue: Callable[[Any, Invoice], None] | None = None,
                   actor: str = "policy:auto") -> None:
    """Issue the drafts of ``outcomes`` (settled with ``issue=False``) exactly as :func:`settle_periods`
    would have: by policy, in the given order, and nothing when any of them failed."""
    _auto_approve(db, campus, outcomes, options, issue_date=issue_date, on_issue=on_issue, actor=actor)


def _auto_approve(db: Database, campus: Campus, outcomes: list[RunOutcome], options: SettlementOptions, *,
                  issue_date: date | None, on_issue: Callable[[Any, Invoice], None] | None, actor: str) -> None:
    """Issue the drafts whose contract's policy is ``auto``, unless any contract of the call failed."""
    from kwhub.hub.settle.review import DraftToIssue, issue_drafts

    failed = [o for o in outcomes if o.status == "error"]
    drafts = [o for o in outcomes if o.status == "draft"]
    if failed:
        names = ", ".join(sorted({o.contract_id for o in failed}))
        for o in drafts:
            o.note = f"left as a draft: {names} failed in this settle, so nothing was issued"
        return
    contracts = {c.id: c for c in campus.contracts}
    eligible = [o for o in drafts if review_policy(contracts[o.contract_id], options) == "auto"]
    for o in drafts:
        if o not in eligible:
            o.note = "awaiting approval (review policy manual)"
    if not eligible:
        return
    items = [DraftToIssue(o.run_id, o.contract_id, o.period, o.version_kind, o.draft) for o in eligible
             if o.draft is not None]
    results = issue_drafts(db, items, actor=actor, reason="every check passed", issue_date=issue_date,
                           on_issue=on_issue)
    for o in eligible:
        res = results[o.run_id]
        if res.invoice is not None:
            o.status, o.invoice = "issued", res.invoice
        else:  # the run stays a draft; the command failed to issue it
            o.status, o.error = "error", f"{o.run_id} was computed but not issued: {res.error}"


def _period_chunks(pers: Sequence[BillingPeriod], n_channels: int, minutes: int,
                   max_cells: int) -> list[list[BillingPeriod]]:
    """Runs of consecutive periods (each starts where the previous ends) of at most ``max_cells``."""
    out: list[list[BillingPeriod]] = []
    cells = 0
    for p in pers:
        n = n_channels * p.span.n_intervals(minutes)
        if out and out[-1][-1].span.end == p.span.start and cells + n <= max_cells:
            out[-1].append(p)
            cells += n
        else:
            out.append([p])
            cells = n
    return out


def _settle_batch(db: Database, campus: Campus, group: Sequence[Contract], data: PeriodData, version: str,
                  options: SettlementOptions, alloc_needed: bool, chans_of: dict[str, list[str]], *,
                  issue_date: date | None, components: Any, progress: Callable[[str], None] | None,
                  plan: EnergyPlan, now: datetime | None, dry_run: bool,
                  facts: dict[tuple[str, str], _PeriodFacts | None]) -> list[RunOutcome]:
    """Allocate (when needed), price and write the runs of ``group`` for one period, in one transaction."""
    label = data.period.label
    allocation, alloc_error, section, carbon = None, "", None, None
    if alloc_needed:
        try:
            allocation = _allocate(data, campus, options)
            section = campus_accounts(plan, allocation)
            if options.carbon is not None:
                carbon = period_basis(data.matrix, campus, allocation, options.carbon, data.period.first_day)
        except (SettlementError, ValueError) as exc:
            alloc_error = str(exc)
    outcomes: list[RunOutcome] = []
    options, market_error = _with_market_revenue(db, group, label, options)
    with db.write_transaction() as conn:
        if carbon is not None and not dry_run:
            store_basis(conn, carbon)
        runs = _existing_runs_of(conn, [c.id for c in group], label)
        pending: list[_RunWrite] = []
        for c in group:
            if progress:
                progress(c.id)
            if alloc_error and needs_allocation(plan, c):
                outcomes.append(RunOutcome(c.id, label, version, error=alloc_error))
                continue
            if market_error and credits_market_revenue(c):
                outcomes.append(RunOutcome(c.id, label, version, error=f"contract {c.id!r} period {label}: "
                                                                         f"{market_error}"))
                continue
            try:
                outcomes.append(settle_contract(db, campus, c, data, allocation, version, options,
                                                issue_date=issue_date, components=components, conn=conn,
                                                runs=runs.get(c.id, []), channels=chans_of.get(c.id), plan=plan,
                                                campus_section=section, now=now, dry_run=dry_run, facts=facts,
                                                carbon=carbon, pending=pending))
            except (SettlementError, PricingError, ValueError, ArithmeticError) as exc:
                outcomes.append(RunOutcome(c.id, label, version, error=str(exc)))
        refused = _write_runs(db, conn, pending)
    if refused:
        outcomes = [RunOutcome(o.contract_id, label, version, error=str(refused[o.run_id]))
                    if o.run_id in refused else o for o in outcomes]
    return outcomes


def _with_market_revenue(db: Database, group: Sequence[Contract], period: str,
                         options: SettlementOptions) -> tuple[SettlementOptions, str]:
    """``options`` with the period's ISO market revenue when a contract of ``group`` credits it
    (``market_revenue_credit``), and the error that prevented loading it ("" when none)."""
    if not any(credits_market_revenue(c) for c in group):
        return options, ""
    if options.market_revenue_loader is None:
        return options, ("a market_revenue_credit component needs the ISO market revenue, but no "
                         "[[markets.resources]] are configured in kwhub.toml")
    try:
        return replace(options, market_revenue=options.market_revenue_loader(db, period)), ""
    except (ValueError, KeyError) as exc:
        return options, f"cannot load the market revenue of {period}: {exc}"


def _existing_runs_of(conn: Any, contract_ids: Sequence[str], period: str) -> dict[str, list[dict[str, Any]]]:
    """:func:`existing_runs` of many contracts, read on ``conn``."""
    t = settlement_run_table
    out: dict[str, list[dict[str, Any]]] = {}
    for i in range(0, len(contract_ids), _IN_CHUNK):
        q = select(t.c.id, t.c.contract_id, t.c.version_kind, t.c.seq, t.c.status, t.c.invoice_id,
                   t.c.statement_hash, t.c.stale, t.c.created_at).where(
            t.c.contract_id.in_(list(contract_ids[i:i + _IN_CHUNK])), t.c.period == period)
        for r in conn.execute(q):
            row = dict(r._mapping)
            out.setdefault(row.pop("contract_id"), []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: (kind_order(r["version_kind"]), r["seq"]))
    return out


def _batches(campus: Campus, contracts: Sequence[Contract], max_channels: int,
             plan: EnergyPlan) -> list[tuple[str, list[Contract]]]:
    """Contracts grouped by time zone; the allocation-dependent ones together, the rest by channel count."""
    out: list[tuple[str, list[Contract]]] = []
    by_tz: dict[str, list[Contract]] = {}
    for c in contracts:
        by_tz.setdefault(c.timezone, []).append(c)
    for tz, group in by_tz.items():
        coupled = [c for c in group if needs_allocation(plan, c)]
        if coupled:
            out.append((tz, coupled))
        batch: list[Contract] = []
        size = 0
        for c in (c for c in group if not needs_allocation(plan, c)):
            n = len(contract_channels(campus, c, plan))
            if batch and size + n > max_channels:
                out.append((tz, batch))
                batch, size = [], 0
            batch.append(c)
            size += n
        if batch:
            out.append((tz, batch))
    order = {c.id: i for i, c in enumerate(contracts)}
    return sorted(out, key=lambda item: min(order[c.id] for c in item[1]))


def _allocate(data: PeriodData, campus: Campus, options: SettlementOptions) -> AllocationResult:
    balance_ids = [c.id for c in campus.channels if c.role in BALANCE_ROLES]
    sub = _submatrix(data.matrix, balance_ids)
    gaps = missing_report(sub, balance_ids)
    if gaps and options.missing == "error":
        listed = ", ".join(f"{c} ({k} intervals)" for c, k in sorted(gaps.items()))
        raise SettlementError(f"period {data.period.label}: campus balance channels without {options.layer} data: {listed}")
    return allocate(sub, campus, shared=options.shared)


def _submatrix(m: IntervalMatrix, ids: Sequence[str]) -> IntervalMatrix:
    index = {c: i for i, c in enumerate(m.channel_ids)}
    rows = [index[c] for c in ids if c in index]
    return IntervalMatrix([m.channel_ids[r] for r in rows], m.start_epoch, m.interval_minutes,
                          m.values[rows], m.quality[rows])


# --------------------------------------------------------------------------- reading invoices


def list_invoices(db: Database, *, contract_id: str | None = None, period: str | None = None,
                  buyer: str | None = None) -> list[Invoice]:
    """Issued documents, oldest first."""
    t = invoice_table
    q = select(t.c.document)
    if contract_id:
        q = q.where(t.c.contract_id == contract_id)
    if period:
        q = q.where(t.c.period == period)
    if buyer:
        q = q.where(t.c.buyer == buyer)
    q = q.order_by(t.c.issued_at, t.c.seller, t.c.number_seq)
    with db.engine.connect() as conn:
        return [Invoice.model_validate_json(doc) for (doc,) in conn.execute(q)]


def get_invoice(db: Database, ref: str) -> Invoice:
    """An issued document by id or number."""
    t = invoice_table
    with db.engine.connect() as conn:
        doc = conn.execute(select(t.c.document).where((t.c.id == ref) | (t.c.number == ref))).scalar()
    if doc is None:
        raise SettlementError(f"no invoice {ref!r} (give an invoice id or number; `kwhub invoices list` shows them)")
    return Invoice.model_validate_json(doc)


def invoice_total(invoices: Iterable[Invoice]) -> Decimal:
    """Net billed amount of documents (credit notes count negative)."""
    return sum((-i.total if i.is_credit else i.total for i in invoices), Decimal("0"))
