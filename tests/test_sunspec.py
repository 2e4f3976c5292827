"""``meters.sunspec``: discovery and decoding against simulated SunSpec devices on loopback.

The simulated devices are laid out from the pysunspec2 model definitions; pysunspec2's own
Modbus client scans them as an independent check of the layout.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from kwhub.core.adapters import FailureKind
from kwhub.hub.demo.simulator.modbus_devices import DeviceServer, map_device, sunspec_device
from kwhub.hub.helpers.modbus import ModbusReader
from kwhub.plugins.meters.sunspec import SunSpecMeter, discover, model_layout


def run(coro):
    return asyncio.run(coro)


def test_layouts_come_from_the_model_definitions():
    import json
    from pathlib import Path

    import sunspec2

    for mid in (1, 101, 103, 124, 201, 203, 204, 701, 802):
        lay = model_layout(mid)
        raw = json.loads((Path(sunspec2.__file__).parent / "models" / "json" / f"model_{mid}.json").read_text())
        names = [p["name"] for p in raw["group"]["points"]]
        assert list(lay.points) == names
    assert model_layout(1).length == 66 and model_layout(203).length == 105 and model_layout(103).length == 50
    assert model_layout(203).points["TotWhImp"].sf == "TotWh_SF"


@pytest.mark.parametrize("base", [40000, 0, 50000])
def test_discovery_finds_common_meter_and_inverter(base):
    async def go():
        dev = sunspec_device("mi", 4, [1, 203, 103], base=base, info={"Mn": "Acme", "Md": "M3", "SN": "SN-77"})
        async with DeviceServer([dev]) as srv:
            reader = ModbusReader("127.0.0.1", srv.port, 4, [], timeout=1)
            try:
                return await discover(reader)
            finally:
                reader.close()

    found = run(go())
    assert found.base == base
    assert found.model_ids == [1, 203, 103]
    assert found.info["Mn"] == "Acme" and found.info["SN"] == "SN-77"
    assert found.model(203).address == base + 2 + 2 + 66
    assert found.model(103).address == found.model(203).address + 2 + 105


def test_decodes_energy_with_scale_factor_and_matches_pysunspec2():
    from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

    def independent(port: int) -> tuple[float, float]:
        d = SunSpecModbusClientDeviceTCP(slave_id=5, ipaddr="127.0.0.1", ipport=port, timeout=2)
        try:
            d.scan()
            m203, m103 = d.models[203][0], d.models[103][0]
            m203.read()
            m103.read()
            return float(m203.TotWhImp.cvalue), float(m103.WH.cvalue)
        finally:
            d.close()

    async def go():
        dev = sunspec_device("m", 5, [1, 203, 103], scale_factors={"203.TotWh_SF": 1, "103.WH_SF": -1})
        dev.set_raw("203.TotWhImp", 123_456)
        dev.set_raw("103.WH", 99_999)
        async with DeviceServer([dev]) as srv:
            meter = SunSpecMeter("s", {"port": srv.port, "device_id": 5,
                                       "channels": {"203": "hall_a.load", "103.WH": "pv.net"}})
            vals = await meter.read()
            meter.close()
            ref = await asyncio.to_thread(independent, srv.port)
            return meter, vals, ref

    meter, vals, (ref203, ref103) = run(go())
    assert vals["203.TotWhImp"].value == pytest.approx(1_234_560) == ref203
    assert vals["103.WH"].value == pytest.approx(9_999.9) == pytest.approx(ref103)
    specs = {s.channel: s for s in meter.channel_points()}
    assert specs["hall_a.load"].kind == "energy_counter" and specs["hall_a.load"].factor == 1e-3
    assert specs["hall_a.load"].bits == 32


def test_not_implemented_values_read_as_none():
    async def go():
        dev = sunspec_device("m", 1, [1, 203], scale_factors={"203.TotWh_SF": 0})
        async with DeviceServer([dev]) as srv:  # TotWhExp left at its "not accumulated" value 0
            meter = SunSpecMeter("s", {"port": srv.port, "channels": {"203.TotWhExp": "grid.export"}})
            try:
                return await meter.read()
            finally:
                meter.close()

    assert run(go())["203.TotWhExp"] is None


def test_no_marker_is_a_configuration_error_and_missing_model_too():
    async def go():
        from kwhub.hub.helpers.modbus import RegisterPoint

        plain = map_device("plain", 1, [RegisterPoint(name="x", address=0)])
        meter_only = sunspec_device("m", 2, [1, 203])
        async with DeviceServer([plain, meter_only]) as srv:
            a = await SunSpecMeter("a", {"port": srv.port, "device_id": 1, "channels": {"203": "c"}}).acheck()
            b = await SunSpecMeter("b", {"port": srv.port, "device_id": 2, "channels": {"103": "c"}}).acheck()
            c = await SunSpecMeter("c", {"port": srv.port, "device_id": 2, "channels": {"203": "c"}}).acheck()
        return a, b, c

    a, b, c = run(go())
    assert not a.ok and a.kind == FailureKind.CONFIGURATION and "SunS" in a.message
    assert not b.ok and b.kind == FailureKind.CONFIGURATION and "no model 103" in b.message
    assert c.ok


def test_config_validation():
    with pytest.raises(ValidationError, match="only read codes"):
        SunSpecMeter("s", {"function": 16, "channels": {"203": "c"}})
    with pytest.raises(ValidationError, match="model id"):
        SunSpecMeter("s", {"channels": {"meter.TotWhImp": "c"}})


def test_registered(registry):
    assert registry.adapter("meters.sunspec") is SunSpecMeter
