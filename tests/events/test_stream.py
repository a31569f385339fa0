"""Every delivery outcome and feedback event of a tenant becomes one event.v1, in
order, readable from a cursor and posted, signed, to the tenant's webhook endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jsonschema

from postgate.client import Client, verify_signature
from postgate.http.auth import create_key
from postgate.platform import schemas
from postgate.runtime.context import Context
from tests.consent.test_unsubscribe import unsubscribe_url
from tests.events.receiver import Receiver
from tests.support import World, run_until
from tests.workers.listening import deliver
from tests.workers.test_forged_feedback import arf, sent_mail


def key(world: World) -> dict[str, str]:
    made = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    return {"Authorization": f"Bearer {made}"}


def all_events(api: str, headers: dict[str, str], limit: int = 100) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    after = 0
    while True:
        page = httpx.get(
            f"{api}/v1/events", params={"after": after, "limit": limit}, headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        if not body["events"]:
            assert body["next"] == after
            return seen
        seen += body["events"]
        after = body["next"]


def run_events(ctx: Context, until: Any, timeout: float = 20) -> None:
    asyncio.run(run_until(ctx, ["events"], until, timeout))


def test_a_campaign_and_its_feedback_reach_the_crm(
    world: World, api: str, listener: int, receiver: Receiver
) -> None:
    headers = key(world)
    made = httpx.post(
        f"{api}/v1/event-endpoints",
        json={"url": receiver.url, "description": "crm"},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert secret.startswith("whsec_")

    for name in ("anna", "bela", "cili"):
        world.contact(name)
    domain = world.tenant.domain
    anna, bela, cili = (f"{n}@{domain}" for n in ("anna", "bela", "cili"))
    world.sink.handler.script(cili, "550 5.1.1 <cili>: Recipient address rejected: no such user")
    world.publish(world.message("spring"))
    world.run(world.finished("spring"))
    bounce = world.ctx.settings.bounce_domain
    assert deliver(listener, arf(sent_mail(world, anna), bounce), f"fbl@{bounce}")[0] == 250
    one_click = httpx.post(
        unsubscribe_url(world, bela, api),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200

    events = all_events(api, headers, limit=2)
    told = sorted((ev["type"], ev["recipient"]) for ev in events)
    assert told == sorted(
        [
            ("delivery.sent", anna),
            ("delivery.sent", bela),
            ("delivery.failed", cili),
            ("feedback.bounce", cili),
            ("feedback.complaint", anna),
            ("feedback.unsubscribe", bela),
        ]
    )
    seqs = [ev["seq"] for ev in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len({ev["id"] for ev in events}) == len(events)
    schema = schemas.shipped("event.v1")
    for ev in events:
        jsonschema.validate(ev, schema)
        assert ev["schema"] == "event.v1" and ev["tenant"] == world.tenant.slug
        assert ev["campaign_external_id"] == "spring" and ev["channel"] == "email"
        assert isinstance(ev["delivery_id"], int)
    by_type = {ev["type"]: ev for ev in events}
    assert by_type["feedback.bounce"]["detail"]["hard"] is True
    assert by_type["feedback.bounce"]["detail"]["reason"] == "user_unknown"
    assert by_type["delivery.failed"]["detail"]["code"] == 550
    # a fact's events follow their delivery's order: sent before the complaint about it
    order = [(ev["type"], ev["recipient"]) for ev in events]
    assert order.index(("delivery.sent", anna)) < order.index(("feedback.complaint", anna))

    run_events(world.ctx, lambda: len(receiver.ids()) >= len(events))
    posted = receiver.events()
    assert receiver.ids() == {ev["id"] for ev in events}
    assert [ev["seq"] for ev in posted] == sorted(ev["seq"] for ev in posted)
    assert all(post.signed_by(secret) for post in receiver.posts)
    assert all(  # as a CRM checks them, with the client's helper
        verify_signature(
            secret,
            post.body,
            post.headers["x-postgate-timestamp"],
            post.headers["x-postgate-signature"],
        )
        for post in receiver.posts
    )
    with Client(api, headers["Authorization"].removeprefix("Bearer ")) as client:
        assert [ev["id"] for ev in client.events(page=4)] == [ev["id"] for ev in events]
        assert list(client.events(after=events[-1]["seq"])) == []
        assert [ep["id"] for ep in client.endpoints()] == [made.json()["id"]]
    assert not any(post.signed_by("whsec_wrong") for post in receiver.posts)
    shown = httpx.get(f"{api}/v1/event-endpoints/{made.json()['id']}", headers=headers).json()
    assert shown["delivered"] == len(events) and shown["cursor"] == events[-1]["seq"]
    assert shown["state"] == "active" and "secret" not in shown


def test_another_tenant_sees_none_of_it(
    world: World, api: str, ctx: Context, receiver: Receiver
) -> None:
    world.contact("dora")
    world.publish(world.message("mine"))
    world.run(world.finished("mine"))
    other = World.create(ctx, world.sink)
    theirs = key(other)
    assert all_events(api, theirs) == []
    mine = all_events(api, key(world))
    assert [ev["type"] for ev in mine] == ["delivery.sent"]
    # a cursor is just a position: the other tenant's page after it is still its own
    after = httpx.get(f"{api}/v1/events", params={"after": 0}, headers=theirs).json()
    assert after == {"events": [], "next": 0}
    made = httpx.post(f"{api}/v1/event-endpoints", json={"url": receiver.url}, headers=key(world))
    assert made.status_code == 201
    endpoint = f"{api}/v1/event-endpoints/{made.json()['id']}"
    assert httpx.get(endpoint, headers=theirs).status_code == 404
    assert httpx.post(f"{endpoint}/resume", headers=theirs).status_code == 404
    assert httpx.get(f"{endpoint}/dead-letters", headers=theirs).status_code == 404
    assert httpx.delete(endpoint, headers=theirs).status_code == 404
    assert httpx.get(f"{api}/v1/event-endpoints", headers=theirs).json() == []


def test_a_batch_handled_twice_tells_each_fact_once(world: World, api: str) -> None:
    world.contact("ede")
    world.publish(world.message("twice"))
    world.run(world.finished("twice"))
    headers = key(world)
    first = all_events(api, headers)
    world.publish(world.message("twice"))  # the same campaign.v1 again: idempotent
    world.run(lambda: True, timeout=5)
    assert all_events(api, headers) == first


def test_unknown_types_and_bad_cursors_are_refused(world: World, api: str) -> None:
    headers = key(world)
    r = httpx.get(f"{api}/v1/events", params={"type": "delivery.exploded"}, headers=headers)
    assert r.status_code == 422 and "delivery.exploded" in r.text
    assert httpx.get(f"{api}/v1/events", params={"after": -1}, headers=headers).status_code == 422
    assert httpx.get(f"{api}/v1/events").status_code == 401
