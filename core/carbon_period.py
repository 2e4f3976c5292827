"""The typed emissions input of one settled period, and its computation.

:class:`EmissionsInput` is the ESG family's contract with the settlement: everything a
period's emissions follow, built from the runs' frozen allocation (each tenant's
``run_allocation`` split), the frozen :class:`~kwhub.core.carbon_activity.CarbonActivity` and
:class:`~kwhub.core.carbon_factors.FactorSet` the runs recorded, who resold which energy to
whom (the contracts that billed it), and the certificates each tenant claimed per hour.
:func:`compute_period` turns it into :class:`PeriodCarbon`: the source intensities, the
tenants' totals per method, source and gas, and each tenant's hourly matching.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kwhub.core.carbon_activity import CarbonActivity
from kwhub.core.carbon_factors import FactorSet
from kwhub.core.carbon_settings import EmissionsSettings
from kwhub.core.cfe import HourlyMatch, hour_index, hourly_matches
from kwhub.core.disclosure import RunLineage
from kwhub.core.emissions import Intensity, TenantEmissions, source_intensity, tenant_emissions


@dataclass
class EmissionsInput:
    """One period: activity, factors, the tenants x sources x intervals split ``kwh`` (T, S+1, N).

    ``sellers[(tenant, source)]`` is the party that sold the tenant that energy (the
    seller of the contract that billed it); ``certificates_wh[tenant]`` the Wh of granular
    certificates claimed for each hour of the period (:func:`kwhub.core.cfe.hour_index`);
    ``tracked`` the devices that issue certificates; ``plants`` whether the plants' own
    Scope 1 is reported from this input (one input per period does).
    """

    period: str
    activity: CarbonActivity
    factors: FactorSet
    tenants: list[str]
    kwh: np.ndarray
    runs: list[RunLineage] = field(default_factory=list)
    sellers: dict[tuple[str, str], str] = field(default_factory=dict)
    certificates_wh: dict[str, np.ndarray] = field(default_factory=dict)
    tracked: frozenset[str] = frozenset()
    plants: bool = True  # report the plants' Scope 1 from this input (False: an older activity of the period)
    settings: EmissionsSettings | None = None  # the settings the runs froze (None: the caller's)

    def __post_init__(self) -> None:
        s_n = len(self.activity.sources) + 1
        if self.kwh.shape != (len(self.tenants), s_n, self.activity.n):
            raise ValueError(f"period {self.period}: the split has shape {self.kwh.shape}, expected "
                             f"({len(self.tenants)}, {s_n}, {self.activity.n})")

    @property
    def hours(self) -> np.ndarray:
        return hour_index(self.activity.starts)[0]


@dataclass
class PeriodCarbon:
    """What :func:`compute_period` returns."""

    input: EmissionsInput
    intensity: Intensity
    tenants: TenantEmissions
    hourly: dict[str, HourlyMatch]


def compute_period(inp: EmissionsInput, settings: EmissionsSettings) -> PeriodCarbon:
    """Intensities, tenant totals and hourly matching of one period (vectorised, no per-interval loop).

    The intensities use the settings the runs froze (``inp.settings``) when there are any, so
    the report sums what the invoice lines carry even after the configuration changed.
    """
    intensity = source_intensity(inp.activity, inp.factors, inp.settings or settings, inp.tracked)
    totals = tenant_emissions(inp.tenants, inp.kwh, intensity)
    grid = [i for i, s in enumerate(inp.activity.sources) if s.role == "grid_import"]
    starts = inp.activity.starts
    hourly = hourly_matches(inp.tenants, inp.kwh, intensity, starts, grid, inp.certificates_wh, inp.factors.cfe_share)
    return PeriodCarbon(input=inp, intensity=intensity, tenants=totals, hourly=hourly)
