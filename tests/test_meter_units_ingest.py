"""Issue 18 item 6: every meter adapter's values are checked against (and converted into) the
channel's unit by one core rule at ingest, kwhub.core.meter_units.in_channel_unit.

Expected values are worked out by hand: 1 MWh = 1000 kWh; 4 kW over 15 minutes = 1 kWh."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from kwhub.core.campus import Campus, Channel, Site
from kwhub.core.intervals import ChannelSeries, IntervalBatch, IntervalDataError
from kwhub.core.meter_units import apply_channel_units, in_channel_unit
from kwhub.hub.helpers.modbus import RegisterPoint
from kwhub.hub.ingest.poller import PointSpec, Poller, interval_unit
from kwhub.plugins.meters.greenbutton import GreenButtonMeter
from kwhub.plugins.meters.mqtt import Sample, aggregate
from kwhub.plugins.meters.oem_telemetry import load_map
from tests.fixtures.ingest import EspiMeterReading, espi_file, regular_readings

START = datetime(2024, 3, 1, tzinfo=UTC)
T0 = int(START.timestamp())


def series(values: list[float], unit: str, minutes: int = 15, channel: str = "ch") -> ChannelSeries:
    return ChannelSeries(channel, minutes, T0 + 60 * minutes * np.arange(len(values)), np.array(values),
                         np.zeros(len(values), np.uint8), unit=unit)


def test_the_core_rule_converts_what_converts_and_refuses_the_rest():
    assert in_channel_unit(series([1500.0], "kWh"), "MWh").values.tolist() == [1.5]
    assert in_channel_unit(series([2.0], "MWh"), "kWh").values.tolist() == [2000.0]
    assert in_channel_unit(series([4.0], "kW"), "kWh").values.tolist() == [1.0]  # 4 kW x 1/4 h
    assert in_channel_unit(series([250.0], "Wh"), None).values.tolist() == [0.25]  # unknown channel: kWh
    kept = series([3.0], "")
    assert in_channel_unit(kept, "MMBtu") is kept  # no declared unit: already the channel's
    with pytest.raises(IntervalDataError, match=r"values in MMBtu, but channel ch is configured in kWh") as info:
        in_channel_unit(series([1.0], "MMBtu"), "kWh", source="feed.xml")
    assert info.value.source == "feed.xml" and info.value.field == "unit"
    with pytest.raises(IntervalDataError, match="fraction"):
        in_channel_unit(series([1.0], "kWh"), "fraction")


def test_a_batch_is_converted_per_channel():
    batch = IntervalBatch("f", [series([1000.0], "kWh", channel="a"), series([1000.0], "kWh", channel="b")])
    out = apply_channel_units(batch, {"a": "MWh", "b": "kWh"})
    assert [s.values.tolist() for s in out.series] == [[1.0], [1000.0]]


def test_green_button_values_are_checked_at_ingest(tmp_path):
    """Green Button delivers kWh: a MWh channel gets them divided by 1000, an MMBtu channel refuses them."""
    reading = EspiMeterReading(readings=regular_readings(START, 4, 900))
    path = espi_file(tmp_path / "gb.xml", [reading])
    batch = GreenButtonMeter("gb").read_file(path, channel="grid.import")
    (s,) = batch.series
    assert s.unit == "kWh"
    got = apply_channel_units(batch, {"grid.import": "MWh"}).series[0].values
    assert got.tolist() == pytest.approx((s.values / 1000).tolist())
    with pytest.raises(IntervalDataError, match="configured in MMBtu"):
        apply_channel_units(batch, {"grid.import": "MMBtu"})


def test_green_button_file_into_a_fuel_channel_is_refused_by_ingest(tmp_path):
    from kwhub.hub.ingest.batch import ingest_batch

    reading = EspiMeterReading(readings=regular_readings(START, 4, 900))
    batch = GreenButtonMeter("gb").read_file(espi_file(tmp_path / "gb.xml", [reading]), channel="gt1.fuel")
    campus = Campus(timezone="UTC", sites=[Site(id="s", name="s")],
                    channels=[Channel(id="gt1.fuel", unit="MMBtu")])
    with pytest.raises(IntervalDataError, match="configured in MMBtu"):
        ingest_batch(object(), campus, batch)  # refused before the database is touched


def test_mqtt_intervals_are_kwh():
    samples = [Sample("m.load", T0 + 60 * k, 8.0, "power") for k in range(0, 31)]
    s = aggregate(samples, 15, "m.load")
    assert s.unit == "kWh"
    # 8 kW for a quarter-hour is 2 kWh, i.e. 0.002 MWh on a MWh channel
    assert in_channel_unit(s, "MWh").values[0] == pytest.approx(0.002)
    with pytest.raises(IntervalDataError, match="configured in fraction"):
        in_channel_unit(s, "fraction")


def test_register_points_declare_their_interval_unit():
    def point(unit: str, kind: str, **kw: object) -> RegisterPoint:
        return RegisterPoint(name="p", address=0, type="uint32" if kind == "energy_counter" else "float32",
                             unit=unit, kind=kind, channel="c", **kw)  # type: ignore[arg-type]

    assert interval_unit(point("Wh", "energy_counter")) == "kWh"
    assert interval_unit(point("MW", "power")) == "kWh"
    assert interval_unit(point("MMBtu/h", "power")) == "MMBtu"
    assert interval_unit(point("kW", "gauge")) == "kW"
    assert interval_unit(point("%", "gauge")) == "fraction"
    assert interval_unit(point("status", "gauge", available_values=[1])) == "fraction"
    assert interval_unit(point("V", "gauge")) == ""


def test_oem_map_points_carry_units():
    """The gas-turbine map's fuel-rate point delivers MMBtu per interval and its power point kWh."""
    units = {p.name: interval_unit(p) for p in load_map("gas_turbine_controller").for_asset("gt1")
             if p.channel}
    assert "MMBtu" in units.values() and "kWh" in units.values()


class _Device:
    name = "dev"
    poll_seconds = 1.0
    timeout = 1.0
    interval_minutes = 15

    def __init__(self, specs: list[PointSpec]) -> None:
        self._specs = specs

    def channel_points(self) -> list[PointSpec]:
        return self._specs

    async def read(self) -> dict[str, object]:
        return {}

    def close(self) -> None:
        pass


def test_the_poller_refuses_a_point_whose_unit_its_channel_cannot_take():
    """Modbus, SunSpec and OEM-map instances are polled: a fuel point on a kWh channel stops the poller at start."""
    fuel = PointSpec(name="fuel", channel="gt1.gen", kind="power", unit="MMBtu")
    with pytest.raises(IntervalDataError, match="values in MMBtu, but channel gt1.gen is configured in kWh"):
        Poller([_Device([fuel])], sink=object(), channel_units={"gt1.gen": "kWh"})  # type: ignore[list-item, arg-type]
    ok = Poller([_Device([fuel])], sink=object(), channel_units={"gt1.gen": "MMBtu"})  # type: ignore[list-item, arg-type]
    assert ok.channel_units == {"gt1.gen": "MMBtu"}
