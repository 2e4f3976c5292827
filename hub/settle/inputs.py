"""The channel-days a settlement read, and the matrix of a loaded span.

:class:`InputTable` holds every (channel, day, layer, version, content hash) read over a
loaded span, flat and sorted; :class:`PeriodInputs` is one billing period of it (the
per-channel digests a statement records and the packed ``run_input`` rows a run writes);
:class:`LoadedSpan` / :class:`PeriodData` hold the dense kWh matrix with those inputs.
Reading them from the store is :mod:`kwhub.hub.settle.loading`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from kwhub.core.intervals import DayHashes, IntervalMatrix
from kwhub.core.settlement import (
    InputRef,
    InputSummary,
    SettlementError,
    local_calendar,
    share_row_statistics,
)
from kwhub.core.timeline import BillingPeriod, Span

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def day_no(d: date) -> int:
    return d.toordinal() - _EPOCH_ORDINAL


def from_day_no(n: int) -> date:
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
        texts: list[str] = []  # each part's digests, comma-separated
        dnum: dict[date, int] = {}
        for layer, found, versions in parts:
            if not found:
                continue
            if isinstance(found, DayHashes):  # straight from a read: per-channel arrays
                offset: dict[str, int] = {}
                n = 0
                ids, day_arrays, text = found.joined()
                for cid, dn in zip(ids, day_arrays, strict=True):
                    offset[cid] = n
                    n += len(dn)
                    chs.append(np.full(len(dn), self.pos[cid], dtype=np.int64))
                    days.append(dn)
                texts.append(text)

                def at(k: tuple[str, date], found: DayHashes = found, offset: dict[str, int] = offset) -> int | None:
                    i = found.position(k)
                    return None if i is None else offset[k[0]] + i
            else:
                n = len(found)
                keys = list(found)
                for d in {k[1] for k in keys}:
                    dnum[d] = day_no(d)
                chs.append(np.fromiter((self.pos[k[0]] for k in keys), dtype=np.int64, count=n))
                days.append(np.fromiter((dnum[k[1]] for k in keys), dtype=np.int64, count=n))
                texts.append(",".join(found.values()))
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
        digits = _digest_matrix(texts, len(ch))  # (n, 64) ASCII when every digest is 64 characters
        hashes: list[str] = [] if digits is not None else [
            h for _, found, _ in parts if found
            for h in ([h for _, _, ds in found.channels() for h in ds] if isinstance(found, DayHashes)
                      else found.values())]
        n_layers = max(1, len(self.layer_names))
        rank = (ch * 1_000_000 + dy) * n_layers + cd
        order = None if (rank[1:] > rank[:-1]).all() else np.lexsort((cd, dy, ch))  # reads come sorted
        if order is not None and len(order) and not (np.diff(order) == 1).all():
            ch, dy, cd, vr = ch[order], dy[order], cd[order], vr[order]
            if digits is not None:
                digits = digits[order]
            else:
                hashes = [hashes[i] for i in order.tolist()]
        self.ch, self.days, self.layer_codes, self.versions = ch, dy, cd, vr
        self._hashes: list[str] | None = hashes if digits is None else None
        self._hex: str | None = None if digits is None else digits.tobytes().decode("ascii")
        self.key = ch * 1_000_000 + dy  # sorted: (channel, day)
        udays = np.unique(dy)
        iso = dict(zip(udays.tolist(), np.datetime_as_string(udays.astype("datetime64[D]")).tolist(), strict=True))
        prefix: dict[int, str] = {}
        pre_idx = np.zeros(len(ch), dtype=np.int64)
        self._lines: list[str] | None = None
        if len(ch):
            combo = (dy * len(self.layer_names) + cd) * 4096 + np.minimum(vr, 4095)
            uniq, inv = np.unique(combo, return_inverse=True)
            pre_idx = inv.reshape(-1)
            for j, c in enumerate(uniq.tolist()):
                dl, v = divmod(c, 4096)
                d, lc = divmod(dl, len(self.layer_names))
                prefix[j] = f"{iso[d]}|{self.layer_names[lc]}|{v}|"
            if digits is None or not self._fixed_width(prefix, pre_idx, digits, bool((vr >= 4095).any())):
                if (vr >= 4095).any():  # a version that does not fit the key: spell those out
                    pres = [prefix[j] for j in pre_idx.tolist()]
                    for i in np.flatnonzero(vr >= 4095).tolist():
                        pres[i] = f"{iso[int(dy[i])]}|{self.layer_names[int(cd[i])]}|{int(vr[i])}|"
                    pre = np.array(pres, dtype=object)
                else:
                    pre = np.array([prefix[j] for j in range(len(uniq))], dtype=object)[pre_idx]
                self._set_lines((pre + np.array(self.hashes, dtype=object) + "\n").tolist())
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

    def _fixed_width(self, prefix: dict[int, str], pre_idx: np.ndarray, digits: np.ndarray, odd: bool) -> bool:
        """The buffer built as one byte matrix when every line has the same ASCII width
        (one layer name length, versions of one digit count, 64-character digests as the
        rows of ``digits``): no string per line. False (nothing done) otherwise."""
        pre_b = [prefix[j].encode("utf-8") for j in range(len(prefix))]
        width = len(pre_b[0])
        if odd or any(len(b) != width or len(b) != len(prefix[j]) for j, b in enumerate(pre_b)):
            return False
        n, size = len(digits), width + 65
        rows = np.empty((n, size), dtype=np.uint8)
        rows[:, :width] = np.frombuffer(b"".join(pre_b), dtype=np.uint8).reshape(-1, width)[pre_idx]
        rows[:, width:width + 64] = digits
        rows[:, width + 64] = ord("\n")
        self.buffer = memoryview(rows.tobytes())
        self.line_offsets = range(0, n * size + 1, size)
        return True

    @property
    def hashes(self) -> list[str]:
        """The hex digest of each channel-day."""
        if self._hashes is None:
            joined = self._hex or ""
            self._hashes = [joined[i:i + 64] for i in range(0, len(joined), 64)]
        return self._hashes

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
            if len(joined) != 64 * len(self.ch):
                raise SettlementError("content hashes must be SHA-256 hex digests")
            self._raw = bytes.fromhex(joined)
        return self._raw


def _digest_matrix(texts: list[str], n: int) -> np.ndarray | None:
    """The ``n`` digests of the comma-separated ``texts`` as an ``(n, 64)`` byte matrix, or
    None unless each of them is 64 ASCII characters without a comma."""
    text = ",".join(texts)
    if len(text) != 65 * n - 1 or not text.isascii():
        return None
    if n == 0:
        return np.zeros((0, 64), dtype=np.uint8)
    rows = np.frombuffer((text + ",").encode("ascii"), dtype=np.uint8).reshape(n, 65)
    comma = ord(",")
    if not (rows[:, 64] == comma).all() or (rows[:, :64] == comma).any():
        return None
    return rows[:, :64]


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
        self._rows: dict[str, list[tuple[Any, ...]]] = {}

    def prepare(self) -> None:
        """Every channel's digest and ``run_input`` rows, made now and kept (see :meth:`rows`)."""
        for ch in self.table.channel_ids:
            if self.count(ch):
                self.digest(ch)
                self._rows[ch] = self._make_rows(ch)

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
        return [InputRef(ch, from_day_no(int(t.days[i])), t.layer_names[int(t.layer_codes[i])],
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
        kept = self._rows.get(ch)
        return kept if kept is not None else self._make_rows(ch)

    def _make_rows(self, ch: str) -> list[tuple[Any, ...]]:
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
        """The columns and channel-days of ``period`` (inside the span); views, no copies. The
        same objects for the same period, so that what :meth:`prepare` computed is found again."""
        key = (period.span.start_epoch, period.span.end_epoch)
        kept = self.__dict__.setdefault("_periods", {})
        data = kept.get(key)
        if data is None or data.period != period:
            step = self.interval_minutes * 60
            a = (period.span.start_epoch - self.span.start_epoch) // step
            n = period.span.n_intervals(self.interval_minutes)
            if a < 0 or a + n > self.values.shape[1]:
                raise SettlementError(f"period {period.label} is outside the loaded span")
            matrix = IntervalMatrix(self.channel_ids, period.span.start_epoch, self.interval_minutes,
                                    self.values[:, a:a + n], self.quality[:, a:a + n])
            days = period.span.utc_days()
            data = kept[key] = PeriodData(period, matrix, PeriodInputs(self.inputs, day_no(days[0]), day_no(days[-1])))
        return data

    def prepare(self, periods: Sequence[BillingPeriod], timezone: str | None = None) -> None:
        """Compute now what every run of these periods looks up: the per-row statistics of each
        period's matrix (:func:`~kwhub.core.settlement.share_row_statistics`), the channel digests
        and the packed ``run_input`` rows; with ``timezone``, the local calendar of each period's
        intervals in that zone (:func:`~kwhub.core.settlement.local_calendar`). The reading thread
        calls this, so the work is done while the runs of the span before are priced (hashing,
        numpy and pandas let go of the interpreter for most of it)."""
        for p in periods:
            data = self.period(p)
            share_row_statistics(data.matrix)
            data.inputs.prepare()
            if timezone is not None:
                m = data.matrix
                local_calendar(m.start_epoch, m.n_intervals, m.interval_minutes, timezone)
