"""A batch's send outcomes, written as they happen in small bulk flushes.

The sender hands each message's outcome to :class:`Outcomes` the moment the provider
answers; a flush writes what has gathered once ``count`` outcomes are waiting or
``interval`` seconds after the first of them, whichever comes first, one flush at a time.
So a sender killed mid-batch leaves unrecorded only the sends in flight and the last
unflushed few: those rows are still ``sending`` and are retried when their lease runs
out; everything already flushed stays ``sent`` and is never sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Outcomes(Generic[T]):
    def __init__(self, write: Callable[[list[T]], Awaitable[None]], count: int,
                 interval: float) -> None:
        self.write, self.count, self.interval = write, count, interval
        self.pending: list[T] = []
        self.flushes: list[asyncio.Task[None]] = []
        self.lock = asyncio.Lock()
        self.timer: asyncio.TimerHandle | None = None
        self.written = 0

    def add(self, outcome: T) -> None:
        self.pending.append(outcome)
        if len(self.pending) >= self.count:
            self._flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.interval, self._flush)

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pending:
            items, self.pending = self.pending, []
            self.flushes = [f for f in self.flushes if not f.done()]
            self.flushes.append(asyncio.create_task(self._write(items)))

    async def _write(self, items: list[T]) -> None:
        async with self.lock:  # in order, one at a time
            await self.write(items)
            self.written += len(items)

    async def close(self) -> None:
        """Write what is left and wait for every flush; the first failure is raised."""
        self._flush()
        results = await asyncio.gather(*self.flushes, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
