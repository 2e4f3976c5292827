"""When the outbox tries a delivery again: exponential backoff with full jitter, the lease a
relay holds on a row it sends, and the deadline of one send (pure; the relay applies it)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

LEASE_USE = 0.9  # a send ends by this fraction of the lease after the claim


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff, lease and deadline settings for one transport instance."""

    base_s: float = 2.0
    cap_s: float = 600.0
    max_attempts: int = 8
    lease_s: float = 120.0
    deadline_s: float | None = None

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before attempt ``attempt + 1``: full jitter over the exponential ceiling."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(attempt - 1, 0)))
        return (rng or random).uniform(0.0, ceiling)

    @property
    def send_deadline_s(self) -> float:
        """How long one send may take: ``deadline_s`` (default half the lease), below the lease."""
        wanted = self.deadline_s if self.deadline_s is not None else self.lease_s / 2
        return min(wanted, self.lease_s * LEASE_USE)

    @classmethod
    def for_transport(cls, transport: Any, default: RetryPolicy | None = None) -> RetryPolicy:
        """The policy in ``transport.config.retry`` (any object with these fields), else ``default``."""
        base = default or cls()
        settings = getattr(getattr(transport, "config", None), "retry", None)
        if settings is None:
            return base
        deadline = getattr(settings, "deadline_s", base.deadline_s)
        return cls(
            base_s=float(getattr(settings, "base_s", base.base_s)),
            cap_s=float(getattr(settings, "cap_s", base.cap_s)),
            max_attempts=int(getattr(settings, "max_attempts", base.max_attempts)),
            lease_s=float(getattr(settings, "lease_s", base.lease_s)),
            deadline_s=None if deadline is None else float(deadline),
        )
