"""Imports every table so ``SQLModel.metadata`` is complete (migrations, tests)."""

from sqlmodel import SQLModel

from postgate.consent.models import Consent, Contact, ListMember, MailingList, Suppression
from postgate.delivery.models import (
    AuditLog,
    Campaign,
    DeadLetter,
    Delivery,
    FeedbackEvent,
    Tenant,
)

metadata = SQLModel.metadata

__all__ = [
    "AuditLog",
    "Campaign",
    "Consent",
    "Contact",
    "DeadLetter",
    "Delivery",
    "FeedbackEvent",
    "ListMember",
    "MailingList",
    "Suppression",
    "Tenant",
    "metadata",
]
