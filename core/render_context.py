"""What a renderer gets besides the invoice: usage, lineage, explain data and the envelope.

:class:`RenderContext` replaces the untyped ``extras`` mapping renderers used to receive.
It is built by the hub from the store for an issued invoice
(:func:`kwhub.hub.deliver.render_context.render_context`): the usage series and lineage come from the
settlement run's frozen inputs, so every delivery and every later re-rendering of the same
document shows the same data. ``envelope`` fixes what would otherwise depend on the moment
of rendering (creation time, EDI control number), so a document rendered again for the
same format has the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class UsageSeries:
    """Interval energy of the invoice's period: UTC ``datetime64[m]`` starts and kWh.

    ``source`` says what the series is (``allocated`` energy of the run, or the
    ``metered`` load channels it read).
    """

    starts: np.ndarray
    kwh: np.ndarray
    interval_minutes: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if self.starts.shape != self.kwh.shape:
            raise ValueError(f"usage: {self.starts.shape[0]} starts but {self.kwh.shape[0]} values")

    def __len__(self) -> int:
        return int(self.kwh.shape[0])

    @property
    def total_kwh(self) -> float:
        return float(np.nansum(self.kwh))

    @classmethod
    def of(cls, usage: Any) -> UsageSeries:
        """A series from another series, ``[(start, kWh), ...]`` pairs or ``(starts, values)`` arrays.

        Aware datetimes are converted to UTC; naive ones and dates are taken as UTC. Raises
        ``ValueError`` when the two sides differ in length.
        """
        if isinstance(usage, UsageSeries):
            return usage
        if isinstance(usage, tuple) and len(usage) == 2 and hasattr(usage[0], "__len__") \
                and not isinstance(usage[0], datetime | date):
            starts_raw, values_raw = usage
        else:
            pairs = list(usage)
            starts_raw = [p[0] for p in pairs]
            values_raw = [p[1] for p in pairs]
        if isinstance(starts_raw, np.ndarray) and starts_raw.dtype.kind == "M":
            starts = starts_raw.astype("datetime64[m]")
        else:
            stamps = []
            for s in starts_raw:
                if isinstance(s, datetime) and s.tzinfo is not None:
                    s = s.astimezone(UTC).replace(tzinfo=None)
                stamps.append(np.datetime64(s, "m"))
            starts = np.asarray(stamps, dtype="datetime64[m]") if stamps else np.empty(0, "datetime64[m]")
        return cls(starts, np.asarray(values_raw, dtype=np.float64))

    def daily(self) -> tuple[list[date], np.ndarray]:
        """kWh summed per UTC calendar day."""
        if not len(self):
            return [], np.empty(0)
        uniq, inverse = np.unique(self.starts.astype("datetime64[D]"), return_inverse=True)
        sums = np.bincount(inverse.reshape(-1), weights=np.nan_to_num(self.kwh), minlength=uniq.size)
        return [d.item() for d in uniq], sums


@dataclass(frozen=True)
class Lineage:
    """Where the invoice's numbers come from: the run and the channel-days it read."""

    run_id: str
    channel_days: int
    inputs_digest: str = ""
    statement_hash: str = ""
    channels: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    stale: bool = False


@dataclass(frozen=True)
class RunExplanation:
    """The run-level part of ``kwhub explain``: the grid and the allocation behind the lines."""

    interval_minutes: int
    intervals: int
    missing_intervals: int = 0
    allocation_method: str = ""
    sources_kwh: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Envelope:
    """What a document records of its own making: creation time and EDI control number."""

    created_at: datetime
    control_number: int | None = None


@dataclass(frozen=True)
class RenderContext:
    """Everything a renderer may use besides the invoice itself (all parts optional)."""

    usage: UsageSeries | None = None
    lineage: Lineage | None = None
    explain: RunExplanation | None = None
    envelope: Envelope | None = None

    def created_at(self) -> datetime | None:
        return self.envelope.created_at if self.envelope is not None else None

    def control_number(self) -> int | None:
        return self.envelope.control_number if self.envelope is not None else None
