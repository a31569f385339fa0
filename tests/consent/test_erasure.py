"""Erasure: the person's data goes, a hashed suppression stays and still blocks them."""

from __future__ import annotations

from sqlalchemy import insert, select

from postgate.core.clock import utcnow
from postgate.store import tables as t
from postgate.tenants.erasure import address_hash, erase, suppressions
from tests.support import World


def test_erased_person_is_gone_and_never_mailed_again(world: World) -> None:
    anna = world.contact("anna", signup_ip="203.0.113.9", signup_user_agent="Firefox")
    world.contact("bela")
    world.publish(world.message("before"))
    world.run(world.finished("before"))
    address = f"anna@{world.tenant.domain}"

    report = erase(world.ctx.engine, world.tenant_id, address, actor="test")
    assert (report.contacts, report.consents, report.deliveries) == (1, 1, 1)

    with world.ctx.engine.connect() as conn:
        contact = conn.execute(select(t.contact).where(t.contact.c.id == anna.id)).one()
        consents = conn.execute(select(t.consent).where(t.consent.c.contact_id == anna.id)).all()
        deliveries = conn.execute(
            select(t.delivery.c.address).where(t.delivery.c.contact_id == anna.id)
        ).all()
        suppressed = conn.execute(
            select(t.suppression.c.address, t.suppression.c.reason).where(
                t.suppression.c.tenant_id == world.tenant_id
            )
        ).all()
        everything = " ".join(
            str(v)
            for table in (t.contact, t.consent, t.delivery, t.feedback_event, t.suppression)
            for row in conn.execute(select(table).where(table.c.tenant_id == world.tenant_id))
            for v in row
        )
    assert contact.email is None and contact.name == "" and contact.erased_at is not None
    assert consents == [] and deliveries == [(address_hash(address),)]
    assert suppressed == [(address_hash(address), "erasure")]
    assert address not in everything and "203.0.113.9" not in everything

    # the same address comes back through an import with fresh consent: still blocked
    world.contact("anna")
    world.publish(world.message("after", kind="transactional"))
    world.run(world.finished("after"))
    rows = {r.address: (r.state, r.reason) for r in world.deliveries("after")}
    assert rows[address] == ("blocked", "suppressed")
    assert rows[f"bela@{world.tenant.domain}"] == ("sent", None)
    assert len(world.sink.handler.to(address)) == 1  # only the mail from before the erasure


def test_every_spelling_of_an_erased_address_counts_as_erased(world: World) -> None:
    world.contact("gone")
    address = f"gone@{world.tenant.domain}"
    erase(world.ctx.engine, world.tenant_id, address, actor="dpo")
    with world.ctx.engine.begin() as conn:
        conn.execute(
            insert(t.suppression).values(  # an older plain entry of one spelling
                tenant_id=world.tenant_id,
                channel="email",
                address=address.upper(),
                reason="unsubscribe",
                detail="",
                created_at=utcnow(),
            )
        )
        spellings = [address, address.upper(), f" {address.title()} ", "other@example.com"]
        found = suppressions(conn, world.tenant_id, "email", spellings)
    assert found == {
        address: "erasure",
        address.upper(): "erasure",
        f" {address.title()} ": "erasure",
    }
