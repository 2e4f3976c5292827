"""Poll many devices concurrently and write their interval data to the store in batches.

Each device is polled in its own asyncio task with its own timeout and exponential
backoff, so a dead device never delays the others. Every poll is a *sample* (time +
decoded points). Samples become intervals in one vectorised pass per device
(:func:`aggregate`): accumulating counters by interval deltas (rollover handled, a meter
reset flagged SUSPECT), power by time integration, gauges by time averaging. An interval
the samples do not cover (device dead, gap longer than ``max_gap``) is written as
``NaN`` + ``Quality.MISSING`` - never as zero. Finished intervals of all devices are
collected and handed to the sink (``Database.intervals``) every ``flush_seconds`` or every
``flush_values`` values, one ``write_series`` call per batch.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from kwhub.core.intervals import ChannelSeries
from kwhub.core.meter_units import INTERVAL_UNIT, in_channel_unit
from kwhub.core.quality import Quality
from kwhub.hub.helpers.modbus import UNITS as REGISTER_UNITS
from kwhub.hub.helpers.modbus import PointReading, RegisterPoint

PointKind = Literal["energy_counter", "power", "gauge"]


@dataclass(frozen=True)
class PointSpec:
    """What the poller makes of one polled point.

    ``factor`` converts the scaled value to the channel unit (kWh, MMBtu, kW, MMBtu/h,
    fraction). ``bits`` is the counter width for rollover. ``available_values``, for a
    status gauge, turns the status into a 0/1 availability indicator.
    """

    name: str
    channel: str
    kind: PointKind
    factor: float = 1.0
    bits: int = 64
    available_values: tuple[int, ...] | None = None
    unit: str = ""  # the unit of the interval values (kWh, MMBtu, kW, fraction; "": unchecked)

    @classmethod
    def from_register(cls, p: RegisterPoint, channel: str | None = None) -> PointSpec:
        return cls(
            name=p.name,
            channel=channel if channel is not None else p.channel,
            kind=p.kind,
            factor=p.canonical_factor,
            bits=p.bits if p.type.startswith("uint") or p.type.startswith("int") else 64,
            available_values=tuple(p.available_values) if p.available_values is not None else None,
            unit=interval_unit(p),
        )


def interval_unit(p: RegisterPoint) -> str:
    """The unit of the interval values the poller makes of ``p``: counters and power are
    integrated (kWh, MMBtu), a gauge is averaged (kW, fraction); "" for other quantities."""
    if p.available_values is not None:
        return "fraction"
    quantity = REGISTER_UNITS.get(p.unit, ("other", 1.0))[0]
    if p.kind == "gauge":
        return {"power": "kW", "ratio": "fraction", "status": "fraction"}.get(quantity, "")
    return INTERVAL_UNIT.get(quantity, "")


class PolledDevice(Protocol):
    """A device the poller can drive (``meters.modbus`` / ``sunspec`` / ``oem_telemetry`` instances)."""

    name: str
    poll_seconds: float
    timeout: float
    interval_minutes: int

    def channel_points(self) -> list[PointSpec]: ...

    async def read(self) -> dict[str, PointReading | None]: ...

    def close(self) -> None: ...


class SeriesSink(Protocol):
    """Where finished intervals go: ``Database.intervals`` or any object with ``write_series``."""

    def write_series(self, series: list[ChannelSeries], layer: str = "raw", source: str = "") -> Any: ...


# ------------------------------------------------------------------ samples -> intervals


def _ranges_to_mask(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Mark intervals lo[i]..hi[i] (inclusive, clipped) in a boolean mask of length n."""
    mask = np.zeros(n, dtype=bool)
    if n == 0 or len(lo) == 0:
        return mask
    lo = np.clip(lo, 0, n)
    hi = np.clip(hi, -1, n - 1)
    keep = hi >= lo
    diff = np.zeros(n + 1, dtype=np.int64)
    np.add.at(diff, lo[keep], 1)
    np.add.at(diff, hi[keep] + 1, -1)
    return np.cumsum(diff[:-1]) > 0


def aggregate(spec: PointSpec, t: np.ndarray, raw: np.ndarray, mult: np.ndarray, good: np.ndarray,
              bounds: np.ndarray, max_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Samples of one point -> (values, quality) for the intervals between ``bounds``.

    ``t`` sample times (epoch s, ascending), ``raw`` raw numbers (uint64 for counters,
    float64 otherwise), ``mult`` scale multipliers, ``good`` which samples hold a value.
    """
    n = len(bounds) - 1
    values = np.full(n, np.nan)
    quality = np.full(n, Quality.MISSING, dtype=np.uint8)
    tg = t[good]
    if n <= 0 or len(tg) < 2:
        return values, quality
    dt = np.diff(tg)
    suspect_seg = np.zeros(len(dt), dtype=bool)
    if spec.kind == "energy_counter":
        r = raw[good].astype(np.uint64)
        m = mult[good]
        mask = np.uint64((1 << spec.bits) - 1) if spec.bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
        with np.errstate(over="ignore"):
            delta = (r[1:] - r[:-1]) & mask
        reset = delta >= np.uint64(1 << (spec.bits - 1))
        d = np.where(reset, r[1:].astype(np.float64), delta.astype(np.float64)) * m[1:] * spec.factor
        suspect_seg = reset
    else:
        v = raw[good].astype(np.float64) * mult[good]
        if spec.available_values is not None:
            v = np.isin(np.rint(v).astype(np.int64), np.asarray(spec.available_values)).astype(np.float64)
        else:
            v = v * spec.factor
        mid = (v[1:] + v[:-1]) / 2.0
        d = mid * dt / 3600.0 if spec.kind == "power" else mid * dt
    hole = dt > max_gap
    d = np.where(hole, 0.0, d)
    energy = np.concatenate([[0.0], np.cumsum(d)])
    at_bounds = np.interp(bounds, tg, energy)
    vals = np.diff(at_bounds)
    if spec.kind == "gauge":
        vals = vals / np.diff(bounds)
    covered = (bounds[:-1] >= tg[0]) & (bounds[1:] <= tg[-1])
    seg_lo = np.searchsorted(bounds, tg[:-1], side="right") - 1
    seg_hi = np.searchsorted(bounds, tg[1:], side="left") - 1
    holes = _ranges_to_mask(seg_lo[hole], seg_hi[hole], n)
    suspect = _ranges_to_mask(seg_lo[suspect_seg & ~hole], seg_hi[suspect_seg & ~hole], n)
    ok = covered & ~holes
    values[ok] = vals[ok]
    quality[ok] = np.where(suspect[ok], Quality.SUSPECT, Quality.VALID)
    return values, quality


class SampleBuffer:
    """Samples of one device not yet turned into finished intervals."""

    def __init__(self, specs: Sequence[PointSpec], interval_minutes: int, start_epoch: float,
                 max_gap: float) -> None:
        self.specs = [s for s in specs if s.channel]
        self.interval_minutes = interval_minutes
        self.step = interval_minutes * 60
        self.finalized_until = int(math.ceil(start_epoch / self.step) * self.step)
        self.max_gap = max_gap
        self.times: list[float] = []
        self.readings: list[dict[str, PointReading | None] | None] = []

    def add(self, t: float, reading: dict[str, PointReading | None] | None) -> None:
        """Record one poll (``None`` = the poll failed)."""
        self.times.append(t)
        self.readings.append(reading)

    def finalize(self, now: float, grace: float) -> list[ChannelSeries]:
        """Turn every interval that ended before ``now - grace`` into channel series."""
        last = int((now - grace) // self.step * self.step)
        if last <= self.finalized_until:
            return []
        bounds = np.arange(self.finalized_until, last + self.step, self.step, dtype=np.int64)
        t = np.asarray(self.times, dtype=np.float64)
        out: list[ChannelSeries] = []
        for spec in self.specs:
            good = np.zeros(len(t), dtype=bool)
            mult = np.ones(len(t))
            counter = spec.kind == "energy_counter"
            raw = np.zeros(len(t), dtype=np.uint64 if counter else np.float64)
            for i, rd in enumerate(self.readings):
                pr = rd.get(spec.name) if rd is not None else None
                if pr is None:
                    continue
                good[i] = True
                mult[i] = pr.multiplier
                raw[i] = (int(pr.raw) & 0xFFFFFFFFFFFFFFFF) if counter else pr.raw
            vals, qual = aggregate(spec, t, raw, mult, good, bounds.astype(np.float64), self.max_gap)
            out.append(ChannelSeries(spec.channel, self.interval_minutes, bounds[:-1], vals, qual, unit=spec.unit))
        # keep the last successful sample at or before the new boundary to bridge into the next interval
        ok_before = [i for i, (ti, rd) in enumerate(zip(self.times, self.readings, strict=True))
                     if rd is not None and ti <= last]
        cut = ok_before[-1] if ok_before else 0
        while cut < len(self.times) and self.times[cut] < last - self.max_gap and self.readings[cut] is None:
            cut += 1
        del self.times[:cut]
        del self.readings[:cut]
        self.finalized_until = last
        return out


# ------------------------------------------------------------------ poller


@dataclass
class DeviceStats:
    """Per-device counters (``poll_times``: loop time of each successful read)."""

    scheduled: int = 0
    ok: int = 0
    failed: int = 0
    missed: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    poll_times: list[float] = field(default_factory=list)


class Poller:
    """Runs many device pollers concurrently and flushes their intervals in batches."""

    def __init__(self, devices: Sequence[PolledDevice], sink: SeriesSink, *, flush_seconds: float = 5.0,
                 flush_values: int = 10_000, layer: str = "raw", source: str = "poller",
                 clock: Callable[[], float] = time.time, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, keep_poll_times: bool = True, time_scale: float = 1.0,
                 channel_units: Mapping[str, str] | None = None) -> None:
        names = [d.name for d in devices]
        if len(set(names)) != len(names):
            raise ValueError("device names must be unique")
        # the channels' units (kwhub.toml): every point's values are checked against, and converted
        # into, its channel's unit by the core rule (kwhub.core.meter_units.in_channel_unit)
        self.channel_units = channel_units
        if channel_units is not None:
            for d in devices:
                for spec in d.channel_points():
                    if spec.channel:
                        empty = ChannelSeries(spec.channel, d.interval_minutes, np.zeros(0, dtype=np.int64),
                                              np.zeros(0), np.zeros(0, dtype=np.uint8), unit=spec.unit)
                        in_channel_unit(empty, channel_units.get(spec.channel), source=f"{d.name}.{spec.name}")
        self.devices = list(devices)
        self.sink = sink
        self.flush_seconds = flush_seconds
        self.flush_values = flush_values
        self.layer = layer
        self.source = source
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.keep_poll_times = keep_poll_times
        self.time_scale = time_scale  # clock seconds per event-loop second (accelerated clocks)
        self.stats: dict[str, DeviceStats] = {d.name: DeviceStats() for d in devices}
        self.buffers: dict[str, SampleBuffer] = {}
        self.pending: list[ChannelSeries] = []
        self.pending_values = 0
        self.writes = 0
        self.written_values = 0
        self._stop = asyncio.Event()
        self._flush_now = asyncio.Event()

    def _max_gap(self, d: PolledDevice) -> float:
        """Longest sample spacing (clock seconds) still bridged; longer gaps make MISSING intervals."""
        return self.time_scale * max(3.0 * d.poll_seconds, d.poll_seconds + 2 * d.timeout)

    def stop(self) -> None:
        self._stop.set()

    async def run(self, seconds: float | None = None) -> dict[str, DeviceStats]:
        """Poll until :meth:`stop` or for ``seconds``; flush what is finished at the end."""
        start = self.clock()
        for d in self.devices:
            self.buffers[d.name] = SampleBuffer(d.channel_points(), d.interval_minutes, start, self._max_gap(d))
        n = len(self.devices)
        tasks = [asyncio.create_task(self._poll_device(d, phase=i / n), name=f"poll:{d.name}")
                 for i, d in enumerate(self.devices)]
        flusher = asyncio.create_task(self._flush_loop(), name="poller-flush")
        try:
            if seconds is None:
                await self._stop.wait()
            else:
                try:
                    await asyncio.wait_for(self._stop.wait(), seconds)
                except TimeoutError:
                    pass
        finally:
            self._stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._flush_now.set()
            await asyncio.gather(flusher, return_exceptions=True)
            self.collect()
            await self.flush()
            for d in self.devices:
                d.close()
        return self.stats

    async def _poll_device(self, d: PolledDevice, phase: float = 0.0) -> None:
        """Poll one device forever; ``phase`` (0..1) spreads first polls over one period."""
        loop = asyncio.get_running_loop()
        st = self.stats[d.name]
        buf = self.buffers[d.name]
        period = d.poll_seconds
        next_tick = loop.time() + phase * period
        while not self._stop.is_set():
            now = loop.time()
            if now < next_tick:
                await asyncio.sleep(next_tick - now)
            tick = next_tick
            t_sample = self.clock()
            delay = 0.0
            try:
                # each request inside read() has its own timeout; this bounds the whole poll
                reading = await asyncio.wait_for(d.read(), 2 * d.timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one device's failure is data (a gap), never a crash
                st.scheduled += 1
                buf.add(t_sample, None)
                st.failed += 1
                st.missed += 1
                st.consecutive_failures += 1
                st.last_error = f"{type(exc).__name__}: {exc}"
                delay = min(self.backoff_base * 2 ** (st.consecutive_failures - 1), self.backoff_max)
            else:
                done = loop.time()
                st.scheduled += 1
                buf.add((t_sample + self.clock()) / 2.0, reading)  # mid-request: when the device sampled
                st.ok += 1
                st.consecutive_failures = 0
                if done - tick > period:
                    st.missed += 1
                if self.keep_poll_times:
                    st.poll_times.append(done)
            next_tick = tick + period
            if delay:
                next_tick = max(next_tick, loop.time() + delay)
            behind = loop.time() - next_tick
            if behind > period:  # skipped ticks are missed polls, not a burst of catch-up reads
                skipped = int(behind // period)
                st.missed += skipped
                st.scheduled += skipped
                next_tick += skipped * period

    def collect(self) -> int:
        """Finalize finished intervals of every device into the pending batch."""
        now = self.clock()
        added = 0
        for d in self.devices:
            buf = self.buffers.get(d.name)
            if buf is None:
                continue
            for s in buf.finalize(now, grace=self._max_gap(d)):
                if self.channel_units is not None:
                    s = in_channel_unit(s, self.channel_units.get(s.channel_id), source=d.name)
                self.pending.append(s)
                added += len(s)
        self.pending_values += added
        return added

    async def flush(self) -> int:
        """Write the pending batch with one ``write_series`` call; returns the values written."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending, []
        n, self.pending_values = self.pending_values, 0
        await asyncio.to_thread(self.sink.write_series, batch, layer=self.layer, source=self.source)
        self.writes += 1
        self.written_values += n
        return n

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._flush_now.wait(), min(0.25, self.flush_seconds))
            except TimeoutError:
                pass
            self._flush_now.clear()
            self.collect()
            if self.pending_values >= self.flush_values or (loop.time() - last >= self.flush_seconds
                                                            and self.pending):
                await self.flush()
                last = loop.time()
