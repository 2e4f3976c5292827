"""The canonical interval frame.

Every meter adapter yields an :class:`IntervalBatch`: per channel, numpy arrays of UTC
interval-start instants (epoch seconds), energy in kWh and a quality byte. The store keeps
the same values per (channel, UTC day, layer) as dense day arrays (:class:`DayBlock`);
settlement loads them as a dense channel x interval matrix (:class:`IntervalMatrix`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np

from kwhub.core.interval_grid import (  # noqa: F401  (re-exported: the frame's public names)
    ALLOWED_INTERVAL_MINUTES,
    MAX_CHANNEL_ID,
    SECONDS_PER_DAY,
    IntervalDataError,
    day_start_epoch,
    epoch_to_day,
    slots_per_day,
)
from kwhub.core.quality import Quality


@dataclass
class ChannelSeries:
    """Intervals of one channel: parallel arrays, any order, possibly with duplicates.

    ``rule_ids`` (optional, uint8) say which rule set each value: 0 means none, k means
    ``rule_names[k-1]``.
    """

    channel_id: str
    interval_minutes: int
    starts: np.ndarray  # int64 epoch seconds (UTC, interval beginning)
    values: np.ndarray  # float64 kWh
    quality: np.ndarray  # uint8 Quality
    rule_ids: np.ndarray | None = None
    rule_names: tuple[str, ...] = ()
    unit: str = ""  # the unit of ``values`` as the adapter read them ("": the channel's); see kwhub.core.meter_units

    def __post_init__(self) -> None:
        self.starts = np.asarray(self.starts, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.quality is None:
            self.quality = np.zeros(len(self.values), dtype=np.uint8)
        self.quality = np.asarray(self.quality, dtype=np.uint8)
        if not (len(self.starts) == len(self.values) == len(self.quality)):
            raise IntervalDataError("starts, values and quality differ in length", source=self.channel_id)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def total_kwh(self) -> float:
        ok = self.quality != Quality.MISSING
        return float(np.nansum(self.values[ok]))


PERIOD_KINDS = ("period", "register")


@dataclass
class PeriodSeries:
    """Readings of one channel that are not intervals, as parallel arrays.

    ``kind = "period"``: ``values[i]`` kWh over ``[starts[i], ends[i])``, a span of any
    length (a daily read of a 23, 24 or 25-hour local day, a billing period).
    ``kind = "register"``: ``values[i]`` is the register's cumulative kWh at the instant
    ``ends[i]`` (``starts`` equal ``ends``). Instants are UTC epoch seconds.
    """

    channel_id: str
    kind: str
    starts: np.ndarray  # int64
    ends: np.ndarray  # int64
    values: np.ndarray  # float64 kWh
    quality: np.ndarray  # uint8 Quality

    def __post_init__(self) -> None:
        self.starts = np.asarray(self.starts, dtype=np.int64)
        self.ends = np.asarray(self.ends, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.float64)
        self.quality = np.asarray(self.quality, dtype=np.uint8)
        if self.kind not in PERIOD_KINDS:
            raise IntervalDataError(f"period reading kind {self.kind!r} is not one of {PERIOD_KINDS}",
                                    source=self.channel_id, field="kind")
        if not (len(self.starts) == len(self.ends) == len(self.values) == len(self.quality)):
            raise IntervalDataError("starts, ends, values and quality differ in length", source=self.channel_id)

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class IntervalBatch:
    """What one read of one source produced: several channels, one source name.

    ``series`` are interval data; ``periods`` the readings that are not intervals (daily,
    billing-period and register readings), stored as their own kind of channel data.
    """

    source: str
    series: list[ChannelSeries] = field(default_factory=list)
    meta: dict[str, object] = field(default_factory=dict)
    periods: list[PeriodSeries] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(s) for s in self.series)

    @property
    def n_periods(self) -> int:
        """Period and register readings in the batch."""
        return sum(len(p) for p in self.periods)

    def channel_ids(self) -> list[str]:
        return [s.channel_id for s in self.series]


@dataclass
class DayBlock:
    """One channel's values for one UTC day in one layer, dense and slot-indexed."""

    channel_id: str
    day: date
    interval_minutes: int
    values: np.ndarray  # float64, len = slots_per_day; NaN where missing
    quality: np.ndarray  # uint8
    rule_ids: np.ndarray | None = None
    rule_names: tuple[str, ...] = ()
    layer: str = "raw"
    version: int = 1

    def content_hash(self) -> str:
        """SHA-256 over values, quality and rules: equal content, equal hash."""
        h = hashlib.sha256()
        h.update(f"{self.channel_id}|{self.day.isoformat()}|{self.interval_minutes}|".encode())
        h.update(np.ascontiguousarray(self.values, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.quality, dtype=np.uint8).tobytes())
        if self.rule_ids is not None and np.any(self.rule_ids):
            h.update(np.ascontiguousarray(self.rule_ids, dtype=np.uint8).tobytes())
            h.update("|".join(self.rule_names).encode())
        return h.hexdigest()


class DayHashes(Mapping[tuple[str, date], str]):
    """Content hashes of the channel-days a read returned: ``(channel, day) -> hex digest``.

    Held per channel as epoch-day numbers and a list of digests, because a read of a
    campus-year is hundreds of thousands of channel-days and a dict of tuple keys would
    cost more than the read itself. It is a read-only mapping; lookups build a small
    per-channel index on first use.
    """

    def __init__(self) -> None:
        # digests as a list, or as one comma-separated string (split when a lookup needs it)
        self._by_channel: dict[str, tuple[np.ndarray, list[str] | str]] = {}
        self._index: dict[str, dict[int, int]] = {}
        # channels whose versions the read saw, and those of them with a version above 1
        self._versions_seen: set[str] = set()
        self._restated: set[str] = set()

    def note_versions(self, channel_id: str, restated: bool) -> None:
        """Record that the read saw the versions of the days of ``channel_id`` added so far:
        some above 1 (``restated``) or all 1. Days added later make them unknown again."""
        self._versions_seen.add(channel_id)
        if restated:
            self._restated.add(channel_id)

    def restated_channels(self) -> set[str] | None:
        """The channels with a day above version 1 among those read; None unless the read
        saw the versions of every channel it has days of (:meth:`note_versions`)."""
        if not self._versions_seen.issuperset(self._by_channel):
            return None
        return set(self._restated)

    def add(self, channel_id: str, day_numbers: np.ndarray, digests: Sequence[str] | str) -> None:
        """Record ``digests`` for the epoch-day numbers ``day_numbers`` of ``channel_id``;
        ``digests`` as a sequence, or as one string of them separated by commas."""
        days = np.asarray(day_numbers, dtype=np.int64)
        n = digests.count(",") + 1 if isinstance(digests, str) else len(digests)
        if len(days) != n:
            raise ValueError("day_numbers and digests differ in length")
        if len(days) == 0:
            return
        old = self._by_channel.get(channel_id)
        kept: list[str] | str = digests if isinstance(digests, str) else list(digests)
        if old is not None:
            days = np.concatenate([old[0], days])
            kept = [*_listed(old[1]), *_listed(digests)]
        self._by_channel[channel_id] = (days, kept)
        self._index.pop(channel_id, None)
        self._versions_seen.discard(channel_id)  # versions of these days unknown until noted

    def update(self, other: DayHashes) -> None:
        """Record every entry of ``other`` (:meth:`add` per channel, in its order)."""
        for cid, (days, digests) in other._by_channel.items():
            self.add(cid, days, digests)
        self._versions_seen |= other._versions_seen
        self._restated |= other._restated

    def channels(self) -> Iterator[tuple[str, np.ndarray, list[str]]]:
        """``(channel, epoch-day numbers, digests)`` per channel, in the order they were added."""
        for cid, (days, digests) in self._by_channel.items():
            yield cid, days, _listed(digests)

    def joined(self) -> tuple[list[str], list[np.ndarray], str]:
        """``(channels, their epoch-day numbers, every digest)``, in the order they were added;
        the digests of all channels in one comma-separated string (no list per channel)."""
        ids = list(self._by_channel)
        got = list(self._by_channel.values())
        text = ",".join(d if isinstance(d, str) else ",".join(d) for _, d in got)
        return ids, [days for days, _ in got], text

    def has_days(self, channel_ids: Sequence[str], day_numbers: np.ndarray) -> np.ndarray:
        """Boolean ``(channels, days)``: which of ``day_numbers`` each channel has a hash for."""
        wanted = np.asarray(day_numbers, dtype=np.int64)
        out = np.zeros((len(channel_ids), len(wanted)), dtype=bool)
        for i, cid in enumerate(channel_ids):
            got = self._by_channel.get(cid)
            if got is not None:
                out[i] = np.isin(wanted, got[0])
        return out

    def _lookup(self, channel_id: str) -> dict[int, int]:
        idx = self._index.get(channel_id)
        if idx is None:
            days = self._by_channel[channel_id][0]
            idx = self._index[channel_id] = dict(zip(days.tolist(), range(len(days)), strict=True))
        return idx

    def position(self, key: tuple[str, date]) -> int | None:
        """Index of ``key`` among its channel's entries (as :meth:`channels` yields them), or None."""
        cid, day = key
        if cid not in self._by_channel or not isinstance(day, date):
            return None
        return self._lookup(cid).get(day.toordinal() - _EPOCH_ORDINAL)

    def __getitem__(self, key: tuple[str, date]) -> str:
        i = self.position(key)
        if i is None:
            raise KeyError(key)
        days, digests = self._by_channel[key[0]]
        if isinstance(digests, str):
            digests = digests.split(",")
            self._by_channel[key[0]] = (days, digests)
        return digests[i]

    def __iter__(self) -> Iterator[tuple[str, date]]:
        for cid, (days, _) in self._by_channel.items():
            for d in (days.astype("datetime64[D]")).tolist():
                yield cid, d

    def __len__(self) -> int:
        return sum(len(d) for d, _ in self._by_channel.values())

    def __repr__(self) -> str:
        return f"DayHashes({len(self)} channel-days of {len(self._by_channel)} channels)"


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _listed(digests: Sequence[str] | str) -> list[str]:
    """Digests as a list (a comma-separated string split)."""
    return digests.split(",") if isinstance(digests, str) else list(digests)


@dataclass
class IntervalMatrix:
    """Dense channel x interval matrix over a UTC span, for settlement and allocation."""

    channel_ids: list[str]
    start_epoch: int
    interval_minutes: int
    values: np.ndarray  # float64 shape (channels, intervals), NaN where missing
    quality: np.ndarray  # uint8 same shape
    day_hashes: DayHashes = field(default_factory=DayHashes)

    @property
    def n_intervals(self) -> int:
        return int(self.values.shape[1])

    def starts(self) -> np.ndarray:
        step = self.interval_minutes * 60
        return self.start_epoch + step * np.arange(self.n_intervals, dtype=np.int64)

    def row(self, channel_id: str) -> np.ndarray:
        return self.values[self.channel_ids.index(channel_id)]


def split_by_day(series: ChannelSeries, source: str = "") -> Iterable[DayBlock]:
    """Cut a series into dense UTC day blocks (vectorised, last duplicate wins).

    Raises :class:`IntervalDataError` when a start is not aligned to the interval grid.
    """
    n_slots = slots_per_day(series.interval_minutes)
    step = series.interval_minutes * 60
    if len(series) == 0:
        return []
    misaligned = series.starts % step != 0
    if misaligned.any():
        i = int(np.argmax(misaligned))
        ts = datetime.fromtimestamp(int(series.starts[i]), tz=UTC).isoformat()
        raise IntervalDataError(
            f"interval start {ts} is not on the {series.interval_minutes}-minute grid",
            source=source or series.channel_id,
            field="start",
        )
    day_idx = series.starts // SECONDS_PER_DAY
    slot = (series.starts % SECONDS_PER_DAY) // step
    blocks: list[DayBlock] = []
    order = np.argsort(day_idx, kind="stable")
    day_sorted = day_idx[order]
    bounds = np.flatnonzero(np.diff(day_sorted)) + 1
    for chunk in np.split(order, bounds):
        d = int(day_idx[chunk[0]])
        values = np.full(n_slots, np.nan)
        quality = np.full(n_slots, Quality.MISSING, dtype=np.uint8)
        values[slot[chunk]] = series.values[chunk]
        quality[slot[chunk]] = series.quality[chunk]
        rule_ids = None
        if series.rule_ids is not None:
            rule_ids = np.zeros(n_slots, dtype=np.uint8)
            rule_ids[slot[chunk]] = series.rule_ids[chunk]
        blocks.append(
            DayBlock(
                channel_id=series.channel_id,
                day=epoch_to_day(d * SECONDS_PER_DAY),
                interval_minutes=series.interval_minutes,
                values=values,
                quality=quality,
                rule_ids=rule_ids,
                rule_names=series.rule_names,
            )
        )
    return blocks


def concat_series(parts: Sequence[ChannelSeries]) -> ChannelSeries:
    """Concatenate series of one channel into one."""
    if not parts:
        raise ValueError("no series to concatenate")
    first = parts[0]
    return ChannelSeries(
        channel_id=first.channel_id,
        interval_minutes=first.interval_minutes,
        starts=np.concatenate([p.starts for p in parts]),
        values=np.concatenate([p.values for p in parts]),
        quality=np.concatenate([p.quality for p in parts]),
    )
