"""Process entry: run any mix of workers on one event loop until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from postgate.observability.export import registry
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.workers.contacts import ContactsWorker
from postgate.workers.events import EventsWorker
from postgate.workers.feedback import FeedbackListener
from postgate.workers.planner import Planner
from postgate.workers.retention import Retention
from postgate.workers.sender import Sender
from postgate.workers.sweeper import Sweeper

log = logging.getLogger("postgate.workers")

WORKERS: dict[str, Callable[[Context], Any]] = {
    "planner": Planner,
    "sender": Sender,
    "sweeper": Sweeper,
    "retention": Retention,
    "feedback": FeedbackListener,
    "contacts": ContactsWorker,
    "events": EventsWorker,
}


def install_loop(settings: Settings) -> None:
    if settings.use_uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
            log.info("uvloop not available; using asyncio's loop")


async def run_workers(
    ctx: Context, names: list[str], stop: asyncio.Event, extra: list[Awaitable[Any]] | None = None
) -> None:
    """Run the named workers until ``stop``; each drains what it holds before returning."""
    runs: list[Coroutine[Any, Any, Any]] = [WORKERS[name](ctx).run(stop) for name in names]
    await asyncio.gather(*runs, *(extra or []))


def serve(settings: Settings, names: list[str]) -> None:
    settings.require_secret()  # MissingSecret: no worker runs on a guessable key
    install_loop(settings)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, registry=registry())

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("workers %s starting", ",".join(names))
        await run_workers(Context.from_settings(settings), names, stop)
        log.info("workers %s drained and stopped", ",".join(names))

    asyncio.run(main())
