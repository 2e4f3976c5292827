"""Modbus register maps as data, their codec, and an async read-only device reader.

Documented helper for meter plugins (``meters.modbus``, ``meters.sunspec``,
``meters.oem_telemetry``) and the device simulator. A :class:`RegisterPoint` says where a
value lives (function code 3 or 4, address, type, word order), how to scale it (a fixed
multiplier, or the name of a SunSpec-style scale-factor register holding a power of ten),
its unit and what it becomes (``energy_counter``, ``power`` or ``gauge`` on a channel).
Only the read function codes 3 and 4 exist here: nothing in kwhub writes to a device.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kwhub.core.adapters import AdapterConfig, AdapterError, CheckResult, FailureKind, MeterAdapter

PointType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
PointKind = Literal["energy_counter", "power", "gauge"]

# type -> (registers, struct format of the big-endian bytes)
TYPE_INFO: dict[str, tuple[int, str]] = {
    "int16": (1, ">h"),
    "uint16": (1, ">H"),
    "int32": (2, ">i"),
    "uint32": (2, ">I"),
    "int64": (4, ">q"),
    "uint64": (4, ">Q"),
    "float32": (2, ">f"),
    "float64": (4, ">d"),
}
INTEGER_TYPES = {"int16", "uint16", "int32", "uint32", "int64", "uint64"}
READ_FUNCTIONS = (3, 4)
MAX_READ_REGISTERS = 125  # Modbus limit for one read request

# unit -> (quantity, factor to the canonical unit of that quantity)
UNITS: dict[str, tuple[str, float]] = {
    "Wh": ("energy", 1e-3), "kWh": ("energy", 1.0), "MWh": ("energy", 1e3),
    "W": ("power", 1e-3), "kW": ("power", 1.0), "MW": ("power", 1e3),
    "MMBtu": ("fuel", 1.0), "therm": ("fuel", 0.1), "GJ": ("fuel", 0.947817),
    "MMBtu/h": ("fuel_rate", 1.0), "GJ/h": ("fuel_rate", 0.947817),
    "fraction": ("ratio", 1.0), "%": ("ratio", 0.01), "Pct": ("ratio", 0.01),
    "status": ("status", 1.0), "h": ("other", 1.0), "count": ("other", 1.0), "": ("other", 1.0),
    "A": ("other", 1.0), "V": ("other", 1.0), "Hz": ("other", 1.0), "var": ("other", 1.0), "VA": ("other", 1.0),
    "C": ("other", 1.0),
}


class RegisterPoint(BaseModel):
    """One value in a device's register map."""

    model_config = ConfigDict(extra="forbid")

    name: str
    address: int = Field(ge=0, le=65535)
    type: PointType = "uint16"
    function: int = 3
    word_order: Literal["big", "little"] = "big"
    scale_factor: float | str = 1.0  # multiplier, or the name of a power-of-ten SF register
    unit: str = ""
    channel: str = ""  # target channel; empty = read for diagnostics only
    kind: PointKind = "gauge"
    available_values: list[int] | None = None  # gauge of a status register: 1 when in this list
    not_implemented: int | None = None  # raw value meaning "not available" (SunSpec 0x8000 etc.)

    @field_validator("function")
    @classmethod
    def _read_only(cls, v: int) -> int:
        if v not in READ_FUNCTIONS:
            raise ValueError(f"function code {v} is not allowed: only read codes 3 (holding) and 4 (input)")
        return v

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, v: str) -> str:
        if v not in UNITS:
            raise ValueError(f"unknown unit {v!r} (known: {', '.join(sorted(u for u in UNITS if u))})")
        return v

    @model_validator(mode="after")
    def _kind_matches_unit(self) -> RegisterPoint:
        q = UNITS[self.unit][0]
        if self.kind == "energy_counter":
            if self.type not in INTEGER_TYPES:
                raise ValueError(f"{self.name}: an energy_counter must be an integer register, not {self.type}")
            if q not in ("energy", "fuel"):
                raise ValueError(f"{self.name}: an energy_counter needs an energy or fuel unit, not {self.unit!r}")
        if self.kind == "power" and q not in ("power", "fuel_rate"):
            raise ValueError(f"{self.name}: a power point needs a power or fuel-rate unit, not {self.unit!r}")
        return self

    @property
    def count(self) -> int:
        return TYPE_INFO[self.type][0]

    @property
    def bits(self) -> int:
        return 16 * self.count

    @property
    def canonical_factor(self) -> float:
        """Multiply a scaled value by this to get kWh, kW, MMBtu, MMBtu/h or a fraction."""
        return UNITS[self.unit][1]


@dataclass(frozen=True)
class ReadBlock:
    """One read request: function code, first address, number of registers."""

    function: int
    address: int
    count: int


def plan_reads(points: Iterable[RegisterPoint], max_hole: int = 16,
               max_count: int = MAX_READ_REGISTERS) -> list[ReadBlock]:
    """Group points into as few contiguous read requests as possible."""
    spans = sorted({(p.function, p.address, p.address + p.count) for p in points})
    blocks: list[ReadBlock] = []
    cur: list[int] | None = None  # [fc, start, end]
    for fc, a, e in spans:
        if cur is not None and fc == cur[0] and a - cur[2] <= max_hole and max(e, cur[2]) - cur[1] <= max_count:
            cur[2] = max(cur[2], e)
            continue
        if cur is not None:
            blocks.append(ReadBlock(cur[0], cur[1], cur[2] - cur[1]))
        cur = [fc, a, e]
    if cur is not None:
        blocks.append(ReadBlock(cur[0], cur[1], cur[2] - cur[1]))
    return blocks


def _words(point: RegisterPoint, regs: Sequence[int]) -> list[int]:
    words = list(regs)
    return words[::-1] if point.word_order == "little" else words


def decode_raw(point: RegisterPoint, regs: Sequence[int]) -> int | float:
    """Registers -> the raw number (no scaling). Bytes within a register are big-endian."""
    if len(regs) != point.count:
        raise ValueError(f"{point.name}: expected {point.count} registers, got {len(regs)}")
    data = b"".join(int(w & 0xFFFF).to_bytes(2, "big") for w in _words(point, regs))
    return struct.unpack(TYPE_INFO[point.type][1], data)[0]


def encode_raw(point: RegisterPoint, raw: int | float) -> list[int]:
    """The raw number -> registers in the point's word order (for simulated devices)."""
    fmt = TYPE_INFO[point.type][1]
    if point.type in INTEGER_TYPES:
        raw = int(raw)
        if point.type.startswith("uint"):
            raw &= (1 << point.bits) - 1
        else:  # saturate a signed value that does not fit
            lim = 1 << (point.bits - 1)
            raw = max(-lim, min(lim - 1, raw))
    data = struct.pack(fmt, raw)
    words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    return words[::-1] if point.word_order == "little" else words


def raw_from_value(point: RegisterPoint, value: float, sf_value: int = 0) -> int | float:
    """Inverse scaling: the raw register number that reads back as ``value``."""
    mult = 10.0 ** sf_value if isinstance(point.scale_factor, str) else float(point.scale_factor)
    raw = value / mult
    return int(round(raw)) if point.type in INTEGER_TYPES else raw


@dataclass(frozen=True)
class PointReading:
    """A decoded point: the raw register number and the multiplier that scales it."""

    raw: int | float
    multiplier: float

    @property
    def value(self) -> float:
        return float(self.raw) * self.multiplier


def decode_points(points: Sequence[RegisterPoint], data: dict[tuple[int, int], int]) -> dict[str, PointReading | None]:
    """Decode every point from ``{(function, address): register}``; None when not implemented."""
    out: dict[str, PointReading | None] = {}
    by_name = {p.name: p for p in points}
    raws: dict[str, int | float | None] = {}
    for p in points:
        regs = [data[(p.function, p.address + i)] for i in range(p.count)]
        raw = decode_raw(p, regs)
        if p.not_implemented is not None and raw == p.not_implemented:
            raws[p.name] = None
        elif isinstance(raw, float) and not math.isfinite(raw):
            raws[p.name] = None
        else:
            raws[p.name] = raw
    for p in points:
        raw = raws[p.name]
        if raw is None:
            out[p.name] = None
            continue
        if isinstance(p.scale_factor, str):
            sf_point = by_name.get(p.scale_factor)
            if sf_point is None:
                raise AdapterError(f"{p.name}: scale-factor register {p.scale_factor!r} is not in the map",
                                   FailureKind.CONFIGURATION)
            sf = raws.get(sf_point.name)
            if sf is None or not -10 <= int(sf) <= 10:
                out[p.name] = None
                continue
            mult = 10.0 ** int(sf)
        else:
            mult = float(p.scale_factor)
        out[p.name] = PointReading(raw, mult)
    return out


def check_map(points: Sequence[RegisterPoint], source: str = "") -> None:
    """Refuse duplicate names and scale-factor names that are not points of the map."""
    names = [p.name for p in points]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"{source}: duplicate point name(s) {', '.join(sorted(dup))}")
    for p in points:
        if isinstance(p.scale_factor, str) and p.scale_factor not in names:
            raise ValueError(f"{source}: point {p.name} uses scale-factor register {p.scale_factor!r}, "
                             "which is not in the map")


# ------------------------------------------------------------------ errors


def modbus_exception_kind(code: int) -> FailureKind:
    """Illegal function/address/value are configuration errors; busy/gateway are transient."""
    return FailureKind.CONFIGURATION if code in (1, 2, 3) else FailureKind.TRANSIENT


EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                   4: "device failure", 5: "acknowledge", 6: "device busy", 10: "gateway path unavailable",
                   11: "gateway target failed to respond"}


def classify(exc: BaseException) -> FailureKind:
    """Map an exception from a device read to a failure kind."""
    if isinstance(exc, AdapterError):
        return exc.kind
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, ConnectionError, OSError)):
        return FailureKind.TRANSIENT
    from pymodbus.exceptions import ConnectionException, ModbusIOException

    if isinstance(exc, (ConnectionException, ModbusIOException)):
        return FailureKind.TRANSIENT
    return FailureKind.SYSTEM


# ------------------------------------------------------------------ reader


class ModbusReader:
    """Reads a fixed set of points from one device (one TCP connection, read codes only)."""

    def __init__(self, host: str, port: int, device_id: int, points: Sequence[RegisterPoint],
                 timeout: float = 1.0, name: str = "") -> None:
        self.host = host
        self.port = port
        self.device_id = device_id
        self.points = list(points)
        self.blocks = plan_reads(self.points)
        self.timeout = timeout
        self.name = name or f"{host}:{port}/{device_id}"
        self._client: Any = None

    async def _connected(self) -> Any:
        from pymodbus.client import AsyncModbusTcpClient

        if self._client is not None and self._client.connected:
            return self._client
        if self._client is not None:
            self._client.close()
        self._client = AsyncModbusTcpClient(self.host, port=self.port, timeout=self.timeout, retries=0,
                                            reconnect_delay=0, name=self.name)
        try:
            ok = await asyncio.wait_for(self._client.connect(), self.timeout)
        except TimeoutError:
            ok = False
        if not ok:
            self._client.close()
            self._client = None
            raise AdapterError(f"{self.name}: cannot connect to {self.host}:{self.port}", FailureKind.TRANSIENT)
        return self._client

    async def read_registers(self, block: ReadBlock) -> list[int]:
        """One read request; raises :class:`AdapterError` with a classified kind."""
        client = await self._connected()
        call = client.read_holding_registers if block.function == 3 else client.read_input_registers
        try:
            rr = await asyncio.wait_for(call(block.address, count=block.count, device_id=self.device_id),
                                        self.timeout)
        except TimeoutError:
            self.close()
            raise AdapterError(f"{self.name}: no answer within {self.timeout:g} s", FailureKind.TRANSIENT) from None
        except Exception as exc:
            self.close()
            raise AdapterError(f"{self.name}: {type(exc).__name__}: {exc}", classify(exc)) from exc
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0) or 0)
            what = EXCEPTION_NAMES.get(code, f"exception {code}")
            raise AdapterError(
                f"{self.name}: function {block.function} at {block.address} (+{block.count}) refused: {what}",
                modbus_exception_kind(code),
            )
        regs = list(rr.registers)
        if len(regs) < block.count:
            raise AdapterError(f"{self.name}: short answer ({len(regs)} of {block.count} registers)",
                               FailureKind.TRANSIENT)
        return regs[:block.count]

    async def read(self) -> dict[str, PointReading | None]:
        """Read every block and decode every point."""
        data: dict[tuple[int, int], int] = {}
        for b in self.blocks:
            regs = await self.read_registers(b)
            for i, r in enumerate(regs):
                data[(b.function, b.address + i)] = r
        return decode_points(self.points, data)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        self.close()


# ------------------------------------------------------------------ adapter base


class ModbusConnection(AdapterConfig):
    """Connection settings every Modbus TCP meter adapter shares."""

    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=1, le=65535)
    device_id: int = Field(default=1, ge=0, le=255)
    timeout: float = Field(default=1.0, gt=0, le=60)
    poll_seconds: float = Field(default=1.0, gt=0)
    interval_minutes: int = 15


class ModbusDeviceAdapter(MeterAdapter):
    """Base of the polled Modbus adapters: the poller drives :meth:`read` on a schedule.

    Subclasses return their points from :meth:`register_points` and may override
    :meth:`prepare` (run once before the first read, e.g. SunSpec discovery).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"poll"})
    Config: ClassVar[type[AdapterConfig]] = ModbusConnection

    def __init__(self, instance_id: str, config: Any = None, context: Any = None) -> None:
        super().__init__(instance_id, config, context)
        self._reader: ModbusReader | None = None

    # -- what the poller needs
    @property
    def name(self) -> str:
        return self.instance_id

    @property
    def cfg(self) -> ModbusConnection:
        return self.config  # type: ignore[return-value]

    @property
    def poll_seconds(self) -> float:
        return self.cfg.poll_seconds

    @property
    def timeout(self) -> float:
        return self.cfg.timeout

    @property
    def interval_minutes(self) -> int:
        return self.cfg.interval_minutes

    def register_points(self) -> list[RegisterPoint]:
        """The points this instance reads (subclasses build them from maps or models)."""
        return list(getattr(self.config, "points", []))

    def channel_points(self) -> list[Any]:
        from kwhub.hub.ingest.poller import PointSpec

        return [PointSpec.from_register(p) for p in self.register_points() if p.channel]

    def new_reader(self, points: Sequence[RegisterPoint] = ()) -> ModbusReader:
        c = self.cfg
        return ModbusReader(c.host, c.port, c.device_id, points, timeout=c.timeout, name=self.instance_id)

    async def prepare(self) -> None:
        """Hook run before the first read."""

    async def read(self) -> dict[str, PointReading | None]:
        """Read and decode all points once."""
        if self._reader is None:
            await self.prepare()
            self._reader = self.new_reader(self.register_points())
        return await self._reader.read()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def acheck(self) -> CheckResult:
        """Connect and read one register; classify a failure."""
        reader = self.new_reader()
        try:
            await self.prepare()
            pts = self.register_points()
            if not pts:
                return CheckResult.failure(FailureKind.CONFIGURATION, f"{self.instance_id}: no points to read")
            first = min(pts, key=lambda p: (p.function, p.address))
            regs = await reader.read_registers(ReadBlock(first.function, first.address, first.count))
            return CheckResult.success(f"read {first.name} at {first.address}", registers=regs)
        except AdapterError as exc:
            return CheckResult.failure(exc.kind, str(exc))
        except Exception as exc:
            return CheckResult.failure(classify(exc), f"{type(exc).__name__}: {exc}")
        finally:
            reader.close()

    def check(self) -> CheckResult:
        """Synchronous :meth:`acheck` (runs in a worker thread when a loop is already running)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acheck())
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.acheck()).result()
