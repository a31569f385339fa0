"""SMS double opt-in over real sockets: a form post with a phone number -> a confirmation
SMS through the real sender to the local SMSC (SMPP) or SMSAPI stand-in -> POST to its link
-> an SMS consent with proof -> an SMS campaign reaches the number. Each channel is
confirmed on its own address: a link sent by SMS never confirms the mailbox."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import Session

from postgate.consent import records
from postgate.consent.signup import hash_token
from postgate.sinks.smsapi import SmsApiSink
from postgate.sinks.smsc import SmscSink
from postgate.store import tables as t
from postgate.tenants.erasure import erase
from tests.consent.test_signup_forms import mails_to, make_form
from tests.sms.world import rows, settled, sms_message
from tests.support import World

HU, HU2, PL = "+36209876543", "+36309876543", "+48509876543"
LINK = re.compile(r"/c/([A-Za-z0-9_-]{40,})")


def sms_consents(world: World) -> list[Any]:
    c, k = t.consent.c, t.contact.c
    with world.ctx.engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    c.channel,
                    c.status,
                    c.source,
                    k.email,
                    k.phone,
                    c.signup_ip,
                    c.confirm_ip,
                    c.consent_text_version,
                    c.form_id,
                )
                .join(t.contact, k.id == c.contact_id)
                .where(c.tenant_id == world.tenant_id)
            )
        )


def confirmation_sms(world: World, smsc: SmscSink, number: str) -> str:
    world.run(lambda: len(smsc.state.to(number)) >= 1, workers=("sender",))
    got = smsc.state.to(number)
    assert len(got) == 1, [(s.text, s.udh) for s in got]
    return str(got[0].text)


def test_a_number_confirms_by_sms_and_then_gets_the_campaign(
    world: World, api: str, smsc: SmscSink
) -> None:
    _, form = make_form(world, api, channels=["sms"], success_message="")
    r = httpx.post(
        f"{api}/f/{form['public_id']}", data={"phone": "06 20 987 6543", "name": "Zoltán Evil"}
    )
    assert r.status_code == 202 and "Check your phone." in r.text
    text = confirmation_sms(world, smsc, HU)
    (sms,) = smsc.state.to(HU)
    assert sms.encoding == "gsm0338" and sms.udh is None  # one plain part
    assert sms.source == world.ctx.settings.sms_default_sender
    assert "Zolt" not in text and "Evil" not in text  # the typed name is never sent
    assert "STOP" not in text  # transactional: no opt-out line
    match = LINK.search(text)
    assert match, text
    token = match.group(1)
    p = t.pending_signup.c
    with world.ctx.engine.connect() as conn:
        pending = conn.execute(
            select(p.channel, p.address, p.token_hash).where(p.tenant_id == world.tenant_id)
        ).one()
    assert tuple(pending) == ("sms", HU, hash_token(token))

    assert httpx.get(f"{api}/c/{token}").status_code == 200  # a link preview: nothing
    assert sms_consents(world) == []
    assert httpx.post(f"{api}/c/{token}").status_code == 200
    assert httpx.post(f"{api}/c/{token}").status_code == 404  # single use
    (consent,) = sms_consents(world)
    assert (consent.channel, consent.status, consent.source, consent.phone) == (
        "sms",
        "confirmed",
        "signup_form",
        HU,
    )
    assert consent.signup_ip == consent.confirm_ip == "127.0.0.1"
    assert consent.consent_text_version == "v3" and consent.form_id is not None

    world.publish(sms_message(world, "Hello {{ name }}", "after-sms-doi"))
    world.run(lambda: settled(world, "after-sms-doi", 1))
    assert {a: r.state for a, r in rows(world, "after-sms-doi").items()} == {HU: "sent"}
    assert [s.text for s in smsc.state.to(HU)][1] == "Hello Zoltán Evil\nLeiratkozas: valasz STOP"


def test_each_channel_is_confirmed_on_its_own_address(
    world: World, api: str, smsapi: SmsApiSink
) -> None:
    world.ctx.settings.signup_sms_regions = "HU,PL"
    _, form = make_form(world, api, channels=["email", "sms"])
    address = f"both@{world.tenant.domain}"
    r = httpx.post(f"{api}/f/{form['public_id']}", json={"email": address, "phone": PL})
    assert r.status_code == 202
    world.run(
        lambda: len(smsapi.state.to(PL)) == 1 and len(mails_to(world, address)) == 1,
        workers=("sender",),
    )
    (sent,) = smsapi.state.to(PL)  # +48 goes abroad, through the SMSAPI stand-in
    match = LINK.search(sent.form["message"])
    assert match, sent.form
    assert httpx.post(f"{api}/c/{match.group(1)}").status_code == 200
    assert [(c.channel, c.email, c.phone) for c in sms_consents(world)] == [
        ("sms", None, PL)
    ]  # the mailbox is neither confirmed nor attached by the SMS link

    world.publish(world.message("mail-after", topic="news"))
    world.publish(sms_message(world, "Sms after", "sms-after"))
    world.run(
        lambda: (
            [r.state for r in rows(world, "sms-after").values()] == ["sent"]
            and world.campaign_state("mail-after") == "finished"
        )
    )
    assert [r.state for r in world.deliveries("mail-after")] == ["blocked"]  # no address
    assert len(mails_to(world, address)) == 1  # the confirmation only

    mail_link = LINK.search(mails_to(world, address)[0].get_content())
    assert mail_link
    assert httpx.post(f"{api}/c/{mail_link.group(1)}").status_code == 200
    assert sorted((c.channel, c.email, c.phone) for c in sms_consents(world)) == [
        ("email", address, None),
        ("sms", None, PL),
    ]
    world.publish(world.message("mail-later", topic="news"))
    world.run(lambda: world.campaign_state("mail-later") == "finished")
    assert {(r.address, r.state) for r in world.deliveries("mail-later")} == {
        (address, "sent"),
        ("", "blocked"),
    }


def test_a_typed_number_never_joins_an_existing_contact(
    world: World, api: str, smsc: SmscSink
) -> None:
    """Someone types a known subscriber's address and their own number: the SMS consent
    belongs to a new contact with just that number, so nothing of the subscriber (name,
    attributes) ever reaches the typed phone; and a name typed next to a number that is
    already a contact never renames it."""
    known = world.contact("known")
    with Session(world.ctx.engine) as s:
        records.add_contact(s, world.tenant_id, phone=HU2, name="")
        s.commit()
    _, form = make_form(world, api, channels=["sms"])
    for phone in (HU, HU2):
        r = httpx.post(
            f"{api}/f/{form['public_id']}",
            data={"email": known.email, "phone": phone, "name": "Mallory"},
        )
        assert r.status_code == 202
        match = LINK.search(confirmation_sms(world, smsc, phone))
        assert match
        assert httpx.post(f"{api}/c/{match.group(1)}").status_code == 200
    k = t.contact.c
    with world.ctx.engine.connect() as conn:
        contacts = conn.execute(
            select(k.email, k.phone, k.name).where(k.tenant_id == world.tenant_id).order_by(k.id)
        ).all()
    assert [tuple(c) for c in contacts] == [
        (known.email, None, "Known"),
        (None, HU2, ""),
        (None, HU, "Mallory"),
    ]


def test_an_erased_number_is_never_texted_again_from_a_form(
    world: World, api: str, smsc: SmscSink
) -> None:
    with Session(world.ctx.engine) as s:
        records.add_contact(s, world.tenant_id, phone=HU, name="Anna", lists=[world.mlist])
        s.commit()
    erase(world.ctx.engine, world.tenant_id, HU, actor="dpo")
    _, form = make_form(world, api, channels=["sms"])
    r = httpx.post(f"{api}/f/{form['public_id']}", json={"phone": HU})
    assert (r.status_code, r.json()["status"]) == (202, "pending")  # says nothing more
    k, p = t.contact.c, t.pending_signup.c
    with world.ctx.engine.connect() as conn:
        assert conn.execute(select(p.id).where(p.tenant_id == world.tenant_id)).first() is None
        assert (
            conn.execute(select(k.id).where(k.tenant_id == world.tenant_id, k.phone == HU)).first()
            is None
        )
    with world.ctx.engine.connect() as conn:  # nothing was prepared to be sent
        assert (
            conn.execute(
                select(t.campaign.c.id).where(
                    t.campaign.c.tenant_id == world.tenant_id,
                    t.campaign.c.external_id.like("signup-confirm:%"),
                )
            ).first()
            is None
        )


def test_forms_text_only_allowed_regions_and_a_daily_number_per_tenant(
    world: World, api: str, smsc: SmscSink
) -> None:
    world.ctx.settings.signup_sms_per_day = 1
    _, form = make_form(world, api, channels=["sms"])
    url = f"{api}/f/{form['public_id']}"
    abroad = httpx.post(url, json={"phone": PL})  # platform default: HU only
    assert abroad.status_code == 422 and "numbers of: HU" in abroad.text
    assert httpx.post(url, json={"phone": HU}).status_code == 202
    assert httpx.post(url, json={"phone": HU2}).status_code == 202  # over today's budget
    world.run(lambda: len(smsc.state.to(HU)) == 1, workers=("sender",))
    assert smsc.state.to(HU2) == [] and smsc.state.to(PL) == []
    p = t.pending_signup.c
    with world.ctx.engine.connect() as conn:
        pending = conn.execute(select(p.address).where(p.tenant_id == world.tenant_id)).all()
    assert [a for (a,) in pending] == [HU]


def test_a_number_that_said_stop_is_not_texted_because_of_a_form_post(
    world: World, api: str, smsc: SmscSink
) -> None:
    """Anyone can type a number into a form: one that replied STOP gets no confirmation
    SMS (the answer does not tell the poster), and no other number is held back."""
    with Session(world.ctx.engine) as s:
        records.suppress(s, world.tenant_id, "sms", HU, "stop")
        s.commit()
    _, form = make_form(world, api, channels=["sms"])
    for number in (HU, HU2):
        r = httpx.post(f"{api}/f/{form['public_id']}", json={"phone": number})
        assert (r.status_code, r.json()["status"]) == (202, "pending")
    other = HU2
    world.run(lambda: len(smsc.state.to(other)) == 1, workers=("sender",))
    assert smsc.state.to(HU) == []
    p = t.pending_signup.c
    with world.ctx.engine.connect() as conn:
        pending = conn.execute(select(p.address).where(p.tenant_id == world.tenant_id)).all()
    assert [a for (a,) in pending] == [other]


def test_sms_forms_refuse_posts_without_a_valid_number(world: World, api: str) -> None:
    _, form = make_form(world, api, channels=["sms"])
    url = f"{api}/f/{form['public_id']}"
    for fields, why in (
        ({"email": f"x@{world.tenant.domain}"}, "phone number is required"),
        ({"phone": "not a number"}, ""),
        ({"phone": "+3620\r\n1234567"}, ""),
        ({"phone": HU, "email": "not-an-address"}, ""),
    ):
        r = httpx.post(url, data=fields)
        assert r.status_code == 422, (fields, r.text)
        assert why in r.text
    with world.ctx.engine.connect() as conn:
        assert (
            conn.execute(
                select(t.pending_signup.c.id).where(t.pending_signup.c.tenant_id == world.tenant_id)
            ).first()
            is None
        )


def test_form_channels_are_email_sms_or_both(world: World, api: str) -> None:
    for channels in ([], ["fax"], ["sms", "sms"]):
        key, _ = make_form(world, api)
        r = httpx.post(
            f"{api}/v1/forms",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "name": "f",
                "topic": "news",
                "list_id": world.mlist.id,
                "channels": channels,
                "consent_text": "yes",
                "consent_text_version": "1",
            },
        )
        assert r.status_code == 422, channels
        assert "channels must be" in r.text


def test_a_hungarian_form_texts_its_confirmation_in_hungarian_in_one_part(
    world: World, api: str, smsc: SmscSink
) -> None:
    from tests.pages.site import branded

    site = branded(world, api)
    form = site.new_form(channels=["sms"], locale="hu")
    r = httpx.post(
        f"{api}/f/{form['public_id']}",
        data={"phone": "06 20 987 6543"},
        headers={"Accept-Language": "en"},
    )  # the form's language wins
    assert r.status_code == 202 and "Nézze meg a telefonját." in r.text
    text = confirmation_sms(world, smsc, HU)
    (sms,) = smsc.state.to(HU)
    assert sms.encoding == "gsm0338" and sms.udh is None  # one plain part, transliterated
    assert text.startswith("Acme Kft.: Heti akciok SMS-ek megerösitése: http")
    assert LINK.search(text) and text.endswith("nem Ön? Ne tegyen semmit.")
