"""Closed vocabularies of the delivery side: channels, kinds, states and block reasons."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class Kind(StrEnum):
    PROMOTIONAL = "promotional"
    TRANSACTIONAL = "transactional"


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    BLOCKED = "blocked"
    HELD = "held"
    CANCELLED = "cancelled"


TERMINAL = frozenset(
    {DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.BLOCKED, DeliveryState.CANCELLED}
)
CLAIMABLE = (DeliveryState.QUEUED, DeliveryState.DEFERRED)


class CampaignState(StrEnum):
    SCHEDULED = "scheduled"
    PLANNING = "planning"
    SENDING = "sending"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # refused by the content policy; never planned


# Rows are sent only while their campaign is in one of these states.
SENDABLE_CAMPAIGN = (CampaignState.PLANNING, CampaignState.SENDING)


class BlockReason(StrEnum):
    NO_ADDRESS = "no_address"
    NO_CONSENT = "no_consent"
    CONSENT_UNCONFIRMED = "consent_unconfirmed"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CONSENT_STALE = "consent_stale"
    CONSENT_UNPROVEN = "consent_unproven"
    OTHER_TENANT = "other_tenant"
    SUPPRESSED = "suppressed"
    TENANT_DISABLED = "tenant_disabled"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    BULK_DISABLED = "bulk_disabled"
    SUSPENDED = "suspended"
    KILLED = "killed"
