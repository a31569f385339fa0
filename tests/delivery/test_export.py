"""The tenant XML export validates against the published schema and holds the tenant's
data — and only that tenant's."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import xmlschema
from sqlmodel import Session

from postgate.consent import records
from postgate.tenants import export
from tests.support import World

NS = {"x": export.NAMESPACE}


def test_export_is_valid_and_complete(world: World) -> None:
    world.contact("anna", evidence_ref="x", signup_ip="203.0.113.1")
    world.contact("bela\x07", consent=None)
    with Session(world.ctx.engine) as s:
        records.suppress(s, world.tenant_id, "email", "gone@x.example", "hard_bounce")
        s.commit()
    world.publish(
        world.message(
            "exported",
            content={"subject": "Ünnep <3", "text": "Hi & welcome\n", "html": "<p>Hi</p>"},
        )
    )
    world.run(world.finished("exported"))
    other = World.create(world.ctx, world.sink)
    other.contact("secret")

    buffer = io.BytesIO()
    export.export_tenant(world.ctx.engine, world.tenant_id, buffer)
    document = buffer.getvalue()
    xmlschema.XMLSchema(str(export.SCHEMA)).validate(io.BytesIO(document))

    root = ET.fromstring(document)
    assert root.find("x:tenant", NS).get("slug") == world.tenant.slug  # type: ignore[union-attr]
    emails = [c.get("email") for c in root.iterfind("x:contacts/x:contact", NS)]
    assert emails == [f"anna@{world.tenant.domain}", f"bela\ufffd@{world.tenant.domain}"]
    (consent,) = root.iterfind("x:consents/x:consent", NS)
    assert consent.get("signup-ip") == "203.0.113.1" and consent.get("status") == "confirmed"
    (campaign,) = root.iterfind("x:campaigns/x:campaign", NS)
    assert campaign.findtext("x:subject", namespaces=NS) == "Ünnep <3"
    states = sorted(d.get("state") for d in root.iterfind("x:deliveries/x:delivery", NS))
    assert states == ["blocked", "sent"]
    assert [s.get("reason") for s in root.iterfind("x:suppressions/x:suppression", NS)] == [
        "hard_bounce"
    ]
    assert len(list(root.iterfind("x:members/x:member", NS))) == 2
    assert b"secret@" not in document
