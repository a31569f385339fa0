"""Imports every table so ``SQLModel.metadata`` is complete (migrations, tests)."""

from sqlmodel import SQLModel

from postgate.consent.models import (
    Consent,
    Contact,
    ListImport,
    ListMember,
    MailingList,
    PendingSignup,
    SignupForm,
    Suppression,
)
from postgate.delivery.domain_models import SenderDomain
from postgate.delivery.models import (
    ApiKey,
    AuditLog,
    Campaign,
    DeadLetter,
    Delivery,
    FeedbackEvent,
    SendingBlock,
    Tenant,
)
from postgate.operator_page.models import OperatorSession
from postgate.platform.models import ContactRef, ContactSync, TenantProfile
from postgate.sms.models import SmsPart

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
    "Suppression",
    "Tenant",
    "TenantProfile",
    "metadata",
]
