"""The ``[emissions]`` settings: which factors, which GWP set, which accounting choices.

Every choice the accounting leaves open is a setting with a documented default, so that a
report can name it: the GWP set, the grid region, the factor editions, how on-site supply
is treated by the location-based method, the consolidation approach, the form of the
T&D loss term and what stands in when a region has no residual mix.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kwhub.core.factors import Factor, FactorGas, FactorKind


class HourlyFactorFile(BaseModel):
    """``[[emissions.hourly]]``: a time series of a factor read from a CSV (``start,value``)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    version: str
    source: str
    path: str
    region: str = ""
    activity: str = "grid_location"
    gas: FactorGas = "co2e"
    unit: str = "kg/MWh"
    kind: FactorKind = "average"
    step_minutes: int = Field(default=60, gt=0)


class EmissionsSettings(BaseModel):
    """The ``[emissions]`` table (see ``docs/configuration.md``)."""

    model_config = ConfigDict(extra="forbid")

    gwp_set: Literal["AR4", "AR5", "AR6"] = "AR5"
    region: str = ""  # eGRID subregion; empty: the grid_region of the campus' site
    editions: dict[str, str] = Field(default_factory=dict)  # activity -> pinned version
    factors: list[Factor] = Field(default_factory=list)
    hourly: list[HourlyFactorFile] = Field(default_factory=list)
    # location-based figure of on-site (behind-the-meter) supply: the plant's own factor, or the grid average
    btm_location_basis: Literal["plant", "grid"] = "plant"
    # who reports a plant's Scope 1: its owners by share, or the campus operator for all of it
    consolidation: Literal["equity_share", "operational_control"] = "equity_share"
    operator: str = ""  # the party that operates the campus (default: the one party with role operator)
    # T&D losses (3c): consumption x GGL / (1 - GGL) ("gross_up") or consumption x GGL ("simple")
    loss_term: Literal["gross_up", "simple"] = "gross_up"
    # market-based grid energy without an instrument in a region without a residual mix
    residual_mix_fallback: Literal["location", "error"] = "location"
    carbon_free_kinds: list[str] = Field(default_factory=lambda: ["solar", "wind", "smr"])
