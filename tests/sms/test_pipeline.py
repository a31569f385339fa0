"""SMS end to end over real sockets: campaign.v1 -> planner -> sender -> local SMSC /
SMSAPI stand-in; delivery reports land on the right rows; STOP suppresses."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update
from sqlmodel import Session

from postgate.consent import records
from postgate.core.clock import utcnow
from postgate.feedback.sms import DatabaseFeedback, inbound
from postgate.providers.smpp import SmppGateway
from postgate.providers.sms import InboundSms
from postgate.sinks.smsapi import SmsApiSink
from postgate.sinks.smsc import SmscSink
from postgate.store import tables as t
from tests.sms.world import phone_contact, rows, settled, sms_message
from tests.support import World, serve_api

HU1, HU2, HU3, PL = "+36201234567", "+36301234567", "+36701234567", "+48501234567"


def anna_and_bela_got_a_first_sms(world: World) -> None:
    phone_contact(world, "Anna", HU1)
    phone_contact(world, "Bela", HU2)
    world.publish(sms_message(world, "First", "first"))
    world.run(lambda: settled(world, "first", 2))


def replies(world: World, smsc: SmscSink, *texts: tuple[str, str]) -> None:
    """Numbers text the SMSC; a gateway bound to it takes the MO messages in (as the
    sender's own gateway does) until the SMSC has every acknowledgement."""

    async def run() -> None:
        gateway = SmppGateway(world.ctx.settings, DatabaseFeedback(world.ctx.engine))
        await gateway.start()
        await asyncio.wait_for(gateway.session.bound.wait(), 5)
        before = len(smsc.state.deliver_acks)
        for number, text in texts:
            smsc.send_mo(number, text)
        for _ in range(100):
            if len(smsc.state.deliver_acks) >= before + len(texts):
                break
            await asyncio.sleep(0.05)
        await gateway.close()

    asyncio.run(run())


def test_numbers_route_encode_and_get_their_reports(
    world: World, smsc: SmscSink, smsapi: SmsApiSink
) -> None:
    api = serve_api(world.ctx.settings)
    world.ctx.settings.public_url = next(api)
    try:
        phone_contact(world, "Anna", HU1)
        phone_contact(world, "Bela", HU2)
        phone_contact(world, "Piotr", PL)
        phone_contact(world, "Nocon", HU3, consent=False)
        world.publish(sms_message(world, "Szia {{ name }}! Őszi akció: -20% {{ '€' }}", "autumn"))
        world.run(
            lambda: (
                settled(world, "autumn", 4)
                or (
                    smsapi.state.accepted != []
                    and len(smsc.state.submitted) == 2
                    and _smpp_settled(world)
                )
            )
        )
        assert smsapi.report() == 200  # the gateway calls notify_url on the real api
        world.run(lambda: settled(world, "autumn", 4), workers=("sweeper",))
    finally:
        next(api, None)
    got = rows(world, "autumn")
    assert {a: (r.state, r.provider, r.dlr_status) for a, r in got.items()} == {
        HU1: ("sent", "smpp", "delivered"),
        HU2: ("sent", "smpp", "delivered"),
        PL: ("sent", "smsapi", "delivered"),
        HU3: ("blocked", None, None),
    }
    assert got[HU3].reason == "no_consent"
    (anna,) = smsc.state.to(HU1)
    assert anna.encoding == "ucs2"  # Ő is not in GSM-7
    assert anna.text == "Szia Anna! Őszi akció: -20% €\nLeiratkozas: valasz STOP"
    assert anna.source == "Acme" and anna.udh is None
    (piotr,) = smsapi.state.to(PL)
    assert piotr.form["idx"] == str(got[PL].id) and piotr.form["check_idx"] == "1"
    assert piotr.form["message"].startswith("Szia Piotr!")
    assert "/v1/sms/smsapi/report?k=" in piotr.form["notify_url"]


def _smpp_settled(world: World) -> bool:
    d = t.delivery.c
    with world.ctx.engine.connect() as conn:
        states = conn.execute(
            select(d.state, d.dlr_status, d.provider).where(d.tenant_id == world.tenant_id)
        ).all()
    return all(s == "blocked" or (s == "sent" and (p != "smpp" or r)) for s, r, p in states)


def test_long_gsm_text_goes_in_parts_and_all_parts_must_be_delivered(
    world: World, smsc: SmscSink
) -> None:
    phone_contact(world, "Anna", HU1)
    text = "Hello {{ name }}, " + "a" * 300  # 317 + opt-out line: 3 GSM-7 parts
    world.publish(sms_message(world, text, "long", sms={"sender": "Acme", "max_parts": 3}))
    world.run(lambda: settled(world, "long", 1))
    parts = smsc.state.to(HU1)
    assert [p.udh[1:] for p in parts if p.udh] == [(1, 3), (2, 3), (3, 3)]
    assert len({p.udh[0] for p in parts if p.udh}) == 1
    assert all(p.encoding == "gsm0338" for p in parts)
    assert "".join(p.text for p in parts).startswith("Hello Anna, aaa")
    row = rows(world, "long")[HU1]
    assert (row.state, row.segments, row.dlr_status) == ("sent", 3, "delivered")
    with world.ctx.engine.connect() as conn:
        parts_rows = conn.execute(
            select(t.sms_part.c.part, t.sms_part.c.status)
            .where(t.sms_part.c.delivery_id == row.id)
            .order_by(t.sms_part.c.part)
        ).all()
    assert parts_rows == [(1, "delivered"), (2, "delivered"), (3, "delivered")]


def test_too_many_parts_fails_with_a_reason_and_sends_nothing(world: World, smsc: SmscSink) -> None:
    phone_contact(world, "Anna", HU1)
    world.publish(sms_message(world, "á" * 100, "toolong", sms={"max_parts": 1}))
    world.run(lambda: settled(world, "toolong", 1))
    row = rows(world, "toolong")[HU1]
    assert (row.state, row.reason) == ("failed", "sms_too_long")
    assert smsc.state.submitted == []


def test_throttling_and_a_dropped_bind_lose_nothing_and_duplicate_nothing(
    world: World, smsc: SmscSink
) -> None:
    numbers = [f"+3620{1000000 + i}" for i in range(12)]
    for i, number in enumerate(numbers):
        phone_contact(world, f"P{i}", number)
    smsc.state.throttle = 4
    smsc.state.drop_on_submit = 1
    world.publish(sms_message(world, "Hello {{ name }}", "rough"))
    world.run(lambda: settled(world, "rough", 12), timeout=45)
    got = rows(world, "rough")
    assert {r.state for r in got.values()} == {"sent"}
    assert all(len(smsc.state.to(n)) == 1 for n in numbers)  # once each
    assert smsc.state.throttled == 4 and smsc.state.binds >= 2


def test_an_undelivered_receipt_fails_the_row(world: World, smsc: SmscSink) -> None:
    phone_contact(world, "Anna", HU1)
    smsc.state.failing[HU1.lstrip("+")] = "UNDELIV"
    world.publish(sms_message(world, "Hi", "undeliv"))
    world.run(lambda: settled(world, "undeliv", 1))
    row = rows(world, "undeliv")[HU1]
    assert (row.state, row.reason, row.dlr_status) == ("failed", "sms_undelivered", "undelivered")
    fe = t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        event = conn.execute(
            select(fe.kind, fe.hard, fe.source, fe.channel).where(fe.delivery_id == row.id)
        ).one()
    assert tuple(event) == ("bounce", False, "dlr", "sms")


def test_a_stop_reply_suppresses_the_number_before_the_next_campaign(
    world: World, smsc: SmscSink
) -> None:
    anna_and_bela_got_a_first_sms(world)

    replies(world, smsc, (HU1, "  leiratkozás! "), (HU2, "Köszi, jó volt"))
    s, fe = t.suppression.c, t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        suppressed = conn.execute(
            select(s.address, s.reason, s.channel).where(s.tenant_id == world.tenant_id)
        ).all()
        stops = conn.execute(
            select(fe.address).where(fe.tenant_id == world.tenant_id, fe.kind == "stop")
        ).all()
    assert suppressed == [(HU1, "stop", "sms")]
    assert stops == [(HU1,)]
    world.publish(sms_message(world, "Second", "second"))
    world.run(lambda: settled(world, "second", 2))
    got = rows(world, "second")
    assert (got[HU1].state, got[HU1].reason) == ("blocked", "suppressed")
    assert got[HU2].state == "sent"
    assert [p.text for p in smsc.state.to(HU1)] == ["First\nLeiratkozas: valasz STOP"]


def test_a_tenant_route_override_sends_hungarian_numbers_abroad(
    world: World, smsc: SmscSink, smsapi: SmsApiSink
) -> None:
    with world.ctx.engine.begin() as conn:
        conn.execute(
            update(t.tenant)
            .where(t.tenant.c.id == world.tenant_id)
            .values(sms_routes={"36": "smsapi"})
        )
    phone_contact(world, "Anna", HU1)
    world.publish(sms_message(world, "Hi", "override", kind="transactional"))
    world.run(
        lambda: (
            rows(world, "override").get(HU1) is not None
            and rows(world, "override")[HU1].state == "sent"
        )
    )
    assert rows(world, "override")[HU1].provider == "smsapi"
    assert smsc.state.submitted == [] and len(smsapi.state.to(HU1)) == 1
    assert smsapi.state.to(HU1)[0].form["message"] == "Hi"  # transactional: no opt-out line


def test_a_route_to_an_unknown_provider_keeps_the_row_for_later(
    world: World, smsc: SmscSink
) -> None:
    with world.ctx.engine.begin() as conn:
        conn.execute(
            update(t.tenant)
            .where(t.tenant.c.id == world.tenant_id)
            .values(sms_routes={"36": "carrier-pigeon"})
        )
    phone_contact(world, "Anna", HU1)
    world.publish(sms_message(world, "Hi", "pigeon"))
    world.run(
        lambda: (
            rows(world, "pigeon").get(HU1) is not None
            and rows(world, "pigeon")[HU1].state == "deferred"
        ),
        workers=("planner", "sender"),
    )
    assert smsc.state.submitted == []


def test_start_from_the_number_takes_its_stop_back_and_nothing_else(
    world: World, smsc: SmscSink
) -> None:
    anna_and_bela_got_a_first_sms(world)
    with Session(world.ctx.engine) as s:  # Bela's number was rejected for good
        records.suppress(s, world.tenant_id, "sms", HU2, "hard_bounce")
        s.commit()

    s = t.suppression.c

    def suppressed() -> dict[str, str]:
        with world.ctx.engine.connect() as conn:
            return dict(
                conn.execute(
                    select(s.address, s.reason).where(s.tenant_id == world.tenant_id)
                ).all()
            )

    replies(world, smsc, (HU1, "STOP"))
    assert suppressed() == {HU1: "stop", HU2: "hard_bounce"}
    replies(world, smsc, (HU1, "feliratkozás"), (HU2, "START"))
    assert suppressed() == {HU2: "hard_bounce"}  # START lifts a STOP, nothing else
    fe = t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        kinds = conn.execute(
            select(fe.address, fe.kind)
            .where(
                fe.tenant_id == world.tenant_id, fe.channel == "sms", fe.kind.in_(["stop", "start"])
            )
            .order_by(fe.id)
        ).all()
    assert [kind for number, kind in kinds if number == HU1] == ["stop", "start"]
    assert [kind for number, kind in kinds if number == HU2] == ["start"]
    replies(world, smsc, (HU1, "STOP"))  # the same words again (SMPP MO carry no id)
    assert suppressed() == {HU1: "stop", HU2: "hard_bounce"}
    replies(world, smsc, (HU1, "START"))
    world.publish(sms_message(world, "Second", "second"))
    world.run(lambda: settled(world, "second", 2))
    got = rows(world, "second")
    assert got[HU1].state == "sent"
    assert (got[HU2].state, got[HU2].reason) == ("blocked", "suppressed")


def test_a_gateway_replaying_an_old_stop_does_not_undo_a_later_start(world: World) -> None:
    anna_and_bela_got_a_first_sms(world)
    stop = InboundSms("smpp", HU1, "1234", "STOP", message_id="mo-1", raw="STOP")
    start = InboundSms("smpp", HU1, "1234", "START", message_id="mo-2", raw="START")
    s = t.suppression.c

    def stopped() -> bool:
        with world.ctx.engine.connect() as conn:
            return (
                conn.execute(
                    select(s.id).where(s.tenant_id == world.tenant_id, s.address == HU1)
                ).first()
                is not None
            )

    for message, expected in ((stop, True), (start, False), (stop, False), (start, False)):
        with world.ctx.engine.begin() as conn:
            inbound(conn, message, utcnow())
        assert stopped() is expected, message
    # SMPP MO carry no id: a STOP always applies; the same START again soon is a resend
    bare_stop, bare_start = (InboundSms("smpp", HU1, "1234", w, raw=w) for w in ("STOP", "Start"))
    for message, expected in (
        (bare_start, False),
        (bare_stop, True),
        (bare_start, True),
        (bare_stop, True),
    ):
        with world.ctx.engine.begin() as conn:
            inbound(conn, message, utcnow())
        assert stopped() is expected, message


def test_a_transactional_sms_never_reaches_a_number_that_said_stop(
    world: World, smsc: SmscSink
) -> None:
    """The gate lets transactional messages past an unsubscribe; for SMS the sender's late
    check still stops a STOP, whatever the message carries."""
    anna_and_bela_got_a_first_sms(world)
    replies(world, smsc, (HU1, "STOP"))
    world.publish(sms_message(world, "Your parcel is on its way", "parcel", kind="transactional"))
    world.run(lambda: settled(world, "parcel", 2))
    got = rows(world, "parcel")
    assert (got[HU1].state, got[HU1].reason) == ("blocked", "suppressed")
    assert got[HU2].state == "sent"
    assert [p.text for p in smsc.state.to(HU1)] == ["First\nLeiratkozas: valasz STOP"]
