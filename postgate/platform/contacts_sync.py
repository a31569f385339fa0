"""Applying a ``contacts.v1`` document: upsert by the CRM's contact id, list memberships,
and consents with their provenance.

The same rules as a CSV list import hold for every contact (``consent.imports``): the
provenance declaration is validated by ``imports.Provenance`` (``purchased``, ``rented``
and ``other_company`` are refused, a purchase needs its date and a ticked checkbox) and
``imports.hygiene`` drops a contact whose consent or last activity is older than six
months. A dropped contact is reported with its reason and nothing of it is written; the
others are applied. Applying the same document twice changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from postgate.consent import imports
from postgate.core.addresses import AddressError, clean_name, normalise_email, normalise_phone
from postgate.core.clock import aware
from postgate.core.contacts_message import ContactIn, ContactsV1
from postgate.store import tables as t
from postgate.store.limits import contact_limit_reason, contact_room
from postgate.store.schema import metadata

ref_table, sync_table = metadata.tables["contact_ref"], metadata.tables["contact_sync"]
rc, c, lm, cs = ref_table.c, t.contact.c, t.list_member.c, t.consent.c


class Dropped(ValueError):
    """This contact is not applied; the text says why (it goes into the report)."""


@dataclass
class Report:
    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    consents: int = 0
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self, sync_id: int, batch_id: str) -> dict[str, Any]:
        return {
            "sync_id": sync_id,
            "batch_id": batch_id,
            "received": self.received,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "consents": self.consents,
            "dropped": len(self.dropped),
            "report": self.dropped,
        }


@dataclass
class Checked:
    """A contact that passed the rules, normalised, with its consent rows to write."""

    item: ContactIn
    email: str | None
    phone: str | None
    name: str | None
    consents: list[dict[str, Any]]


def check(item: ContactIn, now: datetime) -> Checked:
    """The consent and address rules for one contact (pure); :class:`Dropped` if refused."""
    try:
        email = normalise_email(item.email) if item.email else None
        phone = normalise_phone(item.phone) if item.phone else None
        name = clean_name(item.name) if item.name is not None else None
    except AddressError as exc:
        raise Dropped(str(exc)) from None
    if refused := imports.hygiene(None, item.last_activity_at, now):
        raise Dropped(refused)
    rows = []
    for consent in item.consents:
        try:
            decl = imports.Provenance.model_validate(
                {
                    "source": consent.source,
                    "topic": consent.topic,
                    "collected_at": consent.consented_at,
                    "evidence": consent.evidence,
                    "purchase_date": consent.purchase_date,
                    "marketing_checkbox": consent.marketing_checkbox,
                }
            )
        except ValidationError as exc:
            raise Dropped(
                "consent refused: "
                + "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            ) from None
        for when in (consent.consented_at, consent.purchase_date):
            if when is not None and (refused := imports.hygiene(when, None, now)):
                raise Dropped(refused)
        rows.append(
            {
                "channel": consent.channel,
                "topic": decl.topic,
                "source": decl.source,
                "consented_at": aware(consent.consented_at),
                "evidence_ref": decl.evidence,
                "marketing_checkbox": decl.marketing_checkbox,
            }
        )
    return Checked(item, email, phone, name, rows)


def apply(
    engine: Engine, tenant_id: int, doc: ContactsV1, source: str, actor: str, now: datetime
) -> dict[str, Any]:
    """Apply every contact of ``doc`` to the tenant and store the report (one transaction;
    each contact in a savepoint of its own, so one that collides drops alone)."""
    report = Report(received=len(doc.contacts))
    with engine.begin() as conn:
        owned = set(
            conn.scalars(select(t.mailing_list.c.id).where(t.mailing_list.c.tenant_id == tenant_id))
        )
        room = contact_room(conn, tenant_id)
        for index, item in enumerate(doc.contacts):
            try:
                checked = check(item, now)
                missing = sorted(set(item.lists or ()) - owned)
                if missing:
                    raise Dropped("no such list: " + ", ".join(map(str, missing)))
                with conn.begin_nested():
                    outcome, added = _upsert(conn, tenant_id, checked, now, room)
            except Dropped as exc:
                report.dropped.append(
                    {"index": index, "external_id": item.external_id, "reason": str(exc)}
                )
                continue
            except IntegrityError:  # the same address arrived meanwhile from elsewhere
                report.dropped.append(
                    {
                        "index": index,
                        "external_id": item.external_id,
                        "reason": "collided with a concurrent change; send it again",
                    }
                )
                continue
            if outcome == "created" and room is not None:
                room -= 1
            setattr(report, outcome, getattr(report, outcome) + 1)
            report.consents += added
        sync_id = int(
            conn.execute(
                insert(sync_table)
                .values(
                    tenant_id=tenant_id,
                    source=source,
                    batch_id=doc.batch_id,
                    actor=actor,
                    received=report.received,
                    created=report.created,
                    updated=report.updated,
                    unchanged=report.unchanged,
                    dropped=len(report.dropped),
                    consents=report.consents,
                    report=report.dropped,
                    created_at=now,
                )
                .returning(sync_table.c.id)
            ).scalar_one()
        )
    return report.as_json(sync_id, doc.batch_id)


def _owner(conn: Connection, tenant_id: int, column: str, value: str | None) -> int | None:
    if value is None:
        return None
    found = conn.scalar(select(c.id).where(c.tenant_id == tenant_id, getattr(c, column) == value))
    return None if found is None else int(found)


def _upsert(
    conn: Connection, tenant_id: int, checked: Checked, now: datetime, room: int | None
) -> tuple[str, int]:
    item = checked.item
    contact_id = conn.scalar(
        select(rc.contact_id).where(rc.tenant_id == tenant_id, rc.external_id == item.external_id)
    )
    by_email = _owner(conn, tenant_id, "email", checked.email)
    by_phone = _owner(conn, tenant_id, "phone", checked.phone)
    outcome = "unchanged"
    if contact_id is None:
        contact_id = by_email or by_phone  # a contact from a form or an import: adopt it
        if contact_id is not None and conn.scalar(
            select(func.count()).select_from(ref_table).where(rc.contact_id == contact_id)
        ):
            raise Dropped("the address belongs to a contact the CRM knows by another id")
        if contact_id is None:
            if checked.email is None and checked.phone is None:
                raise Dropped("a new contact needs an email or a phone")
            if room is not None and room <= 0:
                raise Dropped(contact_limit_reason(conn, tenant_id))
            contact_id = int(
                conn.execute(
                    insert(t.contact)
                    .values(
                        tenant_id=tenant_id,
                        email=checked.email,
                        phone=checked.phone,
                        name=checked.name or "",
                        attributes=item.attributes or {},
                        created_at=now,
                        last_activity_at=item.last_activity_at,
                    )
                    .returning(c.id)
                ).scalar_one()
            )
            outcome = "created"
        conn.execute(
            insert(ref_table).values(
                tenant_id=tenant_id,
                external_id=item.external_id,
                contact_id=contact_id,
                created_at=now,
                updated_at=now,
            )
        )
    contact = conn.execute(
        select(c.email, c.phone, c.name, c.attributes, c.last_activity_at, c.erased_at).where(
            c.id == contact_id
        )
    ).one()
    if contact.erased_at is not None:
        raise Dropped("this contact was erased; postgate keeps only a hash of its address")
    for column, owner in (("email", by_email), ("phone", by_phone)):
        if owner is not None and owner != contact_id:
            raise Dropped(f"the {column} belongs to another contact")
    changes: dict[str, Any] = {}
    if checked.email is not None and checked.email != contact.email:
        changes["email"] = checked.email
    if checked.phone is not None and checked.phone != contact.phone:
        changes["phone"] = checked.phone
    if checked.name is not None and checked.name != contact.name:
        changes["name"] = checked.name
    if item.attributes is not None and item.attributes != (contact.attributes or {}):
        changes["attributes"] = item.attributes
    if item.last_activity_at is not None and (
        contact.last_activity_at is None
        or aware(item.last_activity_at) > aware(contact.last_activity_at)
    ):
        changes["last_activity_at"] = item.last_activity_at
    if changes and outcome != "created":
        conn.execute(update(t.contact).where(c.id == contact_id).values(**changes))
        outcome = "updated"
    if (
        item.lists is not None
        and _memberships(conn, tenant_id, contact_id, set(item.lists))
        and outcome == "unchanged"
    ):
        outcome = "updated"
    added = _consents(
        conn,
        tenant_id,
        contact_id,
        checked,
        changes.get("email", contact.email),
        changes.get("phone", contact.phone),
        now,
    )
    if added and outcome == "unchanged":
        outcome = "updated"
    return outcome, added


def _memberships(conn: Connection, tenant_id: int, contact_id: int, wanted: set[int]) -> bool:
    have = set(
        conn.scalars(
            select(lm.list_id).where(lm.tenant_id == tenant_id, lm.contact_id == contact_id)
        )
    )
    if have == wanted:
        return False
    if have - wanted:
        conn.execute(
            delete(t.list_member).where(
                lm.tenant_id == tenant_id,
                lm.contact_id == contact_id,
                lm.list_id.in_(have - wanted),
            )
        )
    if wanted - have:
        conn.execute(
            insert(t.list_member),
            [
                {"list_id": list_id, "contact_id": contact_id, "tenant_id": tenant_id}
                for list_id in sorted(wanted - have)
            ],
        )
    return True


def _consents(
    conn: Connection,
    tenant_id: int,
    contact_id: int,
    checked: Checked,
    email: str | None,
    phone: str | None,
    now: datetime,
) -> int:
    """Append the consents that are not already the latest record of their kind."""
    added = 0
    for row in checked.consents:
        if (email if row["channel"] == "email" else phone) is None:
            raise Dropped(
                f"an {row['channel']} consent needs the contact's "
                f"{'email' if row['channel'] == 'email' else 'phone'}"
            )
        latest = conn.execute(
            select(cs.source, cs.status, cs.consented_at, cs.evidence_ref)
            .where(
                cs.tenant_id == tenant_id,
                cs.contact_id == contact_id,
                cs.channel == row["channel"],
                cs.topic == row["topic"],
            )
            .order_by(cs.created_at.desc(), cs.id.desc())
            .limit(1)
        ).first()
        if (
            latest is not None
            and latest.status == "confirmed"
            and latest.source == row["source"]
            and latest.evidence_ref == row["evidence_ref"]
            and aware(latest.consented_at) == row["consented_at"]
        ):
            continue  # the same proof again: idempotent
        conn.execute(
            insert(t.consent).values(
                tenant_id=tenant_id,
                contact_id=contact_id,
                status="confirmed",
                created_at=now,
                confirmed_at=row["consented_at"],
                **row,
            )
        )
        added += 1
    return added
