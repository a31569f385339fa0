"""Fan-out notices between processes: Redis pub/sub, or in-process in embedded mode.

Used for the kill switch: a change to a tenant's sending state is committed to the
database first, then announced here, and every sender re-reads that tenant's state
from the database when the notice arrives. A lost notice is therefore only late (the
senders also re-read on a timer), never wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("postgate.pubsub")
Handler = Callable[[dict[str, Any]], None]

_local: dict[str, list[tuple[asyncio.AbstractEventLoop, Handler]]] = defaultdict(list)
_lock = threading.Lock()


class PubSub:
    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._client: Any = None

    def channel(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Announce ``data`` to every subscriber of ``name``; callable from any thread."""
        channel = self.channel(name)
        if self.redis_url:
            import redis

            if self._client is None:
                self._client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
            self._client.publish(channel, json.dumps(data))
            return
        with _lock:
            targets = list(_local[channel])
        for loop, handler in targets:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(handler, data)

    async def listen(
        self, name: str, handler: Handler, stop: asyncio.Event, ready: asyncio.Event | None = None
    ) -> None:
        """Call ``handler`` on this loop for every notice until ``stop``."""
        channel = self.channel(name)
        if not self.redis_url:
            entry = (asyncio.get_running_loop(), handler)
            with _lock:
                _local[channel].append(entry)
            if ready is not None:
                ready.set()
            try:
                await stop.wait()
            finally:
                with _lock:
                    _local[channel].remove(entry)
            return
        while not stop.is_set():
            try:
                await self._listen_redis(channel, handler, stop, ready)
            except Exception as exc:  # Redis restarted: resubscribe, the timer covers the gap
                log.warning("pub/sub %s lost (%r); resubscribing", channel, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)

    async def _listen_redis(
        self, channel: str, handler: Handler, stop: asyncio.Event, ready: asyncio.Event | None
    ) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=5)
        # Any: redis-py types aclose() in some releases and not in others
        pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            if ready is not None:
                ready.set()
            while not stop.is_set():
                message = await pubsub.get_message(timeout=0.2)
                if message is None:
                    continue
                try:
                    handler(json.loads(message["data"]))
                except ValueError:
                    log.warning("ignored a malformed notice on %s", channel)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await client.aclose()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
