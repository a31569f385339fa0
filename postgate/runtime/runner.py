"""The base runner: owns the loop, acks, dead-lettering and graceful drain.

A subclass names its ``queue`` and writes one ``dispose(body)`` coroutine. When it
returns, the message is acked. When it raises :class:`MessageError` (bad input) or
any unexpected exception (a bug), the message goes to the dead-letter queue with the
error, recorded in the ``dead_letter`` table for operators, and is acked: it is never
lost and never blocks the queue. When it raises a transient infrastructure error
(database or network down), the message is requeued and the runner backs off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from kombu.message import Message
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError, OperationalError

from postgate.core.message import MessageError
from postgate.observability.metrics import DEAD_LETTERS, JOBS
from postgate.runtime import dead_letters
from postgate.runtime.broker import Broker
from postgate.runtime.context import Context
from postgate.store import tables as t

log = logging.getLogger("postgate.runner")

TRANSIENT = (OperationalError, ConnectionError, TimeoutError)


def _body(message: Message) -> bytes:
    body: Any = message.body
    return body.encode() if isinstance(body, str) else bytes(body)


class Runner:
    queue: str = ""
    concurrency: int = 1

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.broker: Broker = ctx.broker()
        self._inflight: set[asyncio.Task[None]] = set()
        self._restore_at = 0.0  # when to hand back a dead worker's messages next

    async def dispose(self, body: bytes) -> None:
        raise NotImplementedError

    async def setup(self) -> None:
        """Open connections before the first job."""

    async def teardown(self) -> None:
        """Close connections after the last job."""

    async def _set_up(self, stop: asyncio.Event) -> bool:
        """``setup``, retried while the database or a service is down (a worker started
        during an outage waits for it instead of exiting); False if stopped meanwhile."""
        while True:
            try:
                await self.setup()
                return True
            except TRANSIENT as exc:
                log.warning("%s worker cannot start yet, retrying: %s", self.queue, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                self.broker.close()
                return False

    async def run(self, stop: asyncio.Event) -> None:
        """Take jobs until ``stop`` is set, then finish the ones in flight (graceful drain)."""
        if not await self._set_up(stop):
            return
        idle = self.ctx.settings.poll_interval_s
        try:
            while not stop.is_set():
                if len(self._inflight) >= self.concurrency:
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                message = await self._get()
                if message is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), idle)
                    continue
                task = asyncio.create_task(self._handle(message))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if self._inflight:
                await asyncio.wait(self._inflight)
        finally:
            await self.teardown()
            self.broker.close()

    async def _get(self) -> Message | None:
        try:
            if time.monotonic() >= self._restore_at:
                self._restore_at = time.monotonic() + max(
                    1.0, self.ctx.settings.broker_visibility_timeout_s / 4
                )
                self.broker.restore_unacked()
            return self.broker.get(self.queue)
        except Exception as exc:  # broker down: back off, reconnect on next call
            log.warning("queue %s unavailable: %s", self.queue, exc)
            await asyncio.sleep(1.0)
            self.broker.close()
            self.broker = self.ctx.broker()
            return None

    async def _handle(self, message: Message) -> None:
        body = _body(message)
        try:
            await self.dispose(body)
        except MessageError as exc:
            await self._dead_letter(message, body, str(exc))
            JOBS.labels(self.queue, "dead_letter").inc()
        except TRANSIENT as exc:
            log.warning("transient failure on %s, requeued: %s", self.queue, exc)
            JOBS.labels(self.queue, "requeued").inc()
            _settle(message.requeue)
            await asyncio.sleep(1.0)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                _settle(message.requeue)
                JOBS.labels(self.queue, "requeued").inc()
                await asyncio.sleep(1.0)
            else:
                await self._dead_letter(message, body, _crash(exc))
                JOBS.labels(self.queue, "dead_letter").inc()
        except Exception as exc:
            log.exception("job on %s crashed; dead-lettered", self.queue)
            await self._dead_letter(message, body, _crash(exc))
            JOBS.labels(self.queue, "dead_letter").inc()
        else:
            _settle(message.ack)
            JOBS.labels(self.queue, "ok").inc()

    async def _dead_letter(self, message: Message, body: bytes, error: str) -> None:
        log.error("dead letter from %s: %s", self.queue, error)
        self.broker.publish("dead", body, headers={"error": error[:2000], "queue": self.queue})
        await asyncio.to_thread(self._record_dead_letter, body, error)
        DEAD_LETTERS.labels(self.queue).inc()
        _settle(message.ack)

    def _record_dead_letter(self, body: bytes, error: str) -> None:
        preview = dead_letters.preview(body)  # any bytes: text, else base64
        try:
            with self.ctx.engine.begin() as conn:
                conn.execute(
                    insert(t.dead_letter).values(
                        queue=self.queue, error=error, body=preview, body_bytes=len(body)
                    )
                )
        except Exception:  # the copy on the dead-letter queue still holds it
            log.exception("could not record dead letter in the database")


def _settle(action: Callable[[], None]) -> None:
    """Ack or requeue; when the broker went away meanwhile, the message comes back by
    itself (visibility timeout) or is gone with the broker, and the rows' state guards
    make a redelivery harmless: log it, don't crash the task."""
    try:
        action()
    except Exception as exc:
        log.warning("could not settle a message with the broker: %r", exc)


def _crash(exc: BaseException) -> str:
    frames = traceback.format_exception_only(type(exc), exc)
    return "internal error: " + "".join(frames).strip()
