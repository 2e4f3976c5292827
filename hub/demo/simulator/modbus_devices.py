"""Simulated Modbus devices served by real pymodbus TCP servers on loopback.

A :class:`SimulatedDevice` holds a register image laid out from a register map (the OEM
TOML maps) or from SunSpec model definitions (pysunspec2). Values are computed lazily
at read time from *profiles* of time (:class:`ConstantPower`, :class:`CampusProfile`):
power points read the current power, energy counters the integral (plus an offset, so a
counter can be preset near its wrap or reset to zero). Faults: ``silent`` (the device
stops answering), stopping its server (connection refused), counter rollover and meter
reset. :class:`DeviceServer` serves one or many devices (device ids) on one port.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from kwhub.hub.demo.simulator.campus import SimResult
from kwhub.hub.helpers.modbus import INTEGER_TYPES, RegisterPoint, encode_raw

Clock = Callable[[], float]


class SimClock:
    """A clock that starts at ``start_epoch`` and runs ``speed`` times faster than real time."""

    def __init__(self, start_epoch: float | None = None, speed: float = 1.0) -> None:
        self.start = time.time() if start_epoch is None else float(start_epoch)
        self.speed = float(speed)
        self._t0 = time.monotonic()

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self._t0) * self.speed


class Profile(Protocol):
    """A quantity over time: a rate (kW, MMBtu/h) and its integral (kWh, MMBtu)."""

    def rate(self, t: float) -> float: ...

    def total(self, t: float) -> float: ...


@dataclass
class ConstantPower:
    """A constant rate from ``t0`` on (zero total before ``t0``)."""

    rate_per_hour: float
    t0: float = 0.0

    def rate(self, t: float) -> float:
        return self.rate_per_hour

    def total(self, t: float) -> float:
        return self.rate_per_hour * max(0.0, t - self.t0) / 3600.0


class CampusProfile:
    """A simulated channel as a piecewise-constant rate, repeating over the simulated span.

    ``anchor`` is the clock time that maps to the first simulated interval (default: the
    simulated start itself, so the clock can simply be the simulated time).
    """

    def __init__(self, result: SimResult, channel: str, anchor: float | None = None, scale: float = 1.0) -> None:
        vals = result.truth[channel] * scale
        self.step = result.interval_minutes * 60
        self.anchor = float(result.starts[0] if anchor is None else anchor)
        self.rates = vals * 3600.0 / self.step  # per hour
        self.cum = np.concatenate([[0.0], np.cumsum(vals)])
        self.span = len(vals) * self.step

    def _split(self, t: float) -> tuple[float, int, float]:
        off = t - self.anchor
        wraps = np.floor(off / self.span)
        inner = off - wraps * self.span
        k = min(int(inner // self.step), len(self.rates) - 1)
        return float(wraps), k, inner - k * self.step

    def rate(self, t: float) -> float:
        _, k, _ = self._split(t)
        return float(self.rates[k])

    def total(self, t: float) -> float:
        wraps, k, within = self._split(t)
        return float(wraps * self.cum[-1] + self.cum[k] + self.rates[k] * within / 3600.0)


@dataclass
class _Source:
    profile: Profile
    mode: str  # "rate", "total" or "status"
    up: int = 0
    down: int = 0


@dataclass
class SimulatedDevice:
    """One Modbus device: a register image from ``base`` on, values from profiles."""

    name: str
    device_id: int
    points: list[RegisterPoint]
    base: int = 0
    size: int = 0
    clock: Clock = time.time
    silent: bool = False
    image: list[int] = field(default_factory=list)
    reads: int = 0

    def __post_init__(self) -> None:
        self.by_name = {p.name: p for p in self.points}
        end = max((p.address + p.count for p in self.points), default=self.base + 1)
        self.size = max(self.size, end - self.base)
        if not self.image:
            self.image = [0] * self.size
        elif len(self.image) < self.size:
            self.image += [0] * (self.size - len(self.image))
        self.sources: dict[str, _Source] = {}
        self.offsets: dict[str, int] = {}
        self.values: dict[str, float] = {}
        self._wake: asyncio.Event | None = None

    # -- static values
    def _multiplier(self, p: RegisterPoint) -> float:
        if isinstance(p.scale_factor, str):
            sf = self.by_name[p.scale_factor]
            raw = self._read_raw(sf)
            return 10.0 ** int(raw)
        return float(p.scale_factor)

    def _read_raw(self, p: RegisterPoint) -> int | float:
        from kwhub.hub.helpers.modbus import decode_raw

        i = p.address - self.base
        return decode_raw(p, self.image[i:i + p.count])

    def set_raw(self, name: str, raw: int | float) -> None:
        """Write a raw number into the point's registers."""
        p = self.by_name[name]
        i = p.address - self.base
        self.image[i:i + p.count] = encode_raw(p, raw)

    def set_value(self, name: str, value: float) -> None:
        """Write an engineering value (in the point's unit) into its registers."""
        p = self.by_name[name]
        raw = value / self._multiplier(p)
        self.set_raw(name, int(round(raw)) if p.type in INTEGER_TYPES else raw)

    def set_words(self, address: int, words: Sequence[int]) -> None:
        i = address - self.base
        self.image[i:i + len(words)] = [int(w) & 0xFFFF for w in words]

    # -- dynamic values
    def drive_rate(self, name: str, profile: Profile) -> None:
        """The point reads ``profile.rate(now)`` (canonical units: kW, MMBtu/h)."""
        self.sources[name] = _Source(profile, "rate")

    def drive_counter(self, name: str, profile: Profile, start_raw: int = 0) -> None:
        """The point accumulates ``profile.total(now)`` (canonical units: kWh, MMBtu)."""
        self.sources[name] = _Source(profile, "total")
        self.offsets[name] = 0
        self.preset_counter(name, start_raw)

    def drive_status(self, name: str, availability: Profile, up: int, down: int) -> None:
        """The point reads ``up`` while the availability rate is >= 0.5, else ``down``."""
        self.sources[name] = _Source(availability, "status", up, down)

    def _counter_raw(self, name: str, now: float) -> int:
        p = self.by_name[name]
        src = self.sources[name]
        total = src.profile.total(now) / p.canonical_factor
        return int(np.floor(total / self._multiplier(p))) + self.offsets[name]

    def preset_counter(self, name: str, raw: int) -> None:
        """Make the counter read ``raw`` now and keep counting from there (rollover tests)."""
        self.offsets[name] += raw - self._counter_raw(name, self.clock())

    def reset_counter(self, name: str) -> None:
        """A meter reset: the counter restarts from zero now."""
        self.preset_counter(name, 0)

    def refresh(self, now: float | None = None) -> None:
        """Recompute every driven point for ``now``."""
        t = self.clock() if now is None else now
        for name, src in self.sources.items():
            p = self.by_name[name]
            if src.mode == "total":
                self.set_raw(name, self._counter_raw(name, t))
            elif src.mode == "rate":
                self.set_value(name, src.profile.rate(t) / p.canonical_factor)
            else:
                self.set_raw(name, src.up if src.profile.rate(t) >= 0.5 else src.down)

    # -- serving
    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: Any) -> Any:
        from pymodbus.constants import ExcCodes

        if set_values is not None or function_code not in (3, 4):
            return ExcCodes.ILLEGAL_FUNCTION  # the simulated devices are read-only too
        if self.silent:
            if self._wake is None:
                self._wake = asyncio.Event()
            try:
                await asyncio.wait_for(self._wake.wait(), 30.0)
            except TimeoutError:
                pass
            return ExcCodes.DEVICE_BUSY
        self.reads += 1
        self.refresh()
        lo = address - self.base
        registers[address - start_address:address - start_address + count] = self.image[lo:lo + count]
        return None

    def wake(self) -> None:
        """Release requests held by a silent device (they get 'device busy')."""
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def sim_device(self) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice

        block = SimData(self.base, values=list(self.image) or [0], datatype=DataType.REGISTERS)
        return SimDevice(id=self.device_id, simdata=[block], action=self._action)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class DeviceServer:
    """A real pymodbus TCP server on loopback serving one or many devices (by device id)."""

    def __init__(self, devices: Sequence[SimulatedDevice], host: str = "127.0.0.1", port: int | None = None) -> None:
        self.devices = list(devices)
        self.host = host
        self._auto_port = not port
        self.port = port or free_port(host)
        self._server: Any = None

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> DeviceServer:
        from pymodbus.server import ModbusTcpServer

        for attempt in range(5):
            self._server = ModbusTcpServer([d.sim_device() for d in self.devices],
                                           address=(self.host, self.port), ignore_missing_devices=False)
            try:
                await self._server.serve_forever(background=True)
                return self
            except RuntimeError:  # the port was taken between choosing and binding
                self._server = None
                if not self._auto_port or attempt == 4:
                    raise
                self.port = free_port(self.host)
        return self

    async def stop(self) -> None:
        """Stop listening and drop connections (clients then see 'connection refused')."""
        for d in self.devices:
            d.wake()
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def __aenter__(self) -> DeviceServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# ------------------------------------------------------------------ device builders


def map_device(name: str, device_id: int, points: Sequence[RegisterPoint], clock: Clock = time.time) -> SimulatedDevice:
    """A device laid out from a register map (e.g. an OEM TOML map)."""
    base = min(p.address for p in points)
    return SimulatedDevice(name, device_id, list(points), base=base, clock=clock)


SUNSPEC_BASE = 40000


def sunspec_device(name: str, device_id: int, models: Sequence[int], clock: Clock = time.time,
                   base: int = SUNSPEC_BASE, info: dict[str, str] | None = None,
                   scale_factors: dict[str, int] | None = None) -> SimulatedDevice:
    """A SunSpec device with the given models, laid out from the pysunspec2 definitions.

    Every numeric point is a :class:`RegisterPoint` named ``"<model>.<point>"`` and starts
    at its "not implemented" value; ``scale_factors`` sets SF registers
    (``{"203.TotWh_SF": 3}``); the common model gets ``info`` (Mn, Md, SN, Vr).
    """
    from kwhub.hub.helpers.sunspec_models import TYPE_MAP, model_layout

    words: list[int] = [0x5375, 0x6E53]
    pts: list[RegisterPoint] = []
    addr = base + 2
    for mid in models:
        lay = model_layout(mid)
        block = [0] * (lay.length + 2)
        block[0], block[1] = mid, lay.length
        for pd in lay.points.values():
            if pd.name in ("ID", "L") or pd.sunspec_type not in TYPE_MAP:
                continue
            rtype, na = TYPE_MAP[pd.sunspec_type]
            rp = RegisterPoint(name=f"{mid}.{pd.name}", address=addr + pd.offset, type=rtype,  # type: ignore[arg-type]
                               scale_factor=f"{mid}.{pd.sf}" if isinstance(pd.sf, str) else 1.0,
                               unit="", kind="gauge", not_implemented=na)
            pts.append(rp)
            if na is not None:
                block[pd.offset:pd.offset + pd.size] = encode_raw(rp, na)
        if mid == 1:
            for key, text in (info or {}).items():
                pd = lay.points[key]
                data = text.encode("ascii")[: pd.size * 2].ljust(pd.size * 2, b"\x00")
                block[pd.offset:pd.offset + pd.size] = [int.from_bytes(data[i:i + 2], "big")
                                                        for i in range(0, len(data), 2)]
        words += block
        addr += len(block)
    words += [0xFFFF, 0]
    dev = SimulatedDevice(name, device_id, pts, base=base, size=len(words), clock=clock, image=words)
    for sf_name, v in (scale_factors or {}).items():
        dev.set_raw(sf_name, v)
    # points that carry energy/power in canonical units need their unit for profile scaling
    for mid in models:
        for pd in model_layout(mid).points.values():
            key = f"{mid}.{pd.name}"
            if key in dev.by_name and pd.units in ("Wh", "W"):
                p = dev.by_name[key]
                kind = "energy_counter" if pd.units == "Wh" and p.type in INTEGER_TYPES else (
                    "power" if pd.units == "W" else "gauge")
                dev.by_name[key] = p.model_copy(update={"unit": pd.units, "kind": kind})
    dev.points = list(dev.by_name.values())
    return dev


# ------------------------------------------------------------------ the simulated campus


@dataclass
class CampusDevices:
    """The campus as Modbus devices: servers plus the adapter configs that read them."""

    servers: list[DeviceServer]
    devices: dict[str, SimulatedDevice]
    adapters: list[tuple[str, str, dict[str, Any]]]  # (type_id, instance id, config)

    async def start(self) -> CampusDevices:
        for s in self.servers:
            await s.start()
        return self

    async def stop(self) -> None:
        for s in self.servers:
            await s.stop()

    def server_of(self, device_name: str) -> DeviceServer:
        for s in self.servers:
            if any(d.name == device_name for d in s.devices):
                return s
        raise KeyError(device_name)


def campus_devices(result: SimResult, clock: Clock, *, anchor: float | None = None, interval_minutes: int = 15,
                   poll_seconds: float = 1.0, timeout: float = 1.0, one_server: bool = False) -> CampusDevices:
    """SunSpec meters (halls, cooling, grid), a SunSpec inverter (pv) and OEM controllers.

    ``one_server`` puts every device behind one port (distinct device ids, like a gateway);
    otherwise each device gets its own server and port.
    """
    from kwhub.hub.registry import get_registry

    # The controllers are laid out by the meters.oem_telemetry adapter's own register maps,
    # reached through the registry (the hub imports no plugin module).
    oem = get_registry().adapter("meters.oem_telemetry")
    devs: list[SimulatedDevice] = []
    adapters: list[tuple[str, str, dict[str, Any]]] = []
    common = {"poll_seconds": poll_seconds, "timeout": timeout, "interval_minutes": interval_minutes}
    meters = {"m_hall_a": ["hall_a.load"], "m_hall_b": ["hall_b.load"], "m_hall_c": ["hall_c.load"],
              "m_cooling": ["shared.cooling"], "m_grid": ["grid.import", "grid.export"],
              "m_bess": ["bess.charge", "bess.discharge"]}
    dev_id = 1
    for meter, chans in meters.items():
        d = sunspec_device(meter, dev_id, [1, 203], clock, info={"Mn": "kwhub-sim", "Md": "SIM-203", "SN": meter},
                           scale_factors={"203.TotWh_SF": 0, "203.W_SF": 4})
        d.drive_counter("203.TotWhImp", CampusProfile(result, chans[0], anchor), start_raw=1_000_000)
        d.drive_rate("203.W", CampusProfile(result, chans[0], anchor))
        mapping = {"203.TotWhImp": chans[0]}
        if len(chans) > 1:
            d.drive_counter("203.TotWhExp", CampusProfile(result, chans[1], anchor), start_raw=1_000_000)
            mapping["203.TotWhExp"] = chans[1]
        devs.append(d)
        adapters.append(("meters.sunspec", meter, {"device_id": dev_id, "channels": mapping, **common}))
        dev_id += 1
    inv = sunspec_device("inv_pv", dev_id, [1, 103], clock, info={"Mn": "kwhub-sim", "Md": "SIM-103", "SN": "pv"},
                         scale_factors={"103.WH_SF": 0, "103.W_SF": 4})
    inv.drive_counter("103.WH", CampusProfile(result, "pv.net", anchor), start_raw=500_000)
    inv.drive_rate("103.W", CampusProfile(result, "pv.net", anchor))
    devs.append(inv)
    adapters.append(("meters.sunspec", "inv_pv", {"device_id": dev_id, "channels": {"103": "pv.net"}, **common}))
    dev_id += 1
    for unit in ("gt1", "gt2", "re1", "re2", "re3", "re4", "re5", "re6"):
        is_gt = unit.startswith("gt")
        map_name = "gas_turbine_controller" if is_gt else "recip_engine_controller"
        points = oem(f"ctl_{unit}", {"map": map_name, "asset": unit}).register_points()
        d = map_device(f"ctl_{unit}", dev_id, points, clock)
        net = CampusProfile(result, f"{unit}.net", anchor)
        fuel = CampusProfile(result, f"{unit}.fuel", anchor)
        avail = CampusProfile(result, f"{unit}.avail", anchor, scale=result.interval_minutes * 60 / 3600.0)
        if is_gt:
            d.drive_counter("net_energy_kwh", net, start_raw=40_000_000)
            d.drive_counter("fuel_total", fuel, start_raw=1_000_000)
            d.drive_rate("net_output_mw", net)
            d.drive_rate("gross_output_mw", net)
            d.drive_rate("fuel_flow_mmbtu_h", fuel)
            d.drive_status("status", avail, up=2, down=4)
        else:
            d.drive_counter("energy_counter", net, start_raw=2_000_000)
            d.drive_rate("active_power_kw", net)
            d.drive_rate("fuel_rate", fuel)
            d.drive_status("engine_state", avail, up=3, down=5)
        devs.append(d)
        adapters.append(("meters.oem_telemetry", f"ctl_{unit}",
                         {"device_id": dev_id, "map": map_name, "asset": unit, **common}))
        dev_id += 1
    if one_server:
        servers = [DeviceServer(devs)]
    else:
        servers = [DeviceServer([d]) for d in devs]
    for _type_id, iid, cfg in adapters:
        srv = next(s for s in servers if any(d.name == iid for d in s.devices))
        cfg.update({"host": srv.host, "port": srv.port})
    return CampusDevices(servers, {d.name: d for d in devs}, adapters)
