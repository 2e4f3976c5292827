"""Sign-in attempts per client address: after ``limit`` failed sign-ins within ``window_s``
seconds, that address gets 429 (with ``Retry-After``) until the oldest failure is older than the window.

A success does not clear the count (on a shared address it would let a guesser go on).
At most ``max_clients`` addresses are tracked; the one with the oldest failure is dropped first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class SignInThrottle:
    """Failed sign-ins per client address in a sliding window."""

    def __init__(self, limit: int = 10, window_s: float = 60.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        q = self._failures.get(client)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._failures[client]
            return None
        return q

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again, or None when it may try now."""
        now = self.clock()
        with self._lock:
            q = self._recent(client, now)
            if q is None or len(q) < self.limit:
                return None
            return max(1, math.ceil(q[-self.limit] + self.window_s - now))

    def failed(self, client: str) -> None:
        """Count one failed sign-in of ``client``."""
        now = self.clock()
        with self._lock:
            q = self._recent(client, now)
            if q is None:
                if len(self._failures) >= self.max_clients:
                    oldest = min(self._failures, key=lambda c: self._failures[c][-1])
                    del self._failures[oldest]
                q = self._failures[client] = deque()
            q.append(now)
            while len(q) > self.limit:
                q.popleft()
