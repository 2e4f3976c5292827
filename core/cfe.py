"""Hourly matching and the 24/7 carbon-free energy (CFE) score of one tenant.

Per UTC hour ``h`` of the period, from the tenant's frozen split:

* ``load_h``: every kWh allocated to the tenant;
* ``cfe_h``: carbon-free supply matched to it: on-site carbon-free energy allocated to it
  (solar, wind, SMR and the carbon-free share of battery energy, see
  :mod:`kwhub.core.emissions`), plus the granular certificates claimed for its consumption in
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

from kwhub.core.emissions import M_MKT, Intensity

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
    """Match one tenant's split ``kwh`` (S+1, N) hour by hour (see :func:`hourly_matches`)."""
    certs = None if certificates_wh is None else {tenant: certificates_wh}
    return hourly_matches([tenant], kwh[None], intensity, starts, grid_sources, certs, grid_cfe_share)[tenant]


def hourly_matches(tenants: list[str], kwh: np.ndarray, intensity: Intensity, starts: np.ndarray,
                   grid_sources: list[int], certificates_wh: dict[str, np.ndarray] | None = None,
                   grid_cfe_share: np.ndarray | float | None = None) -> dict[str, HourlyMatch]:
    """Match every tenant's split ``kwh`` (T, S+1, N) hour by hour, all tenants at once.

    ``grid_sources`` are the indices of grid-import sources; ``certificates_wh[tenant]`` the
    Wh of certificates the tenant claimed for each hour of :func:`hour_index` (absent: none);
    the grid's CFE share per interval or as one number.
    """
    hours, idx = hour_index(starts)
    n_h = hours.size
    if idx.size and np.any(np.diff(idx) < 0):
        raise ValueError("interval starts must be in order")
    bounds = np.flatnonzero(np.r_[True, np.diff(idx) != 0]) if idx.size else np.zeros(0, dtype=np.intp)
    present = idx[bounds]  # the hours that have intervals (all of them for a contiguous period)

    def per_hour(values: np.ndarray) -> np.ndarray:
        out = np.zeros((*values.shape[:-1], n_h))
        if bounds.size:
            out[..., present] = np.add.reduceat(values, bounds, axis=-1)
        return out

    grid_mask = np.zeros(kwh.shape[1], dtype=bool)
    grid_mask[grid_sources] = True
    load = per_hour(kwh.sum(axis=1))  # (T, H)
    onsite = per_hour(np.einsum("tsn,sn->tn", kwh, intensity.cfe_share))
    grid = per_hour(kwh[:, grid_mask].sum(axis=1))
    mkt = intensity.values[M_MKT]
    before = per_hour(np.einsum("tsn,sgn->tgn", kwh, mkt))  # (T, G, H)
    grid_kg = per_hour(np.einsum("tsn,sgn->tgn", kwh[:, grid_mask], mkt[grid_mask]))
    other_kg = before - grid_kg
    certs = np.zeros((len(tenants), n_h))
    for k, t in enumerate(tenants):
        c = (certificates_wh or {}).get(t)
        if c is not None:
            c = np.asarray(c, dtype=np.float64)
            if c.shape != (n_h,):
                raise ValueError(f"certificates of {t} cover {c.shape[0]} hours, the period has {n_h}")
            certs[k] = c / 1000.0
    if grid_cfe_share is None:
        share = np.zeros(n_h)
    elif np.isscalar(grid_cfe_share):
        share = np.full(n_h, float(grid_cfe_share))  # type: ignore[arg-type]
    else:
        counts = per_hour(np.ones(len(starts)))
        share = per_hour(np.asarray(grid_cfe_share, dtype=np.float64)) / np.maximum(counts, 1)
    non_cfe = np.maximum(load - onsite, 0.0)
    cover = np.minimum(certs, non_cfe)
    grid_cov = np.minimum(cover, grid)
    other = non_cfe - grid
    rest_cov = cover - grid_cov
    with np.errstate(divide="ignore", invalid="ignore"):
        keep_grid = np.where(grid > 0, 1.0 - grid_cov / np.where(grid > 0, grid, 1.0), 1.0)
        keep_other = np.where(other > 0, 1.0 - rest_cov / np.where(other > 0, other, 1.0), 1.0)
    after = grid_kg * keep_grid[:, None, :] + other_kg * np.clip(keep_other, 0.0, 1.0)[:, None, :]
    return {t: HourlyMatch(tenant=t, hours=hours, load_kwh=load[k], onsite_cfe_kwh=onsite[k],
                           certificates_kwh=certs[k], grid_kwh=grid[k], grid_cfe_share=share,
                           market_kg_before=before[k].T, market_kg=after[k].T)
            for k, t in enumerate(tenants)}
