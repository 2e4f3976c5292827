"""Market price series (ISO/RTO locational marginal prices) in the canonical time model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

MarketKind = Literal["DA", "RT"]


@dataclass
class PriceSeries:
    """LMPs ($/MWh) for one pricing node and market, keyed by UTC interval start."""

    node: str
    market: MarketKind
    interval_minutes: int
    starts: np.ndarray  # int64 epoch seconds, sorted, unique
    lmp: np.ndarray  # float64 $/MWh
    components: dict[str, np.ndarray] = field(default_factory=dict)  # energy, congestion, loss

    def __len__(self) -> int:
        return len(self.starts)

    def on_grid(self, starts: np.ndarray, interval_minutes: int) -> np.ndarray:
        """Price per interval of another grid (e.g. hourly DA onto 15-minute energy); NaN outside."""
        step = self.interval_minutes * 60
        idx = np.searchsorted(self.starts, starts - (starts % step))
        idx = np.clip(idx, 0, len(self.starts) - 1)
        hit = self.starts[idx] == starts - (starts % step)
        return np.where(hit, self.lmp[idx], np.nan)

    def value_of(self, starts: np.ndarray, kwh: np.ndarray, interval_minutes: int) -> float:
        """Dollar value of ``kwh`` per interval at these prices (intervals without a price count 0)."""
        price = self.on_grid(starts, interval_minutes)
        return float(np.nansum(price * kwh / 1000.0))
