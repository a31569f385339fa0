"""kombu plumbing: one direct exchange, one durable queue per job kind, a dead-letter queue.

The broker URL picks the transport (``memory://`` in-process, ``redis://``, ``amqp://``).
Consumers use ``basic_get`` so that every kombu call stays on the caller's thread
and the asyncio loop never blocks waiting for a message.
"""

from __future__ import annotations

import json
from typing import Any

from kombu import Connection, Exchange, Queue
from kombu.message import Message

QUEUES = ("campaigns", "send", "dead")


class Broker:
    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.connection = Connection(url, transport_options={"visibility_timeout": 600})
        self.exchange = Exchange(prefix, type="direct", durable=True)
        self.queues = {
            name: Queue(f"{prefix}.{name}", self.exchange, routing_key=f"{prefix}.{name}",
                        durable=True)
            for name in QUEUES
        }
        self._channel = self.connection.channel()
        self._producer = self.connection.Producer(channel=self._channel)
        for queue in self.queues.values():
            queue(self._channel).declare()

    def publish(self, name: str, body: bytes | str | dict[str, Any],
                headers: dict[str, Any] | None = None) -> None:
        payload = body if isinstance(body, bytes | str) else json.dumps(body, separators=(",", ":"))
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

    def get(self, name: str) -> Message | None:
        """One message or None, without waiting. The caller must ack or reject it."""
        message: Message | None = self.queues[name](self._channel).get(no_ack=False)
        return message

    def depth(self, name: str) -> int:
        _, count, _ = self.queues[name](self._channel).queue_declare()
        return int(count)

    def close(self) -> None:
        try:
            self._channel.close()
        finally:
            self.connection.release()
