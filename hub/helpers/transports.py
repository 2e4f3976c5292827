"""Pieces every invoice transport shares: retry settings, a richer result, safe file names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from kwhub.core.adapters import DeliveryResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class RetrySettings(BaseModel):
    """``retry = {...}`` of a transport instance: how the outbox relay retries it.

    Delay before attempt n+1 is ``uniform(0, min(cap_s, base_s * 2**(n-1)))`` (full
    jitter); after ``max_attempts`` failed attempts the document is dead-lettered. A send
    claimed longer than ``lease_s`` ago without an outcome is assumed lost and re-sent; keep
    it above the transport's timeouts.
    """

    model_config = ConfigDict(extra="forbid")

    base_s: float = Field(default=2.0, gt=0)
    cap_s: float = Field(default=600.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    lease_s: float = Field(default=120.0, gt=0)


@dataclass
class TransportResult(DeliveryResult):
    """A :class:`DeliveryResult` that also says whether the receiver already had the document."""

    duplicate: bool = False


def safe_filename(name: str) -> str:
    """A file name with no directory part and nothing outside ``[A-Za-z0-9._-]``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).lstrip(".")
    if not cleaned:
        raise ValueError(f"document file name {name!r} has no usable characters")
    return cleaned
