"""SunSpec model layouts as data: where each point of a model's fixed block sits.

Point offsets, types, units and scale-factor names come from the model definitions shipped
in ``pysunspec2`` (``sunspec2.device.get_model_def``), never from hand-copied tables. The
``meters.sunspec`` adapter decodes devices with them; the demo's simulated devices are laid
out with the same definitions, so both sides of the loopback read one source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL_ID = 0xFFFF
MAX_MODELS = 64

# SunSpec point type -> (register type, "not implemented" raw value)
TYPE_MAP: dict[str, tuple[str, int | None]] = {
    "int16": ("int16", -0x8000), "sunssf": ("int16", -0x8000),
    "uint16": ("uint16", 0xFFFF), "enum16": ("uint16", 0xFFFF), "bitfield16": ("uint16", 0xFFFF),
    "count": ("uint16", None), "acc16": ("uint16", 0),
    "int32": ("int32", -0x80000000), "uint32": ("uint32", 0xFFFFFFFF), "enum32": ("uint32", 0xFFFFFFFF),
    "bitfield32": ("uint32", 0xFFFFFFFF), "acc32": ("uint32", 0), "ipaddr": ("uint32", None),
    "int64": ("int64", -0x8000000000000000), "uint64": ("uint64", 0xFFFFFFFFFFFFFFFF),
    "acc64": ("uint64", 0), "float32": ("float32", None), "float64": ("float64", None),
}
UNIT_MAP = {"Wh": "Wh", "W": "W", "A": "A", "V": "V", "Hz": "Hz", "VA": "VA", "var": "var", "Pct": "Pct", "C": "C"}


@dataclass(frozen=True)
class PointDef:
    """One fixed-block point of a model definition, at its offset from the model start."""

    name: str
    offset: int
    size: int
    sunspec_type: str
    sf: str | int | None
    units: str


@dataclass
class ModelLayout:
    """A model's fixed block as laid out by its definition."""

    model_id: int
    label: str
    length: int  # the L value: registers after ID and L
    points: dict[str, PointDef] = field(default_factory=dict)


@cache
def model_layout(model_id: int) -> ModelLayout:
    """Lay out model ``model_id`` from the pysunspec2 definition (fixed top-level group)."""
    from sunspec2 import device as ss_device
    from sunspec2 import mdef

    try:
        mdl = ss_device.get_model_def(model_id)
    except Exception as exc:
        raise KeyError(f"SunSpec model {model_id} has no definition in pysunspec2: {exc}") from None
    group = mdl[mdef.GROUP]
    offset = 0
    pts: dict[str, PointDef] = {}
    for p in group.get(mdef.POINTS, []):
        ptype = p[mdef.TYPE]
        size = mdef.point_type_info[ptype]["len"] or int(p.get(mdef.SIZE, 0))
        if not size:
            raise KeyError(f"model {model_id} point {p[mdef.NAME]} has no size")
        pts[p[mdef.NAME]] = PointDef(p[mdef.NAME], offset, size, ptype, p.get(mdef.SF), p.get(mdef.UNITS, ""))
        offset += size
    return ModelLayout(model_id, group.get(mdef.LABEL, ""), offset - 2, pts)
