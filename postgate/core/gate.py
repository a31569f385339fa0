"""The consent gate: a pure function of (campaign, recipient, now) -> block reason or None.

It never touches I/O; :mod:`postgate.consent.audience` loads what it needs in batches.
The rules are the platform's terms (DESIGN.md §1): consent per tenant, channel and
topic; allowed provenance only; double opt-in must be confirmed; consent older than
12 months holds only if a promotional message on the topic reached the recipient
within 12 months of consenting without a complaint; suppression wins over everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from postgate.core.clock import add_months, aware
from postgate.core.states import BlockReason, Kind, SuppressionReason

FRESH_MONTHS = 12
PROOF_SOURCES = frozenset({"written_consent", "event", "import"})
# Suppressions that stop even transactional mail: the address is dead, the person
# complained, or asked to be erased.
HARD_SUPPRESSIONS = frozenset(
    {SuppressionReason.COMPLAINT, SuppressionReason.HARD_BOUNCE, SuppressionReason.ERASURE}
)


@dataclass(frozen=True, slots=True)
class ConsentView:
    tenant_id: int
    source: str
    status: str  # pending | confirmed | withdrawn
    consented_at: datetime
    confirmed_at: datetime | None = None
    evidence_ref: str | None = None
    marketing_checkbox: bool | None = None

    @property
    def given_at(self) -> datetime:
        """When consent became valid: confirmation for double opt-in, else collection."""
        if self.source == "signup_form" and self.confirmed_at is not None:
            return aware(self.confirmed_at)
        return aware(self.consented_at)


@dataclass(frozen=True, slots=True)
class Recipient:
    contact_id: int
    address: str | None
    consent: ConsentView | None = None  # the latest record for (tenant, channel, topic)
    suppression: str | None = None  # reason, when the address is suppressed
    promo_sends: tuple[datetime, ...] = field(default=())  # uncomplained sends on the topic


@dataclass(frozen=True, slots=True)
class GateCampaign:
    tenant_id: int
    kind: str


def is_fresh(consent: ConsentView, promo_sends: Iterable[datetime], now: datetime) -> bool:
    given = consent.given_at
    horizon = add_months(given, FRESH_MONTHS)
    if aware(now) <= horizon:
        return True
    return any(given <= aware(sent) <= horizon for sent in promo_sends)


def _provenance_problem(consent: ConsentView) -> BlockReason | None:
    if consent.status == "withdrawn":
        return BlockReason.CONSENT_WITHDRAWN
    if consent.source == "signup_form":
        return None if consent.status == "confirmed" else BlockReason.CONSENT_UNCONFIRMED
    if consent.source == "purchase":
        return None if consent.marketing_checkbox else BlockReason.CONSENT_UNPROVEN
    if consent.source in PROOF_SOURCES:
        return None if consent.evidence_ref else BlockReason.CONSENT_UNPROVEN
    return BlockReason.CONSENT_UNPROVEN  # purchased, rented, other_company, unknown


def decide(campaign: GateCampaign, recipient: Recipient, now: datetime) -> BlockReason | None:
    """Why ``recipient`` must not get ``campaign`` now, or None when it may be sent."""
    if not recipient.address:
        return BlockReason.NO_ADDRESS
    if campaign.kind == Kind.TRANSACTIONAL:
        if recipient.suppression in HARD_SUPPRESSIONS:
            return BlockReason.SUPPRESSED
        return None
    if recipient.suppression is not None:
        return BlockReason.SUPPRESSED
    consent = recipient.consent
    if consent is None:
        return BlockReason.NO_CONSENT
    if consent.tenant_id != campaign.tenant_id:
        return BlockReason.OTHER_TENANT
    problem = _provenance_problem(consent)
    if problem is not None:
        return problem
    if not is_fresh(consent, recipient.promo_sends, now):
        return BlockReason.CONSENT_STALE
    return None


def gate(
    campaign: GateCampaign, recipients: Iterable[Recipient], now: datetime
) -> list[tuple[Recipient, BlockReason | None]]:
    return [(r, decide(campaign, r, now)) for r in recipients]
