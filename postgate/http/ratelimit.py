"""Fixed-window counters for the public endpoints: Redis when ``REDIS_URL`` is set (shared
by every api process), an in-process table otherwise (the embedded default).

``allow(key, limit, window_s)`` counts one hit and says whether it is within the limit.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Limiter(Protocol):
    def allow(self, key: str, limit: int, window_s: float) -> bool: ...


class MemoryLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, int], int] = {}

    def allow(self, key: str, limit: int, window_s: float) -> bool:
        window = int(time.time() // window_s)
        with self._lock:
            if len(self._hits) > 100_000:  # forget old windows
                self._hits = {k: v for k, v in self._hits.items() if k[1] >= window - 1}
            count = self._hits.get((key, window), 0) + 1
            self._hits[(key, window)] = count
        return count <= limit


class RedisLimiter:
    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix

    def allow(self, key: str, limit: int, window_s: float) -> bool:
        window = int(time.time() // window_s)
        name = f"{self.prefix}:rl:{key}:{window}"
        pipe = self.client.pipeline()
        pipe.incr(name)
        pipe.expire(name, int(window_s) + 1)
        count = int(pipe.execute()[0])
        return count <= limit


def limiter_for(redis_url: str, prefix: str) -> Limiter:
    return RedisLimiter(redis_url, prefix) if redis_url else MemoryLimiter()
