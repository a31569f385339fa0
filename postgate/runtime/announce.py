"""Announcing a committed change of a tenant's sending state to every sender (pub/sub)."""

from __future__ import annotations

from postgate.runtime.pubsub import PubSub
from postgate.settings import Settings

STATE_CHANNEL = "sending_state"


def announce(settings: Settings, tenant_id: int) -> None:
    """Tell every sender to re-read this tenant's blocks (after the change is committed)."""
    pubsub = PubSub(settings.redis_url, settings.queue_prefix)
    try:
        pubsub.publish(STATE_CHANNEL, {"tenant_id": tenant_id})
    finally:
        pubsub.close()
