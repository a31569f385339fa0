"""Every sender's copy of the tenants' sending blocks, kept fresh by pub/sub.

At start it reads every active block; a notice on the ``sending_state`` channel makes
it re-read that tenant's blocks from the database at once (the database is the truth,
the notice only says "look now"), and it re-reads everything every
``sending_state_refresh_s`` in case a notice was lost. The sender asks ``may_send``
right before each SMTP transaction, so no cached answer is older than the notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from postgate.core.sending_policy import may_send
from postgate.runtime.announce import STATE_CHANNEL
from postgate.runtime.context import Context
from postgate.runtime.pubsub import PubSub
from postgate.tenants import sending as sending_blocks

log = logging.getLogger("postgate.switch")


class SendingSwitch:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pubsub = PubSub(ctx.settings.redis_url, ctx.settings.queue_prefix)
        self.scopes: dict[int, frozenset[str]] = {}
        self.changed_at: dict[int, float] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[asyncio.Task[None]] = set()

    def may_send(self, tenant_id: int, channel: str, kind: str) -> bool:
        return may_send(self.scopes.get(tenant_id, frozenset()), channel, kind)

    async def start(self) -> None:
        self.scopes = await asyncio.to_thread(sending_blocks.all_active, self.ctx.engine)
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self.pubsub.listen(STATE_CHANNEL, self._notice, self._stop, ready)),
            asyncio.create_task(self._refresh()),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), 5)

    async def close(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, *self._reloads, return_exceptions=True)
        self.pubsub.close()

    def _notice(self, data: dict[str, Any]) -> None:
        tenant_id = data.get("tenant_id")
        if isinstance(tenant_id, int):
            task = asyncio.create_task(self.reload(tenant_id))
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

    async def reload(self, tenant_id: int) -> None:
        def read() -> frozenset[str]:
            with self.ctx.engine.connect() as conn:
                return sending_blocks.active_scopes(conn, tenant_id)

        try:
            scopes = await asyncio.to_thread(read)
        except Exception:
            log.exception("could not re-read sending blocks of tenant %s", tenant_id)
            return
        if scopes != self.scopes.get(tenant_id, frozenset()):
            log.warning("tenant %s sending blocks now %s", tenant_id, sorted(scopes) or "none")
        self.scopes[tenant_id] = scopes
        self.changed_at[tenant_id] = time.time()

    async def _refresh(self) -> None:
        every = self.ctx.settings.sending_state_refresh_s
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every)
            if self._stop.is_set():
                return
            started = time.time()
            try:
                fresh = await asyncio.to_thread(sending_blocks.all_active, self.ctx.engine)
            except Exception:
                log.exception("could not re-read sending blocks; keeping the last known")
                continue
            for tenant_id, at in self.changed_at.items():  # a notice read newer rows
                if at > started:
                    fresh[tenant_id] = self.scopes.get(tenant_id, frozenset())
            self.scopes = fresh
