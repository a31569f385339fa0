"""The preference centre over real HTTP with real workers: leaving one topic is a
consent record with its proof and the next campaign's gate follows it; subscribing again
goes through double opt-in; leaving everything suppresses like an unsubscribe."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select
from sqlmodel import Session

from postgate.consent import records
from postgate.store import tables as t
from postgate.store.models.consent import Contact
from tests.consent.test_signup_forms import mails_to
from tests.consent.test_unsubscribe import unsubscribe_url
from tests.pages.site import CONSENT_HU, Site, branded
from tests.support import World, ago

BROWSER = {"Accept": "text/html", "Accept-Language": "hu-HU,hu;q=0.9"}


def subscriber(site: Site, local: str, topics: tuple[str, ...] = ("news", "events")) -> Contact:
    """A list member who confirmed each of ``topics`` on the site's form."""
    world = site.world
    with world.ctx.engine.connect() as conn:
        form_id = conn.scalar(
            select(t.signup_form.c.id).where(t.signup_form.c.public_id == site.form["public_id"])
        )
    with Session(world.ctx.engine, expire_on_commit=False) as s:
        contact = records.add_contact(
            s,
            world.tenant_id,
            email=f"{local}@{world.tenant.domain}",
            name=local.title(),
            lists=[world.mlist],
        )
        for topic in topics:
            records.add_consent(
                s,
                contact,
                "email",
                topic,
                "signup_form",
                "confirmed",
                ago(40),
                confirmed_at=ago(40),
                form_id=form_id,
            )
        s.commit()
    return contact


def send(world: World, name: str, topic: str) -> list[tuple[str, str, str | None]]:
    world.publish(world.message(name, topic=topic))
    world.run(world.finished(name))
    return [(r.address, r.state, r.reason) for r in world.deliveries(name)]


def consents(world: World, contact_id: int) -> list[tuple[str, str, str, str | None, str | None]]:
    c = t.consent.c
    with world.ctx.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(  # type: ignore[misc]
                select(c.topic, c.status, c.source, c.signup_ip, c.signup_user_agent)
                .where(c.tenant_id == world.tenant_id, c.contact_id == contact_id)
                .order_by(c.id)
            )
        ]


def test_leaving_a_topic_is_a_consent_record_the_next_gate_follows(world: World, api: str) -> None:
    site = branded(world, api)
    anna = subscriber(site, "anna")
    address = str(anna.email)
    assert send(world, "deals-1", "news") == [(address, "sent", None)]
    url = unsubscribe_url(world, address, api)

    page = httpx.get(url, headers=BROWSER)
    assert page.status_code == 200
    for text in (
        "Acme Kft.",
        "Heti akciók",
        "Rendezvények",
        CONSENT_HU,
        address,
        "2 témára iratkozott fel",
        "Leiratkozás: Heti akciók",
    ):
        assert text in page.text, text
    assert consents(world, int(anna.id or 0))[-1][1] == "confirmed"  # a GET changes nothing

    left = httpx.post(
        url,
        data={"action": "leave", "topic": "news"},
        headers=BROWSER | {"User-Agent": "Telefon/1.0"},
    )
    assert left.status_code == 200
    assert "Nem kap több üzenetet ebben a témában: Heti akciók." in left.text
    assert "1 témára iratkozott fel" in left.text and "Újra feliratkozás" in left.text
    assert consents(world, int(anna.id or 0))[-1] == (
        "news",
        "withdrawn",
        "preference_centre",
        "127.0.0.1",
        "Telefon/1.0",
    )

    assert send(world, "deals-2", "news") == [(address, "blocked", "consent_withdrawn")]
    assert send(world, "party", "events") == [(address, "sent", None)]

    # subscribing again is a double opt-in: a confirmation mail, then a POST to its link
    rejoin = httpx.post(url, data={"action": "join", "topic": "news"}, headers=BROWSER)
    assert "Megerősítő linket küldtünk ide" in rejoin.text
    world.run(lambda: len(mails_to(world, address)) >= 3, workers=("sender",))
    confirmation = mails_to(world, address)[-1]
    assert confirmation["Subject"] == "Kérjük, erősítse meg a feliratkozását: Heti akciók"
    body = confirmation.get_content()
    assert CONSENT_HU in body and "Acme Kft." in body
    token = re.search(r"/c/([A-Za-z0-9_-]{40,})", body)
    assert token, body
    done = httpx.post(f"{api}/c/{token.group(1)}", headers=BROWSER)
    assert done.status_code == 200 and "Heti akciók" in done.text
    assert consents(world, int(anna.id or 0))[-1][:3] == ("news", "confirmed", "signup_form")
    assert send(world, "deals-3", "news") == [(address, "sent", None)]


def test_leaving_everything_suppresses_and_one_click_still_works(world: World, api: str) -> None:
    site = branded(world, api)
    bela, csilla = subscriber(site, "bela"), subscriber(site, "csilla")
    send(world, "deals-1", "news")
    url = unsubscribe_url(world, str(bela.email), api)
    gone = httpx.post(
        url, data={"action": "leave_all"}, headers={"Accept": "text/html", "Accept-Language": "en"}
    )
    assert gone.status_code == 200 and "Unsubscribed" in gone.text
    assert "Acme Kft. will email" in gone.text and "no more promotional messages" in gone.text
    assert [r[1] for r in consents(world, int(bela.id or 0))[-2:]] == ["withdrawn", "withdrawn"]
    one_click = httpx.post(
        unsubscribe_url(world, str(csilla.email), api), data={"List-Unsubscribe": "One-Click"}
    )
    assert one_click.status_code == 200
    assert {(a, s, r) for a, s, r in send(world, "party", "events")} == {
        (str(bela.email), "blocked", "suppressed"),
        (str(csilla.email), "blocked", "suppressed"),
    }
    invalid = httpx.get(f"{api}/u/not-a-token", headers=BROWSER)
    assert invalid.status_code == 404 and "leiratkozási link nem érvényes" in invalid.text


def test_no_resubscribe_where_the_tenant_does_not_allow_it(world: World, api: str) -> None:
    site = branded(world, api)
    r = httpx.put(
        f"{api}/v1/brand",
        headers=site.auth,
        json={"display_name": "Acme Kft.", "allow_resubscribe": False},
    )
    assert r.status_code == 200 and r.json()["allow_resubscribe"] is False
    dora = subscriber(site, "dora", topics=("news",))
    send(world, "deals-1", "news")
    url = unsubscribe_url(world, str(dora.email), api)
    left = httpx.post(url, data={"action": "leave", "topic": "news"}, headers=BROWSER)
    assert "Nem kap több üzenetet" in left.text and "Újra feliratkozás" not in left.text
    httpx.post(url, data={"action": "join", "topic": "news"}, headers=BROWSER)
    with world.ctx.engine.connect() as conn:
        pending = conn.scalar(
            select(t.pending_signup.c.id).where(t.pending_signup.c.tenant_id == world.tenant_id)
        )
    assert pending is None  # no confirmation was prepared
    assert consents(world, int(dora.id or 0))[-1][:2] == ("news", "withdrawn")


def test_a_topic_without_a_name_in_the_readers_language_uses_another(
    world: World, api: str
) -> None:
    site = branded(world, api)
    r = httpx.put(
        f"{api}/v1/topics/news", headers=site.auth, json={"labels": {"hu": {"name": "Heti akciók"}}}
    )
    assert r.status_code == 200
    form = httpx.get(
        f"{api}/f/{site.form['public_id']}",
        headers={"Accept": "text/html", "Accept-Language": "en"},
    )
    assert "Subscribe: Heti akciók" in form.text
    other = site.new_form(topic="unnamed")
    plain = httpx.get(
        f"{api}/f/{other['public_id']}", headers={"Accept": "text/html", "Accept-Language": "en"}
    )
    assert "Subscribe: unnamed" in plain.text
