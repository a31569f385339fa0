"""kombu plumbing: one direct exchange, one durable queue per job kind, a dead-letter queue.

The broker URL picks the transport (``memory://`` in-process, ``redis://``, ``amqp://``).
Consumers use ``basic_get`` so that every kombu call stays on the caller's thread
and the asyncio loop never blocks waiting for a message; :meth:`Broker.restore_unacked`
makes up for the consuming loop that is not there, so a dead worker's message comes back
after ``BROKER_VISIBILITY_TIMEOUT_S``. The connection opens on first
use, so creating a Broker while the server is down does not raise (the first call does,
and callers back off and retry), and closing one never raises: a broker restart must not
take a worker down with it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.message import Message

QUEUES = ("campaigns", "send", "dead", "contacts")


class Broker:
    def __init__(self, url: str, prefix: str, visibility_timeout_s: float = 60.0) -> None:
        self.prefix = prefix
        self.connection = Connection(
            url, transport_options={"visibility_timeout": visibility_timeout_s}
        )
        self.exchange = Exchange(prefix, type="direct", durable=True)
        self.queues = {
            name: Queue(
                f"{prefix}.{name}", self.exchange, routing_key=f"{prefix}.{name}", durable=True
            )
            for name in QUEUES
        }
        self._channel: Any = None
        self._producer: Any = None

    def _open(self) -> Any:
        if self._channel is None:
            channel = self.connection.channel()
            for queue in self.queues.values():
                queue(channel).declare()
            self._producer = self.connection.Producer(channel=channel)
            self._channel = channel
        return self._channel

    def publish(
        self, name: str, body: bytes | str | dict[str, Any], headers: dict[str, Any] | None = None
    ) -> None:
        payload = body if isinstance(body, bytes | str) else json.dumps(body, separators=(",", ":"))
        self._open()
        self._producer.publish(
            payload,
            exchange=self.exchange,
            routing_key=self.queues[name].routing_key,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            headers=headers or {},
            retry=True,
            retry_policy={"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5},
            declare=[self.queues[name]],
        )

    def events_exchange(self) -> Exchange:
        """The topic exchange of ``event.v1``: bind a queue with ``<tenant>.#`` or
        ``*.feedback.complaint``; routing keys are ``<tenant slug>.<event type>``."""
        return Exchange(f"{self.prefix}.events", type="topic", durable=True)

    def publish_events(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish (routing key, event) pairs, persistent, in order."""
        exchange = self.events_exchange()
        self._open()
        exchange(self._channel).declare()
        for key, event in events:
            self._producer.publish(
                json.dumps(event, separators=(",", ":"), default=str),
                exchange=exchange,
                routing_key=key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                headers={"schema": "event.v1", "event_id": event["id"]},
                message_id=event["id"],
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )

    def consume_events(
        self, queue: str, binding: str, limit: int | None, wait_s: float
    ) -> Iterator[dict[str, Any]]:
        """Events from a durable queue bound to the event exchange with ``binding``; each
        is acknowledged when the next is asked for (a consumer that dies has its message
        handed out again). Stops after ``limit`` events or ``wait_s`` without one."""
        exchange = self.events_exchange()
        channel = self.connection.channel()
        try:
            exchange(channel).declare()
            mine = Queue(queue, exchange, routing_key=binding, durable=True)(channel)
            mine.declare()
            taken, idle_since = 0, time.monotonic()
            while limit is None or taken < limit:
                message = mine.get(no_ack=False)
                if message is None:
                    if time.monotonic() - idle_since > wait_s:
                        return
                    time.sleep(0.05)
                    continue
                yield json.loads(message.body)
                message.ack()
                taken, idle_since = taken + 1, time.monotonic()
        finally:
            with contextlib.suppress(Exception):
                channel.close()

    def get(self, name: str) -> Message | None:
        """One message or None, without waiting. The caller must ack or reject it."""
        message: Message | None = self.queues[name](self._open()).get(no_ack=False)
        return message

    def restore_unacked(self) -> None:
        """Hand back messages that were taken but never acked for longer than the
        visibility timeout: their worker died. kombu's Redis transport does this only from
        a consuming loop (``drain_events``), which ``basic_get`` never runs, so every
        runner calls this now and then (a mutex in Redis keeps it to one at a time). AMQP
        returns a dead consumer's messages when its connection drops, and the in-process
        transport dies with its process: for them this does nothing."""
        qos = getattr(self._open(), "qos", None)
        if qos is not None and hasattr(qos, "restore_visible"):
            qos.restore_visible(num=1000, interval=1)

    def depth(self, name: str) -> int:
        _, count, _ = self.queues[name](self._open()).queue_declare()
        return int(count)

    def close(self) -> None:
        """Let go of the connection. Errors are swallowed: closing a channel whose server
        is gone tries to hand unacked messages back and fails, and those come back by
        themselves after the visibility timeout."""
        channel, self._channel, self._producer = self._channel, None, None
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.close()
        with contextlib.suppress(Exception):
            self.connection.release()
