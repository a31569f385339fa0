"""A batch's send outcomes, written as they happen in small bulk flushes.

The sender hands each message's outcome to :class:`Outcomes` the moment the provider
answers; a flush writes what has gathered once ``count`` outcomes are waiting or
``interval`` seconds after the first of them, whichever comes first, one flush at a time.
So a sender killed mid-batch leaves unrecorded only the sends in flight and the last
unflushed few: those rows are still ``sending`` and are retried when their lease runs
out; everything already flushed stays ``sent`` and is never sent again. A flush that
fails (the database is away) keeps its outcomes, and closing the batch tries them again
for a few seconds before giving up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
RETRIES = (0.5, 1.0, 2.0, 4.0)  # seconds between tries to write what a flush could not


class Outcomes(Generic[T]):
    def __init__(
        self, write: Callable[[list[T]], Awaitable[None]], count: int, interval: float
    ) -> None:
        self.write, self.count, self.interval = write, count, interval
        self.pending: list[T] = []
        self.flushes: list[asyncio.Task[None]] = []
        self.lock = asyncio.Lock()
        self.timer: asyncio.TimerHandle | None = None
        self.unwritten: list[T] = []
        self.error: Exception | None = None

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
            try:
                await self.write(items)
            except Exception as exc:  # the database is away: keep them for close()
                self.unwritten.extend(items)
                self.error = exc
                return

    async def close(self, retries: tuple[float, ...] = RETRIES) -> None:
        """Write what is left; outcomes a flush could not write are tried again after
        each of ``retries`` seconds, and if they still cannot be written the last error is
        raised (their rows stay ``sending`` and are retried when their lease runs out)."""
        self._flush()
        await asyncio.gather(*self.flushes)
        for delay in retries:
            if not self.unwritten:
                return
            await asyncio.sleep(delay)
            items, self.unwritten = self.unwritten, []
            await self._write(items)
        if self.unwritten and self.error is not None:
            raise self.error
