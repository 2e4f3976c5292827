"""The ``[api]`` and ``[service]`` tables of ``kwhub.toml``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EVENT_TYPES = ("invoice.issued", "run.held", "delivery.dead")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiSettings(_Strict):
    """``[api]``: keys, pages and caching of the REST API."""

    enabled: bool = True
    key_cache_s: float = Field(default=5.0, ge=0)  # a revoked key stops working within this (other processes)
    key_default_days: int = Field(default=90, ge=1)
    key_max_days: int = Field(default=366, ge=1)
    page_limit: int = Field(default=100, ge=1)
    page_limit_max: int = Field(default=1000, ge=1)
    readings_limit_max: int = Field(default=10_000, ge=96)  # intervals per readings page


class WebhookSubscription(_Strict):
    """``[[service.webhooks]]``: events sent through a transport instance (signed, idempotency-keyed)."""

    id: str
    transport: str
    events: list[Literal["invoice.issued", "run.held", "delivery.dead"]] = Field(
        default_factory=lambda: list(EVENT_TYPES))
    party: str = ""  # only events about this party's documents (a tenant's system)


class ClockSettings(_Strict):
    """``[service.clock]``: a simulated clock for rehearsals and tests (never in production)."""

    start: datetime
    speed: float = Field(default=1.0, gt=0)

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-01T00:00:00-04:00")
        return v


class ServiceSettings(_Strict):
    """``[service]``: the ``kwhub serve`` process."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=32)
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    access_log: bool = True  # one structured line per API request
    api_nice: int = Field(default=5, ge=0, le=19)  # workers > 1 with the scheduler: API processes yield CPU to polls
    instance: str = ""  # the owner name in job history (default host:pid)
    clock: ClockSettings | None = None
    webhooks: list[WebhookSubscription] = Field(default_factory=list)
