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
    TENANT_DISABLED = "tenant_disabled"  # held: the kill switch or the breaker stopped it
    # held by the breaker because receivers refuse the tenant's mail (not its recipients)
    POLICY_BLOCKED = "policy_blocked"  # refused as spam, blocklisted, bad reputation
    AUTH_FAILING = "auth_failing"  # refused for failed SPF/DKIM/DMARC


# the reasons of rows held by a sending block: released when the blocks allow them again
HELD_BY_BLOCKS = (BlockReason.TENANT_DISABLED, BlockReason.POLICY_BLOCKED, BlockReason.AUTH_FAILING)


class TenantStatus(StrEnum):
    ACTIVE = "active"
    BULK_DISABLED = "bulk_disabled"
    SUSPENDED = "suspended"
    KILLED = "killed"


class FeedbackKind(StrEnum):
    """What a signal about a delivery says (``feedback_event.kind``)."""

    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    STOP = "stop"  # an SMS opt-out reply
    START = "start"  # an SMS reply that takes the opt-out back
    DELAY = "delay"  # a DSN that says "still trying"
    AUTO_REPLY = "auto_reply"  # out of office: not a bounce
    UNKNOWN = "unknown"  # kept whole for inspection, acted upon never


class SuppressionReason(StrEnum):
    """Why an address is suppressed for a tenant and channel (``suppression.reason``)."""

    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    STOP = "stop"
    MANUAL = "manual"  # imported from the tenant's own list
    BOUNCE_SCORE = "bounce_score"  # soft bounces on enough days in a row
    ERASURE = "erasure"  # the person asked to be forgotten: the address is kept hashed


class Scope(StrEnum):
    """What a sending block stops: promotional mail, promotional SMS, or everything."""

    BULK_EMAIL = "bulk_email"
    BULK_SMS = "bulk_sms"
    ALL = "all"

    @classmethod
    def bulk(cls, channel: str) -> Scope:
        return cls.BULK_SMS if channel == Channel.SMS else cls.BULK_EMAIL


class BlockSource(StrEnum):
    """Who set a sending block."""

    OPERATOR = "operator"  # the kill switch
    BREAKER = "breaker"  # the complaint/bounce circuit breaker
    CLOSURE = "closure"  # the tenant was closed
    PROVIDER = "provider"  # a gateway said the account cannot send (no credit, auth)
