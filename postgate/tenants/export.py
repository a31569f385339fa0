"""A tenant's data as XML — the export the platform's terms promise on termination.

The document is streamed section by section (memory stays flat for any tenant size)
and follows the published schema ``export.xsd`` beside this module
(namespace ``urn:postgate:export:1``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import XMLGenerator
from xml.sax.xmlreader import AttributesImpl

from sqlalchemy import Engine, Table, select, tuple_

from postgate.core.clock import aware, utcnow
from postgate.store import tables as t

NAMESPACE = "urn:postgate:export:1"
SCHEMA = Path(__file__).with_name("export.xsd")

# section element, row element, table, {attribute: column}, [child text elements]
SECTIONS: list[tuple[str, str, Table, dict[str, str], list[str]]] = [
    ("lists", "list", t.mailing_list, {"id": "id", "name": "name", "created": "created_at"}, []),
    ("members", "member", t.list_member, {"list": "list_id", "contact": "contact_id"}, []),
    (
        "contacts",
        "contact",
        t.contact,
        {
            "id": "id",
            "email": "email",
            "phone": "phone",
            "name": "name",
            "created": "created_at",
            "last-activity": "last_activity_at",
            "erased": "erased_at",
        },
        [],
    ),
    (
        "consents",
        "consent",
        t.consent,
        {
            "id": "id",
            "contact": "contact_id",
            "channel": "channel",
            "topic": "topic",
            "source": "source",
            "status": "status",
            "consented": "consented_at",
            "recorded": "created_at",
            "form": "form_id",
            "text-hash": "consent_text_hash",
            "text-version": "consent_text_version",
            "signup-ip": "signup_ip",
            "signup-user-agent": "signup_user_agent",
            "confirmed": "confirmed_at",
            "confirm-ip": "confirm_ip",
            "confirm-user-agent": "confirm_user_agent",
            "evidence": "evidence_ref",
            "marketing-checkbox": "marketing_checkbox",
        },
        [],
    ),
    (
        "campaigns",
        "campaign",
        t.campaign,
        {
            "id": "id",
            "external-id": "external_id",
            "channel": "channel",
            "kind": "kind",
            "topic": "topic",
            "state": "state",
            "from": "from_email",
            "created": "created_at",
            "finished": "finished_at",
        },
        ["subject", "text", "html"],
    ),
    (
        "deliveries",
        "delivery",
        t.delivery,
        {
            "id": "id",
            "campaign": "campaign_id",
            "contact": "contact_id",
            "address": "address",
            "state": "state",
            "reason": "reason",
            "attempts": "attempts",
            "sent": "sent_at",
        },
        [],
    ),
    (
        "suppressions",
        "suppression",
        t.suppression,
        {
            "channel": "channel",
            "address": "address",
            "reason": "reason",
            "created": "created_at",
        },
        [],
    ),
]
PAGE = 5000


_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return aware(value).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return _INVALID_XML.sub("\ufffd", str(value))


def _rows(engine: Engine, table: Table, tenant_id: int, columns: Iterable[str]) -> Iterator[Any]:
    """All of a tenant's rows of ``table``, keyset-paginated by primary key."""
    key = list(table.primary_key.columns)
    cols = [*key, *(table.c[n] for n in dict.fromkeys(columns) if table.c[n] not in key)]
    after: tuple[Any, ...] | None = None
    while True:
        query = select(*cols).where(table.c.tenant_id == tenant_id).order_by(*key).limit(PAGE)
        if after is not None:
            query = query.where(tuple_(*key) > tuple_(*after))
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield from rows
        after = tuple(rows[-1][: len(key)])


def _start(xml: XMLGenerator, name: str, attrs: dict[str, str]) -> None:
    xml.startElement(name, AttributesImpl(attrs))


def export_tenant(engine: Engine, tenant_id: int, out: BinaryIO) -> None:
    """Write the tenant's export (UTF-8 XML) to the binary stream ``out``."""
    tn = t.tenant.c
    with engine.connect() as conn:
        tenant = conn.execute(
            select(tn.slug, tn.name, tn.domain, tn.created_at).where(tn.id == tenant_id)
        ).one()
    xml = XMLGenerator(out, encoding="utf-8", short_empty_elements=True)
    xml.startDocument()
    _start(xml, "export", {"xmlns": NAMESPACE, "generated": utcnow().isoformat(), "version": "1"})
    _start(
        xml,
        "tenant",
        {
            "slug": tenant.slug,
            "name": tenant.name,
            "domain": tenant.domain,
            "created": _text(tenant.created_at),
        },
    )
    xml.endElement("tenant")
    for section, element, table, attributes, children in SECTIONS:
        _start(xml, section, {})
        for row in _rows(engine, table, tenant_id, [*attributes.values(), *children]):
            m = row._mapping
            attrs = {a: _text(m[c]) for a, c in attributes.items() if m[c] is not None}
            _start(xml, element, attrs)
            for child in children:
                _start(xml, child, {})
                xml.characters(_text(m[child] or ""))
                xml.endElement(child)
            xml.endElement(element)
        xml.endElement(section)
    xml.endElement("export")
    xml.endDocument()
