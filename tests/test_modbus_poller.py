"""The poller: counters to intervals, faults, isolation of dead devices, batched writes.

Devices are real pymodbus servers on loopback; the poller and the devices share an
accelerated clock (60x: one 1-minute interval per wall second) so tests stay short.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pytest

from kwhub.core.quality import Quality
from kwhub.hub.demo.simulator.modbus_devices import (
    ConstantPower,
    DeviceServer,
    SimClock,
    map_device,
)
from kwhub.hub.helpers.modbus import RegisterPoint
from kwhub.hub.ingest.poller import PointSpec, Poller, SampleBuffer, aggregate
from kwhub.plugins.meters.modbus import ModbusMeter

SPEED = 60.0
KW = 600.0  # 10 kWh per 1-minute interval


class CountingSink:
    """Stands in for ``Database.intervals``: records every ``write_series`` call."""

    def __init__(self) -> None:
        self.calls: list[list] = []

    def write_series(self, series, layer="raw", source=""):
        self.calls.append(list(series))

    def by_channel(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out: dict[str, list] = {}
        for batch in self.calls:
            for s in batch:
                out.setdefault(s.channel_id, []).append(s)
        res = {}
        for ch, parts in out.items():
            starts = np.concatenate([p.starts for p in parts])
            order = np.argsort(starts)
            res[ch] = (starts[order], np.concatenate([p.values for p in parts])[order],
                       np.concatenate([p.quality for p in parts])[order])
        return res


def counter_points(channel: str, bits: str = "uint32", word_order: str = "big") -> list[RegisterPoint]:
    return [RegisterPoint(name="wh", address=0, type=bits, word_order=word_order, unit="Wh",
                          kind="energy_counter", channel=channel),
            RegisterPoint(name="kw", address=4, type="float32", unit="kW", kind="power", channel=f"{channel}.p")]


def meter(name: str, port: int, points: list[RegisterPoint], device_id: int = 1, poll: float = 0.05,
          timeout: float = 0.25) -> ModbusMeter:
    return ModbusMeter(name, {"port": port, "device_id": device_id, "interval_minutes": 1, "poll_seconds": poll,
                              "timeout": timeout, "points": [p.model_dump() for p in points]})


def _clock() -> SimClock:
    now = datetime.now(UTC).timestamp()
    # start 1 simulated second after a minute boundary so the first full interval comes quickly
    return SimClock(now - now % 60 + 1, speed=SPEED)


# ------------------------------------------------------------------ pure aggregation


def test_aggregate_counter_rollover_reset_and_gap():
    spec = PointSpec("c", "ch", "energy_counter", factor=1.0, bits=16)
    t = np.arange(0, 301, 10.0)  # a sample every 10 s over five minutes
    raw = (65000 + 10 * t).astype(np.int64)  # 10 units per second, wraps at 65536 after ~54 s
    raw[t >= 200] = (raw[t >= 200] - raw[t == 200][0]) + 3  # meter reset at t=200 -> small value
    good = np.ones(len(t), dtype=bool)
    good[(t > 120) & (t < 180)] = False  # 60 s without answers: a hole in the third minute
    bounds = np.arange(0, 301, 60.0)
    vals, qual = aggregate(spec, t, (raw & 0xFFFF).astype(np.uint64), np.ones(len(t)), good, bounds, max_gap=30)
    # minute 0 wraps 65000 -> 65600 (mod 2^16): 600 units, valid
    assert vals[0] == pytest.approx(600) and qual[0] == Quality.VALID
    assert vals[1] == pytest.approx(600) and qual[1] == Quality.VALID
    assert np.isnan(vals[2]) and qual[2] == Quality.MISSING  # the hole: a gap, not a zero
    assert qual[3] == Quality.SUSPECT  # the reset interval
    assert 0 <= vals[3] < 600  # a lower bound, never a huge negative
    assert vals[4] == pytest.approx(600) and qual[4] == Quality.VALID


def test_sample_buffer_emits_missing_for_a_silent_device():
    buf = SampleBuffer([PointSpec("c", "ch", "energy_counter", bits=32)], 1, start_epoch=0.0, max_gap=5)
    assert buf.finalize(now=30, grace=5) == []
    out = buf.finalize(now=200, grace=5)
    s = out[0]
    assert list(s.starts) == [0, 60, 120]
    assert np.isnan(s.values).all() and (s.quality == Quality.MISSING).all()


# ------------------------------------------------------------------ poller + real servers


def test_counter_rollover_over_tcp_gives_steady_interval_energy():
    clock = _clock()

    async def go():
        dev = map_device("wrap", 1, counter_points("m1"), clock)
        dev.drive_counter("wh", ConstantPower(KW, t0=clock()), start_raw=2**32 - 15_000)  # wraps in ~1.5 min
        dev.drive_rate("kw", ConstantPower(KW))
        sink = CountingSink()
        async with DeviceServer([dev]) as srv:
            p = Poller([meter("m1", srv.port, counter_points("m1"))], sink, flush_seconds=0.5, clock=clock,
                       time_scale=SPEED)
            await p.run(3.6)
        return sink, dev

    sink, dev = asyncio.run(go())
    starts, vals, qual = sink.by_channel()["m1"]
    assert len(vals) >= 2
    assert (qual == Quality.VALID).all()
    np.testing.assert_allclose(vals, KW / 60, rtol=0.02)  # 10 kWh per minute, across the wrap
    assert dev._read_raw(dev.by_name["wh"]) < 2**31  # the device counter really wrapped
    _, pvals, _ = sink.by_channel()["m1.p"]
    np.testing.assert_allclose(pvals, KW / 60, rtol=0.02)  # power integrated to the same energy


def test_meter_reset_is_suspect_never_negative():
    clock = _clock()

    async def go():
        pts = counter_points("m2", "uint64", "little")
        dev = map_device("reset", 1, pts, clock)
        dev.drive_counter("wh", ConstantPower(KW, t0=clock()), start_raw=50_000_000)
        sink = CountingSink()
        async with DeviceServer([dev]) as srv:
            p = Poller([meter("m2", srv.port, pts)], sink, flush_seconds=0.5, clock=clock, time_scale=SPEED)
            task = asyncio.create_task(p.run(4.6))
            await asyncio.sleep(2.5)
            dev.reset_counter("wh")
            await task
        return sink

    starts, vals, qual = asyncio.run(go()).by_channel()["m2"]
    assert (qual == Quality.SUSPECT).sum() == 1
    assert (vals[qual != Quality.MISSING] >= 0).all()
    ok = qual == Quality.VALID
    assert ok.sum() >= 2
    np.testing.assert_allclose(vals[ok], KW / 60, rtol=0.02)
    assert vals[qual == Quality.SUSPECT][0] <= KW / 60 * 1.02


def test_failed_polls_make_missing_gaps_and_dead_device_does_not_delay_others():
    clock = _clock()
    period = 0.05

    async def go():
        healthy, servers = [], []
        for i in range(3):
            pts = counter_points(f"h{i}")
            d = map_device(f"h{i}", 1, pts, clock)
            d.drive_counter("wh", ConstantPower(KW, t0=clock()))
            servers.append(DeviceServer([d]))
            healthy.append(pts)
        dead_pts = counter_points("dead")
        dd = map_device("dead", 1, dead_pts, clock)
        dd.drive_counter("wh", ConstantPower(KW, t0=clock()))
        dead_srv = DeviceServer([dd])
        quiet_pts = counter_points("quiet")
        qd = map_device("quiet", 1, quiet_pts, clock)
        qd.drive_counter("wh", ConstantPower(KW, t0=clock()))
        quiet_srv = DeviceServer([qd])
        for s in [*servers, dead_srv, quiet_srv]:
            await s.start()
        devices = [meter(f"h{i}", servers[i].port, healthy[i], poll=period) for i in range(3)]
        devices += [meter("dead", dead_srv.port, dead_pts, poll=period, timeout=0.6),
                    meter("quiet", quiet_srv.port, quiet_pts, poll=period, timeout=0.6)]
        sink = CountingSink()
        p = Poller(devices, sink, flush_seconds=0.5, clock=clock, time_scale=SPEED, backoff_base=0.2,
                   backoff_max=1.0)
        task = asyncio.create_task(p.run(4.8))
        await asyncio.sleep(1.2)
        qd.silent = True  # stops answering: requests time out
        await dead_srv.stop()  # server gone: connection refused
        await task
        for s in [*servers, quiet_srv]:
            await s.stop()
        return p, sink

    p, sink = asyncio.run(go())
    data = sink.by_channel()
    for name in ("dead", "quiet"):
        starts, vals, qual = data[name]
        assert (qual == Quality.MISSING).sum() >= 2, name
        assert np.isnan(vals[qual == Quality.MISSING]).all()  # a gap, never a zero
        assert not (vals[qual != Quality.MISSING] == 0).any()
        assert p.stats[name].failed > 0
    for i in range(3):
        st = p.stats[f"h{i}"]
        assert st.failed == 0
        gaps = np.diff(np.asarray(st.poll_times))
        # polled on schedule while the others were timing out / refused: no gap near the 0.6 s timeout
        assert gaps.max() < period + 0.3, (i, gaps.max())
        assert st.missed <= 0.15 * st.scheduled
        _, vals, qual = data[f"h{i}"]
        assert (qual == Quality.VALID).all() and len(vals) >= 3
        np.testing.assert_allclose(vals, KW / 60, rtol=0.02)


def test_poller_writes_in_batches():
    clock = _clock()

    async def go():
        servers, devices = [], []
        for i in range(8):
            pts = counter_points(f"b{i}")
            d = map_device(f"b{i}", 1, pts, clock)
            d.drive_counter("wh", ConstantPower(KW, t0=clock()))
            servers.append(await DeviceServer([d]).start())
            devices.append(meter(f"b{i}", servers[-1].port, pts))
        sink = CountingSink()
        p = Poller(devices, sink, flush_seconds=1.5, flush_values=10_000, clock=clock, time_scale=SPEED)
        await p.run(3.7)
        for s in servers:
            await s.stop()
        return p, sink

    p, sink = asyncio.run(go())
    values = sum(len(s) for batch in sink.calls for s in batch)
    assert values >= 8 * 2 * 2  # 8 devices x 2 channels x >= 2 intervals
    assert len(sink.calls) == p.writes <= 4  # every ~1.5 s plus the final flush, not one per value
    assert len({s.channel_id for s in sink.calls[0]}) > 1  # one call carries many channels


def test_poller_to_the_store(sqlite_db):
    clock = _clock()

    async def go():
        pts = counter_points("store_m")
        d = map_device("s", 1, pts, clock)
        d.drive_counter("wh", ConstantPower(KW, t0=clock()))
        async with DeviceServer([d]) as srv:
            p = Poller([meter("s", srv.port, pts)], sqlite_db.intervals, flush_seconds=1.0, clock=clock,
                       time_scale=SPEED)
            await p.run(4.3)
        return p

    p = asyncio.run(go())
    assert p.writes >= 1
    summary = {s.channel_id: s for s in sqlite_db.intervals.summary()}
    assert summary["store_m"].intervals >= 2
    assert summary["store_m"].total_kwh == pytest.approx(summary["store_m"].intervals * KW / 60, rel=0.02)
