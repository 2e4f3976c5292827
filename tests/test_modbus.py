"""``meters.modbus`` and the register codec, against real pymodbus servers on loopback."""

from __future__ import annotations

import asyncio
import struct

import pytest
from pydantic import ValidationError

from kwhub.core.adapters import FailureKind
from kwhub.hub.demo.simulator.modbus_devices import (
    DeviceServer,
    SimulatedDevice,
    free_port,
    map_device,
)
from kwhub.hub.helpers.modbus import RegisterPoint, decode_raw, encode_raw, plan_reads
from kwhub.plugins.meters.modbus import ModbusMeter

TYPES = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
SAMPLES = {"int16": -12345, "uint16": 54321, "int32": -2_000_000_123, "uint32": 4_000_000_123,
           "int64": -9_000_000_000_000_123, "uint64": 18_000_000_000_000_000_123,
           "float32": 1234.5, "float64": -98765.4321}
STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q",
          "float32": ">f", "float64": ">d"}


def run(coro):
    return asyncio.run(coro)


def _expected_words(t: str, value: float, word_order: str) -> list[int]:
    """Independent encoding: struct big-endian bytes, split in 16-bit words, optionally reversed."""
    data = struct.pack(STRUCT[t], value)
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    return words[::-1] if word_order == "little" else words


def _all_type_points() -> list[RegisterPoint]:
    pts, addr = [], 0
    for wo in ("big", "little"):
        for t in TYPES:
            p = RegisterPoint(name=f"{t}_{wo}", address=addr, type=t, word_order=wo)
            pts.append(p)
            addr += p.count + 1  # leave holes between points
    return pts


def test_codec_matches_independent_struct_encoding():
    for p in _all_type_points():
        v = SAMPLES[p.type]
        words = _expected_words(p.type, v, p.word_order)
        assert encode_raw(p, v) == words
        assert decode_raw(p, words) == pytest.approx(v)


def test_plan_reads_merges_neighbours_and_respects_limits():
    pts = [RegisterPoint(name=f"p{i}", address=a, type="uint32") for i, a in enumerate([0, 2, 10, 300, 302])]
    pts.append(RegisterPoint(name="ir", address=0, function=4))
    blocks = plan_reads(pts)
    assert [(b.function, b.address, b.count) for b in blocks] == [(3, 0, 12), (3, 300, 4), (4, 0, 1)]
    many = [RegisterPoint(name=f"q{i}", address=i * 2, type="uint32") for i in range(100)]
    assert all(b.count <= 125 for b in plan_reads(many))


def test_only_read_function_codes_are_accepted():
    for fc in (1, 2, 5, 6, 15, 16, 23):
        with pytest.raises(ValidationError, match="only read codes"):
            ModbusMeter("m", {"points": [{"name": "x", "address": 0, "function": fc}]})
    ModbusMeter("m", {"points": [{"name": "x", "address": 0, "function": 4}]})


def test_config_rejects_bad_maps():
    with pytest.raises(ValidationError, match="energy_counter must be an integer"):
        ModbusMeter("m", {"points": [{"name": "e", "address": 0, "type": "float32", "unit": "kWh",
                                      "kind": "energy_counter"}]})
    with pytest.raises(ValidationError, match="scale-factor register"):
        ModbusMeter("m", {"points": [{"name": "e", "address": 0, "scale_factor": "E_SF"}]})
    with pytest.raises(ValidationError, match="no register points"):
        ModbusMeter("m", {"host": "127.0.0.1"})


def test_decoding_every_type_and_word_order_over_tcp():
    pts = _all_type_points()

    async def go():
        dev = map_device("types", 7, pts)
        for p in pts:
            dev.set_raw(p.name, SAMPLES[p.type])
        async with DeviceServer([dev]) as srv:
            meter = ModbusMeter("m", {"port": srv.port, "device_id": 7, "points": [p.model_dump() for p in pts]})
            vals = await meter.read()
            # the raw registers on the wire, read by a plain pymodbus client
            from pymodbus.client import AsyncModbusTcpClient

            client = AsyncModbusTcpClient("127.0.0.1", port=srv.port, timeout=1, retries=0)
            await client.connect()
            wire = {}
            for p in pts:
                rr = await client.read_holding_registers(p.address, count=p.count, device_id=7)
                wire[p.name] = list(rr.registers)
            client.close()
            meter.close()
            return vals, wire

    vals, wire = run(go())
    for p in pts:
        assert wire[p.name] == _expected_words(p.type, SAMPLES[p.type], p.word_order), p.name
        assert vals[p.name].value == pytest.approx(SAMPLES[p.type], rel=1e-7), p.name


def test_scale_factor_register_and_fixed_multiplier():
    pts = [RegisterPoint(name="W_SF", address=10, type="int16"),
           RegisterPoint(name="W", address=11, type="int16", scale_factor="W_SF", unit="W"),
           RegisterPoint(name="kwh", address=12, type="uint32", scale_factor=0.1, unit="kWh",
                         kind="energy_counter", channel="c")]

    async def go():
        dev = map_device("sf", 1, pts)
        dev.set_raw("W_SF", -2)
        dev.set_raw("W", 12345)
        dev.set_raw("kwh", 987654)
        async with DeviceServer([dev]) as srv:
            m = ModbusMeter("m", {"port": srv.port, "points": [p.model_dump() for p in pts]})
            try:
                return await m.read()
            finally:
                m.close()

    vals = run(go())
    assert vals["W"].value == pytest.approx(123.45)
    assert vals["kwh"].value == pytest.approx(98765.4)


def test_check_classifies_failures():
    pts = [{"name": "x", "address": 5, "type": "uint32"}]

    async def go():
        dev = map_device("chk", 1, [RegisterPoint(**pts[0])])
        dev.set_raw("x", 42)
        silent = SimulatedDevice("quiet", 2, [RegisterPoint(**pts[0])], base=5, silent=True)
        async with DeviceServer([dev, silent]) as srv:
            ok = await ModbusMeter("m", {"port": srv.port, "points": pts}).acheck()
            bad_addr = await ModbusMeter("m", {"port": srv.port, "points": [
                {"name": "x", "address": 900, "type": "uint32"}]}).acheck()
            quiet = await ModbusMeter("m", {"port": srv.port, "device_id": 2, "timeout": 0.3,
                                            "points": pts}).acheck()
        refused = await ModbusMeter("m", {"port": free_port(), "timeout": 0.5, "points": pts}).acheck()
        return ok, bad_addr, quiet, refused

    ok, bad_addr, quiet, refused = run(go())
    assert ok.ok and ok.details["registers"] == [0, 42]
    assert not bad_addr.ok and bad_addr.kind == FailureKind.CONFIGURATION
    assert "illegal data address" in bad_addr.message
    assert not quiet.ok and quiet.kind == FailureKind.TRANSIENT
    assert not refused.ok and refused.kind == FailureKind.TRANSIENT


def test_sync_check_works_outside_a_loop():
    res = ModbusMeter("m", {"port": free_port(), "timeout": 0.3,
                            "points": [{"name": "x", "address": 0}]}).check()
    assert not res.ok and res.kind == FailureKind.TRANSIENT


def test_registered_as_plugin(registry):
    cls = registry.adapter("meters.modbus")
    assert cls is ModbusMeter and "poll" in cls.capabilities
