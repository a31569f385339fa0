"""A token bucket: at most ``rate`` acquisitions per second, bursts up to ``burst``."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    def __init__(self, rate: float, burst: int | None = None) -> None:
        self.rate = rate  # <= 0: unlimited
        self.burst = float(burst or max(1, int(rate)))
        self.tokens = self.burst
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                self._refill(time.monotonic())
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)

    def slow_down(self, seconds: float) -> None:
        """After a throttling reply: spend the bucket and wait ``seconds`` for more."""
        self.tokens = -seconds * self.rate if self.rate > 0 else 0.0
