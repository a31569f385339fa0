"""Connection leases passed from hand to hand inside one sender: a send that finds all of
its provider group's connections taken while this process holds some of them waits here,
and the next of those connections to close hands its lease straight over (the send then
connects to its own MX host) instead of giving it back to the shared pool, where another
send of this process, or another sender, might take it first. First come, first served."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque


class Handoff:
    def __init__(self) -> None:
        self.waiting: dict[str, deque[asyncio.Future[str]]] = defaultdict(deque)

    def wanted(self, key: str) -> bool:
        """Some send of this process waits for one of ``key``'s leases."""
        queue = self.waiting.get(key)
        while queue and queue[0].done():
            queue.popleft()
        return bool(queue)

    def give(self, key: str, lease: str) -> bool:
        """Hand ``lease`` to the longest-waiting send for ``key``; False when none waits."""
        queue = self.waiting.get(key)
        while queue:
            future = queue.popleft()
            if not future.done():
                future.set_result(lease)
                return True
        return False

    async def wait(self, key: str, timeout: float) -> str | None:
        """A lease handed over within ``timeout`` seconds, else None."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting[key].append(future)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            if future.done():  # handed over just as the time ran out
                return future.result()
            future.cancel()
            return None
        finally:
            if not self.waiting[key]:
                del self.waiting[key]
