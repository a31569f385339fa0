"""The sender's side of a campaign's send window: the rows of a batch whose recipients are
outside the window in their own local time (``core/send_window``) are put off, deferred,
to the moment it next opens there; the sweeper hands them back then."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import Engine

from postgate.campaigns import deliveries as store
from postgate.core.send_window import SendWindow
from postgate.core.states import Channel

log = logging.getLogger("postgate.sender")
HELD = Counter(
    "postgate_send_window_held_total",
    "Deliveries put off until the campaign's send window opens in the recipient's local "
    "time, by channel.",
    ["tenant", "channel"],
)


async def split(
    engine: Engine,
    window: SendWindow,
    claimed: list[store.Claimed],
    now: datetime,
    tenant: str,
    campaign_id: int,
    channel: str,
) -> list[store.Claimed]:
    """The rows that may go now; the others are postponed to their window's opening."""
    go: list[store.Claimed] = []
    later: dict[datetime, list[int]] = defaultdict(list)
    for c in claimed:
        rcpt = c.recipient
        phone = rcpt.address if channel == Channel.SMS else None
        zones = window.zones(rcpt.attributes, phone)
        opens = window.opens_in(now, zones)
        if opens is None:
            go.append(c)
            continue
        later[opens].append(rcpt.delivery_id)
        log.info(
            "tenant=%s campaign=%s delivery=%s rcpt=%s send window %s (%s): put off to %s",
            tenant,
            campaign_id,
            rcpt.delivery_id,
            rcpt.address,
            window.hours,
            ", ".join(zones),
            opens.isoformat(),
        )
    for until, ids in later.items():
        await asyncio.to_thread(store.postpone, engine, ids, until, "send_window", now)
        HELD.labels(tenant, channel).inc(len(ids))
    return go
