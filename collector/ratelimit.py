"""Per-application rate limits: a token bucket per app, counted in events (a batch of 100 costs
100), holding at most one second's worth. Each collector instance keeps its own buckets, so N
instances behind a balancer allow up to N times the rate; set the limit per instance."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._tokens = self.capacity
        self._clock = clock
        self._at = clock()

    def take(self, n: int) -> float:
        """Take ``n`` tokens; returns 0 when allowed, else the seconds to wait before retrying.
        A batch bigger than the bucket passes when the bucket is full and leaves it in debt, so
        that it is not refused forever and the average rate still holds."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        need = min(n, self.capacity)
        if need <= self._tokens:
            self._tokens -= n
            return 0.0
        return (need - self._tokens) / self.rate


class RateLimits:
    def __init__(self, default_rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.default_rate = default_rate
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, app: str, rate: float | None, n: int) -> int:
        """0 when allowed, else whole seconds for a Retry-After header (at least 1)."""
        want = rate or self.default_rate
        bucket = self._buckets.get(app)
        if bucket is None or bucket.rate != want:
            bucket = self._buckets[app] = TokenBucket(want, self._clock)
        wait = bucket.take(n)
        return 0 if wait == 0 else max(1, math.ceil(wait))
