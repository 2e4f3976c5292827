"""The ``[scheduler]`` table of ``kwhub.toml``: which jobs run, how often, and the close schedule."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WatchSettings(_Strict):
    """A watched folder: new files in it are ingested with one meter adapter instance."""

    id: str = ""  # default: the folder
    folder: str
    adapter: str
    pattern: str = "*"
    channel: str | None = None
    every_s: float = Field(default=60.0, gt=0)
    min_age_s: float = Field(default=5.0, ge=0)  # a file younger than this may still be written


class CloseTiming(_Strict):
    """When a period is settled: ``initial_days`` / ``final_days`` after it ends, at ``at`` local time."""

    initial_days: int | None = Field(default=None, ge=0)
    final_days: int | None = Field(default=None, ge=0)
    at: str | None = None
    enabled: bool = True

    @field_validator("at")
    @classmethod
    def _hhmm(cls, v: str | None) -> str | None:
        if v is not None and not _HHMM.match(v):
            raise ValueError("must be HH:MM (24-hour local time of the contract)")
        return v


class CloseSettings(_Strict):
    """``[scheduler.close]``: the close schedule of every contract (per contract overrides)."""

    enabled: bool = True
    every_s: float = Field(default=900.0, gt=0)  # how often to look for due periods
    initial_days: int = Field(default=3, ge=0)
    final_days: int | None = Field(default=30, ge=0)
    at: str = "06:00"
    lookback_periods: int = Field(default=3, ge=1, le=36)
    contracts: dict[str, CloseTiming] = Field(default_factory=dict)

    @field_validator("at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("must be HH:MM (24-hour local time of the contract)")
        return v

    @model_validator(mode="after")
    def _order(self) -> CloseSettings:
        if self.final_days is not None and self.final_days <= self.initial_days:
            raise ValueError(f"final_days ({self.final_days}) must come after initial_days ({self.initial_days})")
        return self


class JobSettings(_Strict):
    """``[[scheduler.jobs]]``: a further job, a plain function of a Hub named ``package.module:function``."""

    id: str
    function: str
    every_s: float | None = Field(default=None, gt=0)
    cron: str | None = None  # five fields, in [hub] timezone
    enabled: bool = True

    @field_validator("function")
    @classmethod
    def _path(cls, v: str) -> str:
        if not _CALLABLE.match(v):
            raise ValueError("must be 'package.module:function'")
        return v

    @model_validator(mode="after")
    def _one_trigger(self) -> JobSettings:
        if (self.every_s is None) == (self.cron is None):
            raise ValueError("give exactly one of every_s and cron")
        return self


class SchedulerSettings(_Strict):
    """The ``[scheduler]`` table."""

    enabled: bool = True
    standby_retry_s: float = Field(default=5.0, gt=0)  # a standby tries to become the owner this often
    heartbeat_s: float = Field(default=5.0, gt=0)
    max_workers: int = Field(default=4, ge=1, le=64)
    poll: bool = True  # poll every meters.modbus / meters.sunspec / meters.oem_telemetry instance
    poll_flush_s: float = Field(default=5.0, gt=0)
    mqtt: bool = True  # read every meters.mqtt instance
    mqtt_flush_s: float = Field(default=60.0, gt=0)
    relay_every_s: float = Field(default=10.0, gt=0)  # outbox relay (and webhook events)
    vee_every_s: float = Field(default=3600.0, gt=0)
    vee_lookback_days: int = Field(default=3, ge=1, le=62)
    verify_cron: str = "30 2 * * *"  # `kwhub verify` once a day (five cron fields, [hub] timezone)
    verify_anchor: str | None = None  # an anchor file outside the database (relative: to kwhub.toml's folder)
    disabled: list[Literal["relay", "vee", "close", "verify", "markets"]] = Field(default_factory=list)
    watch: list[WatchSettings] = Field(default_factory=list)
    close: CloseSettings = Field(default_factory=CloseSettings)
    jobs: list[JobSettings] = Field(default_factory=list)

    @field_validator("verify_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError("must be five cron fields (minute hour day month weekday), e.g. '30 2 * * *'")
        return v
