"""``meters.sunspec``: SunSpec Modbus devices, discovered and decoded from the model definitions.

Discovery looks for the ``SunS`` marker at 40000, 0 and 50000, then walks the model chain
(ID, length) up to the end marker 0xFFFF. Point offsets, types, units and scale-factor
names come from the model definitions shipped in ``pysunspec2`` (``sunspec2.device
.get_model_def``), never from hand-copied tables. Energy totals (``TotWhImp``, ``WH``,
``TotWhInj``...) become energy channels through their ``*_SF`` scale factors.

Example::

    [[adapters]]
    type = "meters.sunspec"
    id = "pv_meter"
    [adapters.config]
    host = "10.0.5.10"
    channels = { "203.TotWhImp" = "hall_a.load" }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kwhub.core.adapters import AdapterConfig, AdapterError, FailureKind
from kwhub.core.hookspecs import hookimpl
from kwhub.hub.helpers.modbus import (
    ModbusConnection,
    ModbusDeviceAdapter,
    ModbusReader,
    ReadBlock,
    RegisterPoint,
)
from kwhub.hub.helpers.sunspec_models import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    MAX_MODELS,
    SUNS_MARKER,
    TYPE_MAP,
    UNIT_MAP,
    ModelLayout,
    model_layout,
)


def register_point(layout: ModelLayout, start: int, name: str, *, channel: str = "", prefix: str = "",
                   function: int = 3) -> list[RegisterPoint]:
    """The register point for ``name`` (plus its scale-factor point) in a model at ``start``."""
    pd = layout.points.get(name)
    if pd is None:
        raise KeyError(f"model {layout.model_id} has no point {name!r}")
    if pd.sunspec_type not in TYPE_MAP:
        raise KeyError(f"model {layout.model_id} point {name} of type {pd.sunspec_type} is not numeric")
    rtype, na = TYPE_MAP[pd.sunspec_type]
    out: list[RegisterPoint] = []
    scale: float | str = 1.0
    if isinstance(pd.sf, str):
        out += register_point(layout, start, pd.sf, prefix=prefix, function=function)
        scale = prefix + pd.sf
    elif isinstance(pd.sf, int):
        scale = 10.0 ** pd.sf
    unit = UNIT_MAP.get(pd.units, "")
    if unit == "Wh" and rtype.startswith(("uint", "int")):
        kind = "energy_counter"
    elif unit == "W":
        kind = "power"
    else:
        kind = "gauge"
    out.append(RegisterPoint(name=prefix + name, address=start + pd.offset, type=rtype, function=function,  # type: ignore[arg-type]
                             scale_factor=scale, unit=unit, channel=channel, kind=kind if channel else "gauge",  # type: ignore[arg-type]
                             not_implemented=na))
    return out


@dataclass
class DiscoveredModel:
    """A model found on the device: id, address of its ID register, length."""

    model_id: int
    address: int
    length: int

    @property
    def known(self) -> bool:
        try:
            model_layout(self.model_id)
        except KeyError:
            return False
        return True


@dataclass
class SunSpecDevice:
    """What discovery found: base address and the model chain."""

    base: int
    models: list[DiscoveredModel]
    info: dict[str, str] = field(default_factory=dict)  # common model Mn, Md, SN, Vr

    def model(self, model_id: int) -> DiscoveredModel:
        for m in self.models:
            if m.model_id == model_id:
                return m
        raise KeyError(model_id)

    @property
    def model_ids(self) -> list[int]:
        return [m.model_id for m in self.models]


def _regs_to_str(regs: list[int]) -> str:
    return b"".join(r.to_bytes(2, "big") for r in regs).split(b"\x00", 1)[0].decode("ascii", "replace").strip()


async def discover(reader: ModbusReader, base_address: int | None = None, function: int = 3) -> SunSpecDevice:
    """Find the SunS marker and walk the model chain."""
    bases = (base_address,) if base_address is not None else BASE_ADDRESSES
    base = None
    for b in bases:
        try:
            regs = await reader.read_registers(ReadBlock(function, b, 2))
        except AdapterError as exc:
            if exc.kind != FailureKind.CONFIGURATION:  # transient: the device is not reachable
                raise
            continue
        if tuple(regs) == SUNS_MARKER:
            base = b
            break
    if base is None:
        raise AdapterError(f"{reader.name}: no SunSpec marker 'SunS' at {', '.join(map(str, bases))}",
                           FailureKind.CONFIGURATION)
    models: list[DiscoveredModel] = []
    addr = base + 2
    for _ in range(MAX_MODELS):
        mid, length = await reader.read_registers(ReadBlock(function, addr, 2))
        if mid == END_MODEL_ID:
            break
        models.append(DiscoveredModel(mid, addr, length))
        addr += 2 + length
    dev = SunSpecDevice(base, models)
    if 1 in dev.model_ids:
        m1 = dev.model(1)
        lay = model_layout(1)
        regs = await reader.read_registers(ReadBlock(function, m1.address, min(m1.length + 2, 125)))
        for name in ("Mn", "Md", "Vr", "SN"):
            p = lay.points[name]
            dev.info[name] = _regs_to_str(regs[p.offset:p.offset + p.size])
    return dev


# default energy point of each model family
DEFAULT_ENERGY_POINT = {201: "TotWhImp", 202: "TotWhImp", 203: "TotWhImp", 204: "TotWhImp",
                        101: "WH", 102: "WH", 103: "WH", 701: "TotWhInj"}


class SunSpecConfig(ModbusConnection):
    """Connection, optional fixed base address, and point -> channel mapping.

    ``channels`` keys are ``"<model>.<point>"`` (``"203.TotWhImp"``) or a bare model id
    (``"203"``) meaning that model's total energy point.
    """

    base_address: int | None = None
    function: int = 3
    channels: dict[str, str] = Field(default_factory=dict)

    @field_validator("function")
    @classmethod
    def _read_only(cls, v: int) -> int:
        if v not in (3, 4):
            raise ValueError(f"function code {v} is not allowed: only read codes 3 and 4")
        return v

    @field_validator("channels")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            mid = key.split(".", 1)[0]
            if not mid.isdigit():
                raise ValueError(f"channel key {key!r} must be '<model id>.<point>' or '<model id>'")
            if "." not in key and int(mid) not in DEFAULT_ENERGY_POINT:
                raise ValueError(f"model {mid} has no default energy point; name the point ('{mid}.<point>')")
        return v


class SunSpecMeter(ModbusDeviceAdapter):
    """Polls a SunSpec meter, inverter or storage device."""

    type_id: ClassVar[str] = "meters.sunspec"
    title: ClassVar[str] = "SunSpec Modbus device (models from pysunspec2)"
    Config: ClassVar[type[AdapterConfig]] = SunSpecConfig

    def __init__(self, instance_id: str, config: Any = None, context: Any = None) -> None:
        super().__init__(instance_id, config, context)
        self.device: SunSpecDevice | None = None

    async def prepare(self) -> None:
        if self.device is not None:
            return
        reader = self.new_reader()
        try:
            self.device = await discover(reader, self.config.base_address, self.config.function)  # type: ignore[attr-defined]
        finally:
            reader.close()

    async def discover(self) -> SunSpecDevice:
        """Run discovery (again) and return the device description."""
        self.device = None
        await self.prepare()
        assert self.device is not None
        return self.device

    def _points(self, discovered: bool) -> list[RegisterPoint]:
        pts: dict[str, RegisterPoint] = {}
        for key, channel in self.config.channels.items():  # type: ignore[attr-defined]
            mid_s, _, pname = key.partition(".")
            mid = int(mid_s)
            pname = pname or DEFAULT_ENERGY_POINT[mid]
            start = 0
            if discovered:
                assert self.device is not None
                try:
                    start = self.device.model(mid).address
                except KeyError:
                    raise AdapterError(f"{self.instance_id}: device has no model {mid} "
                                       f"(found {self.device.model_ids})", FailureKind.CONFIGURATION) from None
            try:
                found = register_point(model_layout(mid), start, pname, channel=channel, prefix=f"{mid}.",
                                       function=self.config.function)  # type: ignore[attr-defined]
            except KeyError as exc:
                raise AdapterError(f"{self.instance_id}: {exc.args[0]}", FailureKind.CONFIGURATION) from None
            for p in found:
                pts.setdefault(p.name, p)
        return list(pts.values())

    def register_points(self) -> list[RegisterPoint]:
        if self.device is None:
            raise AdapterError(f"{self.instance_id}: SunSpec device not discovered yet", FailureKind.SYSTEM)
        return self._points(discovered=True)

    def channel_points(self) -> list[Any]:
        """Known from the model definitions alone (addresses come with discovery)."""
        from kwhub.hub.ingest.poller import PointSpec

        return [PointSpec.from_register(p) for p in self._points(discovered=False) if p.channel]


@hookimpl
def kwhub_register_meter_adapters(register):  # type: ignore[no-untyped-def]
    register(SunSpecMeter)
