"""``meters.oem_telemetry``: TOML controller maps, served by simulated controllers driven by the campus."""

from __future__ import annotations

import asyncio
from datetime import date

import numpy as np
import pytest
from pydantic import ValidationError

from kwhub.core.quality import Quality
from kwhub.hub.demo.simulator.campus import ENGINES, simulate
from kwhub.hub.demo.simulator.modbus_devices import SimClock, campus_devices
from kwhub.hub.ingest.poller import Poller
from kwhub.plugins.meters.oem_telemetry import OemTelemetry, builtin_maps, load_map

SPEED = 60.0


class Sink:
    def __init__(self) -> None:
        self.series = []

    def write_series(self, series, layer="raw", source=""):
        self.series.extend(series)

    def channel(self, cid):
        parts = [s for s in self.series if s.channel_id == cid]
        return (np.concatenate([p.values for p in parts]), np.concatenate([p.quality for p in parts]))


def test_shipped_maps_load_and_name_their_channels():
    assert {"gas_turbine_controller", "recip_engine_controller"} <= set(builtin_maps())
    gt = load_map("gas_turbine_controller")
    chans = {p.channel for p in gt.for_asset("gt2")}
    assert {"gt2.net", "gt2.fuel", "gt2.avail"} <= chans
    re = load_map("recip_engine_controller")
    assert all(p.function == 4 and p.word_order == "little" for p in re.points)
    assert re.status_labels[3] == "running"


def test_bad_maps_and_configs_are_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[points]]\nname = "x"\naddress = 0\nfunction = 6\n')
    with pytest.raises(ValueError, match=r"bad.toml: points\[0\] \(x\)"):
        load_map(str(bad))
    with pytest.raises(ValidationError, match="not found"):
        OemTelemetry("x", {"map": "no_such_map", "asset": "gt1"})
    with pytest.raises(ValidationError, match="not in map"):
        OemTelemetry("x", {"map": "gas_turbine_controller", "asset": "gt1", "channels": {"nope": "c"}})


def test_controllers_produce_output_fuel_and_availability():
    r = simulate(date(2026, 10, 5), 2, seed=42)
    down_unit = next(u for u in ENGINES if r.truth[f"{u}.avail"].min() == 0.0)
    k_down = int(np.flatnonzero(r.truth[f"{down_unit}.avail"] == 0.0)[1])
    up_engine = next(u for u in ENGINES if u != down_unit)
    # run the clock inside an interval where the unit is down and the others run
    clock = SimClock(float(r.starts[k_down]) + 1, speed=SPEED)
    wanted = {"ctl_gt1", f"ctl_{down_unit}", f"ctl_{up_engine}"}

    async def go():
        # (a 0.8 s timeout bridges gaps of up to 1.65 s real time: a short stall of a busy machine
        # does not turn an interval MISSING; the run then lasts two intervals + that gap + slack)
        cd = campus_devices(r, clock, interval_minutes=1, poll_seconds=0.05, timeout=0.8)
        servers = [cd.server_of(n) for n in wanted]
        for s in servers:
            await s.start()
        adapters = [OemTelemetry(i, c) for t, i, c in cd.adapters if i in wanted]
        sink = Sink()
        await Poller(adapters, sink, flush_seconds=0.5, clock=clock, time_scale=SPEED).run(5.0)
        for s in servers:
            await s.stop()
        return sink

    sink = asyncio.run(go())
    campus = r.campus
    for unit in ("gt1", up_engine):
        net, qn = sink.channel(f"{unit}.net")
        fuel, qf = sink.channel(f"{unit}.fuel")
        avail, qa = sink.channel(f"{unit}.avail")
        assert len(net) >= 2 and (qn == Quality.VALID).all() and (qf == Quality.VALID).all()
        per_minute = r.truth[f"{unit}.net"][k_down] / 15.0  # 15-minute kWh -> one minute
        np.testing.assert_allclose(net, per_minute, rtol=0.03)
        hr = campus.asset(unit).heat_rate_mmbtu_per_mwh
        np.testing.assert_allclose(fuel, net / 1000.0 * hr, rtol=0.03)  # MMBtu = MWh x heat rate
        np.testing.assert_allclose(avail, 1.0)
    net, _ = sink.channel(f"{down_unit}.net")
    avail, qa = sink.channel(f"{down_unit}.avail")
    fuel, _ = sink.channel(f"{down_unit}.fuel")
    assert (qa == Quality.VALID).all()
    np.testing.assert_allclose(avail, 0.0)
    np.testing.assert_allclose(net, 0.0, atol=1e-6)
    np.testing.assert_allclose(fuel, 0.0, atol=1e-6)


def test_registered(registry):
    assert registry.adapter("meters.oem_telemetry") is OemTelemetry
