"""Signup forms over real HTTP (uvicorn) with real workers and an aiosmtpd sink:
form post -> confirmation mail -> POST confirm -> a campaign reaches the person."""

from __future__ import annotations

import email
import email.policy
import re
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from postgate.consent.signup import hash_text, hash_token
from postgate.http.auth import create_key
from postgate.store import tables as t
from tests.support import World, serve_api

CONSENT_TEXT = "I want the Acme newsletter about news. I can unsubscribe at any time."


def make_form(world: World, api: str, **overrides: Any) -> tuple[str, dict[str, Any]]:
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    spec = {
        "name": "Footer form",
        "topic": "news",
        "list_id": world.mlist.id,
        "consent_text": CONSENT_TEXT,
        "consent_text_version": "v3",
        "success_message": "Check your inbox",
        "confirmed_message": "Welcome aboard",
    }
    spec.update(overrides)
    r = httpx.post(f"{api}/v1/forms", json=spec, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201, r.text
    return key, r.json()


def mails_to(world: World, address: str) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(r.data, policy=email.policy.default)  # type: ignore[misc]
        for r in world.sink.handler.to(address)
    ]


def count(world: World, table: Any, *where: Any) -> int:
    with world.ctx.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def confirm_token(world: World, address: str) -> str:
    world.run(lambda: len(world.sink.handler.to(address)) >= 1, workers=("sender",))
    (mail,) = mails_to(world, address)
    body = mail.get_content()
    match = re.search(r"/c/([A-Za-z0-9_-]{40,})", body)
    assert match, body
    return match.group(1)


def test_double_opt_in_then_a_campaign_reaches_them(world: World, api: str) -> None:
    _, form = make_form(world, api)
    address = f"zoe@{world.tenant.domain}"
    r = httpx.post(
        f"{api}/f/{form['public_id']}",
        data={"email": address, "name": "Zoe Evil"},
        headers={"User-Agent": "Browser/1.0"},
    )
    assert r.status_code == 202 and "Check your inbox" in r.text
    token = confirm_token(world, address)
    (mail,) = mails_to(world, address)
    assert mail["To"] == address  # the typed name never appears in the confirmation
    assert "Zoe" not in mail.as_string() and "Evil" not in mail.as_string()
    assert mail["From"].addresses[0].addr_spec == f"no-reply@{world.tenant.domain}"
    assert "List-Unsubscribe" not in mail  # transactional
    p = t.pending_signup.c
    with world.ctx.engine.connect() as conn:
        stored = conn.execute(
            select(p.token_hash, p.name).where(p.tenant_id == world.tenant_id)
        ).one()
        queued_bodies = [str(v) for v in conn.execute(select(t.delivery)).all()]
    assert stored.token_hash == hash_token(token) and stored.name == "Zoe Evil"
    assert not any(token in row for row in queued_bodies)

    consents = (t.consent.c.tenant_id == world.tenant_id,)
    page = httpx.get(f"{api}/c/{token}")
    assert page.status_code == 200 and 'method="post"' in page.text
    httpx.get(f"{api}/c/{token}")  # a link scanner fetching twice changes nothing
    assert count(world, t.consent, *consents) == 0

    done = httpx.post(f"{api}/c/{token}", headers={"User-Agent": "Phone/2.0"})
    assert done.status_code == 200 and "Welcome aboard" in done.text
    assert httpx.post(f"{api}/c/{token}").status_code == 404  # single use
    assert httpx.get(f"{api}/c/{token}").status_code == 404
    c = t.consent.c
    with world.ctx.engine.connect() as conn:
        proof = conn.execute(select(t.consent).where(*consents)).one()
        form_id = conn.scalar(
            select(t.signup_form.c.id).where(t.signup_form.c.public_id == form["public_id"])
        )
        name = conn.scalar(select(t.contact.c.name).where(t.contact.c.id == proof.contact_id))
    assert (proof.source, proof.status, proof.topic, proof.channel) == (
        "signup_form",
        "confirmed",
        "news",
        "email",
    )
    assert proof.form_id == form_id
    assert proof.consent_text_hash == hash_text(CONSENT_TEXT) == form["consent_text_hash"]
    assert proof.consent_text_version == "v3"
    assert proof.signup_ip == "127.0.0.1" and proof.signup_user_agent == "Browser/1.0"
    assert proof.confirm_ip == "127.0.0.1" and proof.confirm_user_agent == "Phone/2.0"
    assert proof.confirmed_at >= proof.consented_at
    assert name == "Zoe Evil"
    assert c.form_id is not None

    msg = world.message("after-doi")
    world.publish(msg)
    world.run(world.finished("after-doi"))
    assert [(r.address, r.state) for r in world.deliveries("after-doi")] == [(address, "sent")]
    assert len(mails_to(world, address)) == 2


def test_bombing_one_address_sends_one_confirmation(world: World, api: str) -> None:
    _, form = make_form(world, api)
    address = f"target@{world.tenant.domain}"
    with httpx.Client(base_url=api) as http:
        for _ in range(6):
            r = http.post(f"/f/{form['public_id']}", json={"email": address})
            assert r.status_code == 202 and r.json()["status"] == "pending"
    world.run(lambda: len(world.sink.handler.to(address)) >= 1, workers=("sender",))
    time.sleep(0.3)
    assert len(world.sink.handler.to(address)) == 1
    assert count(world, t.pending_signup, t.pending_signup.c.tenant_id == world.tenant_id) == 1
    # past the rate limiter (another api process, a restart), the database still says no
    from postgate.consent import signup
    from postgate.core.clock import utcnow

    row = signup.find_form(world.ctx.engine, form["public_id"])
    again = signup.submit(
        world.ctx.engine,
        world.ctx.settings,
        row,
        signup.Applicant(address, None, ""),
        ["email"],
        signup.Visitor("::1", "t"),
        utcnow(),
    )
    assert (again.status, again.batches) == ("already_sent", [])


def test_hostile_inputs_are_refused_and_nothing_is_stored(world: World, api: str) -> None:
    key, form = make_form(world, api)
    url = f"{api}/f/{form['public_id']}"
    ok = f"ok@{world.tenant.domain}"
    cases: list[tuple[dict[str, Any], int]] = [
        ({"data": {"email": ok, "name": "Eve\r\nBcc: victim@example.com"}}, 422),
        ({"data": {"email": ok, "name": "x" * 1_000_000}}, 413),
        ({"json": {"email": ok, "name": "y" * 5000}}, 422),
        ({"data": {"email": ok, "name": "Anna\u202egnp.exe"}}, 422),  # bidi override
        ({"data": {"email": f"o\u200bk@{world.tenant.domain}"}}, 422),  # zero-width space
        ({"data": {"email": f"ok\uff20{world.tenant.domain}"}}, 422),  # fullwidth @
        ({"data": {"email": "not-an-address"}}, 422),
        ({"data": {"email": ok, "phone": "+36 1 000"}}, 422),
        ({"json": {"email": ok, "name": ["list"]}}, 400),
        ({"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"email=x", "headers": {"Content-Type": "text/plain"}}, 415),
    ]
    with httpx.Client() as http:
        for kwargs, status in cases:
            r = http.post(url, **kwargs)
            assert r.status_code == status, (kwargs.get("data") or kwargs.get("json"), r.text)
        assert http.post(f"{api}/f/nope-{uuid.uuid4().hex}", data={"email": ok}).status_code == 404
        honeypot = http.post(url, data={"email": ok, "website": "http://spam.example"})
        assert honeypot.status_code == 202

        other = World.create(world.ctx, world.sink)
        other_key = create_key(world.ctx.engine, "tenant", "crm", other.tenant.slug)
        auth = {"Authorization": f"Bearer {other_key}"}
        assert (
            http.patch(
                f"{api}/v1/forms/{form['public_id']}", json={"enabled": False}, headers=auth
            ).status_code
            == 404
        )
        stolen_list = {
            "name": "x",
            "topic": "news",
            "list_id": world.mlist.id,
            "consent_text": "x",
            "consent_text_version": "1",
        }
        assert http.post(f"{api}/v1/forms", json=stolen_list, headers=auth).status_code == 404
        assert [f["public_id"] for f in http.get(f"{api}/v1/forms", headers=auth).json()] == []

        off = http.patch(
            f"{api}/v1/forms/{form['public_id']}",
            json={"enabled": False},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert off.status_code == 200 and off.json()["enabled"] is False
        assert http.post(url, data={"email": ok}).status_code == 404
    assert count(world, t.pending_signup, t.pending_signup.c.tenant_id == world.tenant_id) == 0
    assert count(world, t.contact, t.contact.c.tenant_id == world.tenant_id) == 0
    assert count(world, t.campaign, t.campaign.c.tenant_id == world.tenant_id) == 0


def test_per_ip_rate_limit(world: World) -> None:
    settings = world.ctx.settings.model_copy(update={"signup_rate_per_ip": 3})
    for api in serve_api(settings):
        _, form = make_form(world, api)
        codes = [
            httpx.post(
                f"{api}/f/{form['public_id']}", data={"email": f"p{i}@{world.tenant.domain}"}
            ).status_code
            for i in range(5)
        ]
        assert codes == [202, 202, 202, 429, 429]
    assert count(world, t.pending_signup, t.pending_signup.c.tenant_id == world.tenant_id) == 3


def test_forms_keep_working_while_bulk_sending_is_disabled(world: World, api: str) -> None:
    from postgate.core.clock import utcnow
    from postgate.core.states import BlockSource, Scope
    from postgate.tenants import sending

    with world.ctx.engine.begin() as conn:  # as the circuit breaker leaves it
        sending.add_block(
            conn,
            world.tenant_id,
            Scope.BULK_EMAIL,
            BlockSource.BREAKER,
            "complaints",
            "breaker",
            {},
            utcnow(),
        )
    _, form = make_form(world, api)
    address = f"late@{world.tenant.domain}"
    assert httpx.post(f"{api}/f/{form['public_id']}", data={"email": address}).status_code == 202
    token = confirm_token(world, address)
    assert httpx.post(f"{api}/c/{token}").status_code == 200


def test_a_confirmation_whose_link_was_lost_is_cancelled_not_sent(world: World, api: str) -> None:
    """The sweeper may republish a confirmation row without its context (the link lived
    only in the lost queue message): the sender cancels it instead of mailing no link."""
    from postgate.consent import signup
    from postgate.core.clock import utcnow

    _, form = make_form(world, api)
    address = f"lost@{world.tenant.domain}"
    row = signup.find_form(world.ctx.engine, form["public_id"])
    made = signup.submit(
        world.ctx.engine,
        world.ctx.settings,
        row,
        signup.Applicant(address, None, ""),
        ["email"],
        signup.Visitor("::1", "t"),
        utcnow(),
    )
    (mail,) = made.batches
    broker = world.ctx.broker()
    broker.publish("send", {"campaign_id": mail["campaign_id"], "ids": mail["ids"]})
    broker.close()
    d = t.delivery.c
    with world.ctx.engine.connect() as conn:

        def state() -> Any:
            return conn.execute(select(d.state, d.reason).where(d.id == mail["ids"][0])).one()

        world.run(lambda: state()[0] != "queued", workers=("sender",))
        assert tuple(state()) == ("cancelled", "link_lost")
    assert world.sink.handler.to(address) == []

    signup.abandon(world.ctx.engine, made, utcnow())  # a retry is possible right away
    assert count(world, t.pending_signup, t.pending_signup.c.tenant_id == world.tenant_id) == 0
    again = httpx.post(f"{api}/f/{form['public_id']}", data={"email": address})
    assert again.status_code == 202
    assert count(world, t.pending_signup, t.pending_signup.c.tenant_id == world.tenant_id) == 1


def test_expired_links_neither_show_nor_confirm(world: World, api: str) -> None:
    from postgate.consent import signup
    from postgate.core.clock import utcnow

    _, form = make_form(world, api)
    row = signup.find_form(world.ctx.engine, form["public_id"])
    expired = world.ctx.settings.model_copy(update={"public_url": api, "signup_token_ttl_s": -1})
    made = signup.submit(
        world.ctx.engine,
        expired,
        row,
        signup.Applicant(f"slow@{world.tenant.domain}", None, ""),
        ["email"],
        signup.Visitor("::1", "t"),
        utcnow(),
    )
    (mail,) = made.batches
    (context,) = mail["context"].values()
    url = context["confirm_url"]
    assert url.startswith(f"{api}/c/")
    assert httpx.get(url).status_code == 404
    assert httpx.post(url).status_code == 404
    assert httpx.post(url[:-1] + ("A" if url[-1] != "A" else "B")).status_code == 404
    assert count(world, t.consent, t.consent.c.tenant_id == world.tenant_id) == 0
