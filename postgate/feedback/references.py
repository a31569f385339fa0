"""Which delivery a reference that came back to us really stands for (one query).

A current-format reference (``delivery.tokens``) resolves only when its delivery row
belongs to the campaign and tenant its MAC covers. A legacy reference resolves only for
a campaign created before the format changed (``campaign.ref_format`` 1) and, for
feedback, only while that campaign is younger than ``LEGACY_REFS_DAYS``; a legacy
unsubscribe token (always MAC'd) keeps working for good, as an unsubscribe link must.
A reference named by an authenticated provider (a signed webhook) is trusted as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Select, select

from postgate.core.clock import aware
from postgate.core.tokens import Ref
from postgate.store import tables as t

LEGACY_FORMAT = 1
CURRENT_FORMAT = 2


class Verification(StrEnum):
    """How a feedback event's delivery was established (``feedback_event.verification``)."""

    SIGNED = "signed"  # a current-format reference whose MAC verified
    LEGACY = "legacy"  # an old-format reference inside the compatibility window
    PROVIDER = "provider"  # named by a provider whose webhook signature verified
    UNVERIFIED = "unverified"  # no reference we can trust: kept, never acted upon


@dataclass(frozen=True, slots=True)
class Target:
    delivery_id: int
    tenant_id: int
    campaign_id: int
    address: str
    slug: str
    tenant_name: str
    channel: str


def _query() -> Select[Any]:
    d, c, tn = t.delivery.c, t.campaign.c, t.tenant.c
    return (
        select(
            d.id,
            d.tenant_id,
            d.campaign_id,
            d.address,
            tn.slug,
            tn.name,
            c.channel,
            c.ref_format,
            c.created_at,
        )
        .join(t.campaign, c.id == d.campaign_id)
        .join(t.tenant, tn.id == d.tenant_id)
    )


def resolve(
    conn: Connection, ref: Ref, now: datetime, legacy_days: float | None, trusted: bool = False
) -> tuple[Target | None, str]:
    """The delivery ``ref`` stands for and how it was verified, or None and why not.

    ``legacy_days`` None: legacy references have no time limit (unsubscribe links)."""
    d = t.delivery.c
    row = conn.execute(_query().where(d.id == ref.delivery_id)).first()
    if row is None:
        return None, "unknown_delivery"
    target = Target(
        row.id, row.tenant_id, row.campaign_id, row.address, row.slug, row.name, row.channel
    )
    if (ref.campaign_id is not None and ref.campaign_id != row.campaign_id) or (
        ref.tenant_id is not None and ref.tenant_id != row.tenant_id
    ):
        return None, "reference_mismatch"
    if trusted:
        return target, Verification.PROVIDER
    if not ref.legacy:
        return target, Verification.SIGNED
    if row.ref_format != LEGACY_FORMAT:
        return None, "legacy_reference_for_new_campaign"
    if legacy_days is not None and aware(row.created_at) < now - timedelta(days=legacy_days):
        return None, "legacy_window_over"
    return target, Verification.LEGACY


def by_delivery(conn: Connection, delivery_id: int) -> Target | None:
    """A delivery named by an authenticated provider."""
    target, _ = resolve(conn, Ref(delivery_id, None, None), datetime.min, None, trusted=True)
    return target
