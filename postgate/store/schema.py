"""Imports every table so ``SQLModel.metadata`` is complete (migrations, tests)."""

from sqlmodel import SQLModel

from postgate.store.models.brand import TenantBrand, TopicLabel
from postgate.store.models.campaigns import Campaign, Delivery
from postgate.store.models.consent import (
    Consent,
    Contact,
    ListImport,
    ListMember,
    MailingList,
    PendingSignup,
    SignupForm,
    Suppression,
)
from postgate.store.models.domains import (
    DomainPreflight,
    SenderDomain,
    SourceAddress,
    SourceDay,
    WarmupDay,
)
from postgate.store.models.events import EventOutbox, WebhookDeadLetter, WebhookEndpoint
from postgate.store.models.feedback import FeedbackEvent
from postgate.store.models.operator import OperatorSession
from postgate.store.models.platform import ContactRef, ContactSync, TenantProfile
from postgate.store.models.queue import DeadLetter
from postgate.store.models.sms import SmsPart
from postgate.store.models.tenants import ApiKey, AuditLog, SendingBlock, Tenant

metadata = SQLModel.metadata

__all__ = [
    "ApiKey",
    "AuditLog",
    "Campaign",
    "Consent",
    "Contact",
    "ContactRef",
    "ContactSync",
    "DeadLetter",
    "Delivery",
    "DomainPreflight",
    "EventOutbox",
    "FeedbackEvent",
    "ListImport",
    "ListMember",
    "MailingList",
    "OperatorSession",
    "PendingSignup",
    "SenderDomain",
    "SendingBlock",
    "SignupForm",
    "SmsPart",
    "SourceAddress",
    "SourceDay",
    "Suppression",
    "Tenant",
    "TenantBrand",
    "TenantProfile",
    "TopicLabel",
    "WarmupDay",
    "WebhookDeadLetter",
    "WebhookEndpoint",
    "metadata",
]
