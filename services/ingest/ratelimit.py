"""Per-write-key token buckets (off unless ``TEND_INGEST__RATE_LIMIT_PER_S`` is set)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_at: float


class RateLimiter:
    """A token bucket per key: ``rate_per_s`` events per second, at most ``burst`` saved up.

    A request for ``n`` events passes when the bucket holds ``min(n, burst)`` tokens and then
    takes all ``n`` (the bucket may go into debt), so a batch bigger than the burst is possible
    but is paid for before the next one passes.
    """

    def __init__(
        self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}

    def acquire(self, key_id: int, n: int) -> int | None:
        """None when ``n`` events may pass (they are taken), else the seconds to wait."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.updated_at) * self.rate_per_s
            )
            bucket.updated_at = now
        needed = min(n, self.burst)
        if bucket.tokens >= needed:
            bucket.tokens -= n
            return None
        return max(1, math.ceil((needed - bucket.tokens) / self.rate_per_s))
