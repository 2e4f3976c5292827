"""Hourly matching and the 24/7 carbon-free energy (CFE) score of one tenant.

Per UTC hour ``h`` of the period, from the tenant's frozen split:

* ``load_h``: every kWh allocated to the tenant;
* ``cfe_h``: carbon-free supply matched to it: on-site carbon-free energy allocated to it
  (solar, wind, SMR and the carbon-free share of battery energy, see
  :mod:`core.emissions`), plus the granular certificates claimed for its consumption in
  that hour (contracted clean energy from elsewhere arrives this way too). A device that
  issues certificates counts only through the certificates claimed, never twice;
* ``gridCFE_h``: the grid's carbon-free share (``grid_cfe_share`` factor; 0 without one).

The score (Google, "24/7 Carbon-Free Energy: Methodologies and Metrics", 2021) is::

    CFE% = sum_h min(load_h, cfe_h + gridCFE_h x max(load_h - cfe_h, 0)) / sum_h load_h

Surplus in an hour never carries over to another hour. The market-based Scope 2 under
hourly matching: the certificates of an hour cover that hour's grid energy first, then
its other non-carbon-free energy pro rata; what no certificate covers keeps its
market-based figure (the residual mix for grid energy, the plant's own factor for on-site
energy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.emissions import M_MKT, Intensity

HOUR = 3600


@dataclass
class HourlyMatch:
    """One tenant's hours (UTC hour starts) and its matching (kWh; kg per gas)."""

    tenant: str
    hours: np.ndarray
    load_kwh: np.ndarray
    onsite_cfe_kwh: np.ndarray
    certificates_kwh: np.ndarray
    grid_kwh: np.ndarray
    grid_cfe_share: np.ndarray
    market_kg_before: np.ndarray  # (H, G) market-based, before certificates (what the invoice lines carry)
    market_kg: np.ndarray  # (H, G) after hourly matching

    @property
    def cfe_kwh(self) -> np.ndarray:
        return self.onsite_cfe_kwh + self.certificates_kwh

    @property
    def matched_kwh(self) -> np.ndarray:
        """Carbon-free supply used in its own hour (at most the load)."""
        return np.minimum(self.load_kwh, self.cfe_kwh)

    @property
    def score_kwh(self) -> np.ndarray:
        cfe = self.cfe_kwh
        return np.minimum(self.load_kwh, cfe + self.grid_cfe_share * np.maximum(self.load_kwh - cfe, 0.0))

    @property
    def cfe_pct(self) -> float:
        total = float(self.load_kwh.sum())
        return 100.0 * float(self.score_kwh.sum()) / total if total else 0.0

    @property
    def surplus_kwh(self) -> float:
        """Carbon-free supply beyond the load of its hour (lost: no carry-over)."""
        return float(np.maximum(self.cfe_kwh - self.load_kwh, 0.0).sum())


def hour_index(starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hour starts, index of each interval's hour)`` for interval starts (epoch s)."""
    h = starts // HOUR
    first = int(h[0]) if h.size else 0
    idx = (h - first).astype(np.intp)
    n_h = int(idx[-1]) + 1 if idx.size else 0
    return (first + np.arange(n_h, dtype=np.int64)) * HOUR, idx


def hourly_match(tenant: str, kwh: np.ndarray, intensity: Intensity, starts: np.ndarray,
                 grid_sources: list[int], certificates_wh: np.ndarray | None = None,
                 grid_cfe_share: np.ndarray | float | None = None) -> HourlyMatch:
    """Match one tenant's split ``kwh`` (S+1, N) hour by hour.

    ``grid_sources`` are the indices of grid-import sources; ``certificates_wh`` the Wh of
    certificates claimed for each hour of :func:`hour_index` (None: none); the grid's CFE
    share per interval or as one number.
    """
    hours, idx = hour_index(starts)
    n_h = hours.size

    def per_hour(values: np.ndarray) -> np.ndarray:
        return np.bincount(idx, weights=values, minlength=n_h)

    load = per_hour(kwh.sum(axis=0))
    onsite = per_hour((kwh * intensity.cfe_share).sum(axis=0))
    grid_mask = np.zeros(kwh.shape[0], dtype=bool)
    grid_mask[grid_sources] = True
    grid = per_hour(kwh[grid_mask].sum(axis=0))
    mkt = np.einsum("sn,sgn->gn", kwh, intensity.values[M_MKT])  # (G, N)
    mkt_grid = np.einsum("sn,sgn->gn", kwh[grid_mask], intensity.values[M_MKT, grid_mask])
    before = np.stack([per_hour(row) for row in mkt], axis=1)  # (H, G)
    grid_kg = np.stack([per_hour(row) for row in mkt_grid], axis=1)
    other_kg = before - grid_kg
    certs = np.zeros(n_h) if certificates_wh is None else np.asarray(certificates_wh, dtype=np.float64) / 1000.0
    if certs.shape != (n_h,):
        raise ValueError(f"certificates cover {certs.shape[0]} hours, the period has {n_h}")
    if grid_cfe_share is None:
        share = np.zeros(n_h)
    elif np.isscalar(grid_cfe_share):
        share = np.full(n_h, float(grid_cfe_share))  # type: ignore[arg-type]
    else:
        counts = np.bincount(idx, minlength=n_h)
        share = np.bincount(idx, weights=np.asarray(grid_cfe_share, dtype=np.float64), minlength=n_h) / np.maximum(counts, 1)
    non_cfe = np.maximum(load - onsite, 0.0)
    cover = np.minimum(certs, non_cfe)
    grid_cov = np.minimum(cover, grid)
    other = non_cfe - grid
    rest_cov = cover - grid_cov
    with np.errstate(divide="ignore", invalid="ignore"):
        keep_grid = np.where(grid > 0, 1.0 - grid_cov / np.where(grid > 0, grid, 1.0), 1.0)
        keep_other = np.where(other > 0, 1.0 - rest_cov / np.where(other > 0, other, 1.0), 1.0)
    after = grid_kg * keep_grid[:, None] + other_kg * np.clip(keep_other, 0.0, 1.0)[:, None]
    return HourlyMatch(tenant=tenant, hours=hours, load_kwh=load, onsite_cfe_kwh=onsite, certificates_kwh=certs,
                       grid_kwh=grid, grid_cfe_share=share, market_kg_before=before, market_kg=after)
