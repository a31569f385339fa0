"""Writing tenants, contacts, lists, consents and suppressions (always scoped by tenant)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session

from postgate.core.clock import utcnow
from postgate.core.states import SuppressionReason
from postgate.feedback import ledger
from postgate.store.models.consent import Consent, Contact, ListMember, MailingList
from postgate.store.models.tenants import Tenant


def create_tenant(session: Session, slug: str, name: str, domain: str) -> Tenant:
    tenant = Tenant(slug=slug, name=name, domain=domain)
    session.add(tenant)
    session.flush()
    return tenant


def create_list(session: Session, tenant_id: int, name: str) -> MailingList:
    mlist = MailingList(tenant_id=tenant_id, name=name)
    session.add(mlist)
    session.flush()
    return mlist


def add_contact(
    session: Session,
    tenant_id: int,
    email: str | None = None,
    phone: str | None = None,
    name: str = "",
    lists: Iterable[MailingList] = (),
) -> Contact:
    contact = Contact(tenant_id=tenant_id, email=email, phone=phone, name=name, attributes={})
    session.add(contact)
    session.flush()
    assert contact.id is not None
    for mlist in lists:
        if mlist.tenant_id != tenant_id:
            raise ValueError("a contact can only join its own tenant's lists")
        assert mlist.id is not None
        session.add(ListMember(list_id=mlist.id, contact_id=contact.id, tenant_id=tenant_id))
    session.flush()
    return contact


def add_consent(
    session: Session,
    contact: Contact,
    channel: str,
    topic: str,
    source: str,
    status: str,
    consented_at: datetime,
    **proof: object,
) -> Consent:
    """Append a consent record (a change of status is a new record, never an edit)."""
    assert contact.id is not None
    consent = Consent(
        tenant_id=contact.tenant_id,
        contact_id=contact.id,
        channel=channel,
        topic=topic,
        source=source,
        status=status,
        consented_at=consented_at,
        **proof,  # type: ignore[arg-type]
    )
    session.add(consent)
    session.flush()
    return consent


def suppress(
    session: Session,
    tenant_id: int,
    channel: str,
    address: str,
    reason: SuppressionReason,
    detail: str = "",
) -> None:
    ledger.suppress(session.connection(), [(tenant_id, channel, address, reason, detail, utcnow())])
