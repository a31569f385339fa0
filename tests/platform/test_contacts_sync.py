"""contacts.v1 over the queue (the contacts worker) and the api: idempotent by the CRM's
id, the import rules on every contact, malformed documents dead-lettered with the reason."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from postgate.client import QueueClient
from postgate.core.clock import utcnow
from postgate.http.auth import create_key
from postgate.platform.contacts_sync import sync_table
from postgate.store import tables as t
from tests.support import World


def consent(days: int = 20, **extra: Any) -> dict[str, Any]:
    return {
        "channel": "email",
        "topic": "news",
        "source": "written_consent",
        "consented_at": (utcnow() - timedelta(days=days)).isoformat(),
        "evidence": "signed form 17",
    } | extra


def doc(world: World, contacts: list[dict[str, Any]], batch_id: str = "") -> dict[str, Any]:
    return {
        "version": "contacts.v1",
        "tenant": world.tenant.slug,
        "batch_id": batch_id,
        "contacts": contacts,
    }


def syncs(world: World) -> list[Any]:
    s = sync_table.c
    with world.ctx.engine.connect() as conn:
        return list(
            conn.execute(select(sync_table).where(s.tenant_id == world.tenant_id).order_by(s.id))
        )


def dead(world: World) -> list[str]:
    dl = t.dead_letter.c
    with world.ctx.engine.connect() as conn:
        return list(
            conn.scalars(
                select(dl.error)
                .where(dl.queue == "contacts", dl.body.contains(world.tenant.slug))
                .order_by(dl.id)
            )
        )


def test_queue_sync_is_idempotent_and_applies_the_import_rules(world: World) -> None:
    domain = world.tenant.domain
    contacts = [
        {
            "external_id": "c-1",
            "email": f"anna@{domain}",
            "name": "Anna",
            "lists": [world.mlist.id],
            "attributes": {"city": "Pécs"},
            "consents": [consent()],
        },
        {
            "external_id": "c-2",
            "email": f"bela@{domain}",
            "lists": [world.mlist.id],
            "consents": [consent(source="purchased")],
        },
        {"external_id": "c-3", "email": f"csaba@{domain}", "consents": [consent(days=200)]},
        {
            "external_id": "c-4",
            "email": f"dora@{domain}",
            "last_activity_at": (utcnow() - timedelta(days=400)).isoformat(),
        },
        {"external_id": "c-5", "email": "not an address"},
        {"external_id": "c-6", "email": f"erno@{domain}", "lists": [10**9]},
        {
            "external_id": "c-7",
            "email": f"fanni@{domain}",
            "consents": [
                consent(
                    source="purchase", marketing_checkbox=False, purchase_date=utcnow().isoformat()
                )
            ],
        },
    ]
    with QueueClient(world.ctx.settings.broker_url, world.ctx.settings.queue_prefix) as queue:
        queue.upsert_contacts(world.tenant.slug, contacts, batch_id="nightly-1")
        queue.upsert_contacts(world.tenant.slug, contacts, batch_id="nightly-2")
    world.run(lambda: len(syncs(world)) == 2, workers=("contacts",))
    first, second = syncs(world)
    assert (first.source, first.batch_id, first.created, first.consents) == (
        "queue",
        "nightly-1",
        1,
        1,
    )
    reasons = {r["external_id"]: r["reason"] for r in first.report}
    assert "purchased" in reasons["c-2"] and "refused" in reasons["c-2"]
    assert reasons["c-3"] == "consent older than 6 months"
    assert reasons["c-4"] == "last activity older than 6 months"
    assert "invalid email" in reasons["c-5"]
    assert reasons["c-6"] == "no such list: 1000000000"
    assert "unticked carries no consent" in reasons["c-7"]
    assert (second.created, second.updated, second.unchanged, second.consents, second.dropped) == (
        0,
        0,
        1,
        0,
        6,
    )
    c = t.contact.c
    with world.ctx.engine.connect() as conn:
        emails = list(conn.scalars(select(c.email).where(c.tenant_id == world.tenant_id)))
        consents = conn.scalar(
            select(func.count())
            .select_from(t.consent)
            .where(t.consent.c.tenant_id == world.tenant_id)
        )
    assert emails == [f"anna@{domain}"] and consents == 1
    world.publish(world.message("synced"))
    world.run(world.finished("synced"))
    assert [r.recipients for r in world.sink.handler.received] == [[f"anna@{domain}"]]


def test_malformed_contacts_messages_are_dead_lettered_with_the_reason(world: World) -> None:
    good = doc(world, [{"external_id": "ok-1", "email": f"ok@{world.tenant.domain}"}], "good")
    bad = [
        (json.dumps(good | {"version": "contacts.v9"}), "unknown version 'contacts.v9'"),
        (
            json.dumps(good | {"contacts": [{"email": "x@y.example"}]}),
            "invalid contacts.v1: contacts.0.external_id: Field required",
        ),
        (
            json.dumps(good | {"contacts": [{"external_id": "x", "colour": "red"}]}),
            "contacts.0.colour: Extra inputs are not permitted",
        ),
        (b"{not json " + world.tenant.slug.encode(), "not JSON"),
        (
            json.dumps(good | {"tenant": "nobody", "batch_id": world.tenant.slug}),
            "unknown tenant 'nobody'",
        ),
    ]
    broker = world.ctx.broker()
    for body, _ in bad:
        broker.publish("contacts", body)
    broker.publish("contacts", good)
    broker.close()
    world.run(
        lambda: len(syncs(world)) == 1 and len(dead(world)) == len(bad), workers=("contacts",)
    )
    errors = dead(world)
    for (_, expected), error in zip(bad, errors, strict=True):
        assert expected in error, (expected, error)
    assert syncs(world)[0].created == 1


def test_api_sync_updates_memberships_and_finds_contacts_by_ref(world: World, api: str) -> None:
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    auth = {"Authorization": f"Bearer {key}"}
    domain = world.tenant.domain
    with httpx.Client(base_url=api, headers=auth) as http:
        other = http.post("/v1/lists", json={"name": "vip"}).json()["id"]
        one = {
            "external_id": "crm-9",
            "email": f"gabor@{domain}",
            "name": "Gábor",
            "lists": [world.mlist.id],
            "consents": [consent()],
        }
        made = http.post("/v1/contacts:bulk", json=doc(world, [one], "a")).json()
        assert (made["created"], made["consents"]) == (1, 1), made
        moved = http.post(
            "/v1/contacts:bulk",
            json=doc(world, [{"external_id": "crm-9", "name": "Gábor K.", "lists": [other]}], "b"),
        ).json()
        assert moved["updated"] == 1
        found = http.get("/v1/contacts/by-ref/crm-9").json()
        assert (found["name"], found["lists"], found["email"]) == (
            "Gábor K.",
            [other],
            f"gabor@{domain}",
        )
        assert found["consents"][0]["evidence"] == "signed form 17"
        assert http.get("/v1/contacts/syncs", params={"batch_id": "b"}).json()[0]["updated"] == 1
        foreign = http.post("/v1/contacts:bulk", json=doc(world, [one]) | {"tenant": "other"})
        assert foreign.status_code == 403
        malformed = http.post(
            "/v1/contacts:bulk", json={"version": "contacts.v1", "tenant": world.tenant.slug}
        )
        assert malformed.status_code == 422
        assert http.get("/v1/contacts/by-ref/nobody").status_code == 404
