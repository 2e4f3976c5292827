"""ISO/RTO prices in the canonical time model.

* :class:`PriceSeries`: float $/MWh per UTC interval start, for valuing energy in
  reports (e.g. the export value of a month).
* :class:`MarketPrices`: the exact prices an ISO published for one node, market and
  version, held as integer price units (:mod:`kwhub.core.markets.fixed`), which shadow
  settlement multiplies. Every version is kept; a correction is a new version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import numpy as np

from kwhub.core.markets.fixed import PRICE_SCALE, price_decimal

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


@dataclass
class MarketPrices:
    """Exact ISO prices of one node and market: ``price_units[i]`` for the interval starting
    at ``starts[i]`` (UTC epoch seconds, sorted, unique), as published in ``version``.

    ``labels`` keep the ISO's own interval labels (``2024-11-03 HE02 DST=Y``) beside the
    UTC instants, so a line can be shown as the ISO shows it.
    """

    iso: str
    node: str
    market: MarketKind
    interval_minutes: int
    starts: np.ndarray  # int64
    price_units: np.ndarray  # int64, 10**-5 $/MWh
    version: int = 1
    labels: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        self.starts = np.asarray(self.starts, dtype=np.int64)
        self.price_units = np.asarray(self.price_units, dtype=np.int64)
        if len(self.starts) != len(self.price_units):
            raise ValueError("starts and price_units differ in length")
        if len(self.starts) > 1 and not np.all(np.diff(self.starts) > 0):
            raise ValueError(f"{self.iso} {self.node} {self.market}: interval starts are not sorted and unique")

    def __len__(self) -> int:
        return len(self.starts)

    def price_at(self, start: int) -> Decimal | None:
        """The $/MWh price of the interval starting at ``start`` (None when not published)."""
        i = int(np.searchsorted(self.starts, start))
        if i < len(self.starts) and self.starts[i] == start:
            return price_decimal(int(self.price_units[i]))
        return None

    def on_grid(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Price units for each of ``starts`` (each falls in one of this grid's intervals) and
        a mask of the intervals that have a price."""
        step = self.interval_minutes * 60
        base = starts - (starts % step)
        idx = np.clip(np.searchsorted(self.starts, base), 0, max(len(self.starts) - 1, 0))
        if len(self.starts) == 0:
            return np.zeros(len(starts), np.int64), np.zeros(len(starts), bool)
        hit = self.starts[idx] == base
        return np.where(hit, self.price_units[idx], 0), hit

    def as_series(self) -> PriceSeries:
        """The float view used for valuing energy in reports."""
        return PriceSeries(self.node, self.market, self.interval_minutes, self.starts.copy(),
                           self.price_units.astype(np.float64) / PRICE_SCALE)
