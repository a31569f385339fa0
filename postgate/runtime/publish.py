"""Publishing send batches: a campaign's queued delivery ids, in messages of ``size``."""

from __future__ import annotations

from collections.abc import Callable

from postgate.runtime.broker import Broker


def publish_batches(broker: Broker, campaign_id: int, ids: list[int], size: int) -> None:
    for start in range(0, len(ids), size):
        broker.publish("send", {"campaign_id": campaign_id, "ids": ids[start : start + size]})


def publisher(broker: Broker, size: int) -> Callable[[int, list[int]], None]:
    """``publish_batches`` bound to a broker and a batch size, for the domain's callbacks."""
    return lambda campaign_id, ids: publish_batches(broker, campaign_id, ids, size)
