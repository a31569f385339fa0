"""The SMSAPI gateway's error paths end to end, and its callbacks on the real api."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from postgate.core.clock import utcnow
from postgate.core.outcome import Outcome
from postgate.core.sms.encoding import encode
from postgate.core.sms.outcomes import DlrStatus, SmsError
from postgate.feedback import sms as feedback
from postgate.feedback.sms import DatabaseFeedback
from postgate.providers.sms import DeliveryReport, SmsMessage, SmsResult
from postgate.providers.smsapi import SmsApiGateway, callback_key
from postgate.settings import Settings
from postgate.sinks.smsapi import SmsApiSink
from postgate.store import tables as t
from postgate.store.db import engine_for
from tests.sms.world import phone_contact, rows, sms_message
from tests.support import World

PL1, PL2, PL3, DE = "+48501234561", "+48501234562", "+48501234563", "+4915112345678"
SENDER = ("planner", "sender")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.sms_routes = "*=smsapi"
    return settings


def _states(world: World, external_id: str) -> dict[str, tuple[str, str | None]]:
    return {a: (r.state, r.reason) for a, r in rows(world, external_id).items()}


def test_error_bodies_map_to_failed_retried_or_sent_once(world: World, smsapi: SmsApiSink) -> None:
    for name, number in (("Inv", PL1), ("Thr", PL2), ("Err", PL3), ("Ok", DE)):
        phone_contact(world, name, number)
    smsapi.state.script(PL1, 13)
    smsapi.state.script(PL2, 202, 202)
    smsapi.state.script(PL3, 500)
    world.publish(sms_message(world, "Hi {{ name }}", "errors"))
    world.run(
        lambda: (
            {s for s, _ in _states(world, "errors").values()} <= {"sent", "failed"}
            and len(rows(world, "errors")) == 4
        ),
        workers=SENDER,
    )
    assert _states(world, "errors") == {
        PL1: ("failed", "sms_invalid_number"),
        PL2: ("sent", None),
        PL3: ("sent", None),
        DE: ("sent", None),
    }
    assert [len(smsapi.state.to(n)) for n in (PL1, PL2, PL3, DE)] == [0, 1, 1, 1]
    assert smsapi.state.requests == 4 + 2 + 1  # two throttled answers and one 500 retried
    s, fe = t.suppression.c, t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        assert conn.execute(
            select(s.address, s.reason).where(s.tenant_id == world.tenant_id)
        ).all() == [(PL1, "hard_bounce")]
        assert conn.execute(
            select(fe.kind, fe.hard).where(fe.tenant_id == world.tenant_id)
        ).all() == [("bounce", True)]


def test_no_credit_defers_and_pauses_the_tenants_bulk_sms(world: World, smsapi: SmsApiSink) -> None:
    phone_contact(world, "Anna", PL1)
    smsapi.state.script(PL1, 103)
    world.publish(sms_message(world, "Hi", "credit"))
    world.run(lambda: _states(world, "credit").get(PL1, ("",))[0] == "deferred", workers=SENDER)
    sb = t.sending_block.c
    with world.ctx.engine.connect() as conn:
        block = conn.execute(
            select(sb.scope, sb.source, sb.reason, sb.cleared_at).where(
                sb.tenant_id == world.tenant_id
            )
        ).one()
    assert block.scope == "bulk_sms" and block.source == "provider"
    assert "Insufficient credits" in block.reason and block.cleared_at is None
    # the retry is held by the tenant's bulk_sms block (released when an operator clears
    # it), not sent and not dropped
    world.run(lambda: _states(world, "credit")[PL1] == ("held", "tenant_disabled"))
    assert smsapi.state.accepted == []
    assert (
        REGISTRY.get_sample_value(
            "postgate_provider_alerts_total", {"provider": "smsapi", "kind": "no_credit"}
        )
        or 0
    ) >= 1


def test_refused_credentials_halt_the_provider_and_keep_the_rows(
    world: World, smsapi: SmsApiSink
) -> None:
    world.ctx.settings.providers["smsapi"]["token"] = "wrong"
    for name, number in (("A", PL1), ("B", PL2)):
        phone_contact(world, name, number)
    world.publish(sms_message(world, "Hi", "auth"))
    world.run(
        lambda: (
            {s for s, _ in _states(world, "auth").values()} == {"deferred"}
            and len(rows(world, "auth")) == 2
        ),
        workers=SENDER,
    )
    assert smsapi.state.requests <= 2 and smsapi.state.accepted == []  # only those in flight
    assert (
        REGISTRY.get_sample_value(
            "postgate_provider_alerts_total", {"provider": "smsapi", "kind": "auth"}
        )
        or 0
    ) >= 1


def test_a_halted_gateway_sends_no_further_requests(settings: Settings, smsapi: SmsApiSink) -> None:
    settings.providers["smsapi"]["token"] = "wrong"

    async def go() -> tuple[list[SmsResult], dict[str, object]]:
        gateway = SmsApiGateway(settings, DatabaseFeedback(engine_for(settings.database_url)))
        await gateway.start()
        try:
            results = [
                await gateway.send(SmsMessage(900 + i, PL1, "Acme", encode("Hi"))) for i in range(3)
            ]
        finally:
            await gateway.close()
        return results, gateway.health()

    results, health = asyncio.run(go())
    assert [r.error for r in results] == [SmsError.AUTH] * 3
    assert all(r.outcome is Outcome.DEFERRED for r in results)
    assert smsapi.state.requests == 1
    assert "Invalid authorization info" in str(health["halted"])


def test_callbacks_need_the_key_and_answer_ok(
    world: World, smsapi: SmsApiSink, api_url: str
) -> None:
    phone_contact(world, "Anna", PL1)
    world.publish(sms_message(world, "Hi", "cb"))
    world.run(lambda: _states(world, "cb").get(PL1, ("",))[0] == "sent", workers=SENDER)
    (accepted,) = smsapi.state.to(PL1)
    row = rows(world, "cb")[PL1]
    key = callback_key(world.ctx.settings.secret_key)
    report = {
        "MsgId": accepted.message_id,
        "status": "404",
        "idx": str(row.id),
        "donedate": "1764072000",
    }
    bad = httpx.get(f"{api_url}/v1/sms/smsapi/report", params=report | {"k": "guess"})
    assert bad.status_code == 403 and rows(world, "cb")[PL1].dlr_status is None
    good = httpx.post(f"{api_url}/v1/sms/smsapi/report?k={key}", data=report)
    assert (good.status_code, good.text) == (200, "OK")
    assert rows(world, "cb")[PL1].dlr_status == "delivered"
    settings = world.ctx.settings  # rotated: reports of SMS sent before carry the old key
    old = settings.secret_key
    settings.secret_key, settings.secret_keys_previous = "r" * 40, [old]
    again = httpx.post(
        f"{api_url}/v1/sms/smsapi/report?k={key}", data=report | {"status": "405"}
    )  # a late, contradicting duplicate
    settings.secret_keys_previous = []
    retired = httpx.post(f"{api_url}/v1/sms/smsapi/report?k={key}", data=report)
    settings.secret_key = old
    assert retired.status_code == 403  # once the old key is retired for good
    assert again.text == "OK" and rows(world, "cb")[PL1].state == "sent"
    stop = httpx.post(
        f"{api_url}/v1/sms/smsapi/inbound?k={key}",
        data={"sms_from": PL1.lstrip("+"), "sms_to": "Acme", "sms_text": "STOP", "MsgId": "MO1"},
    )
    assert stop.text == "OK"
    for hostile in (
        {"idx": "²"},
        {"idx": "9" * 30},
        {"donedate": "²"},
        {"donedate": "9" * 30},
        {"MsgId": " , ,"},
    ):  # found by fuzzing the parser: OK, never a 500
        odd = httpx.post(f"{api_url}/v1/sms/smsapi/report?k={key}", data=report | hostile)
        assert (odd.status_code, odd.text) == (200, "OK"), hostile
    s = t.suppression.c
    with world.ctx.engine.connect() as conn:
        assert conn.execute(
            select(s.address, s.reason).where(s.tenant_id == world.tenant_id)
        ).all() == [(PL1, "stop")]


def test_a_report_that_arrives_before_the_send_is_recorded_still_applies(world: World) -> None:
    phone_contact(world, "Anna", PL1)
    world.publish(sms_message(world, "Hi", "early"))
    world.run(lambda: world.campaign_state("early") == "sending", workers=("planner",))
    row = rows(world, "early")[PL1]
    now = utcnow()
    d = t.delivery.c
    with world.ctx.engine.begin() as conn:  # the row is sent, the gateway answered X1, X2
        conn.execute(t.delivery.update().where(d.id == row.id).values(state="sent"))
        feedback.record_reports(
            conn,
            [
                DeliveryReport("smpp", "X1", DlrStatus.DELIVERED),
                DeliveryReport("smpp", "X2", DlrStatus.DELIVERED, done_at=now + timedelta(1)),
            ],
            now,
        )
        assert rows(world, "early")[PL1].dlr_status is None  # not ours yet
        feedback.record_parts(conn, "smpp", [(row.id, ("X1", "X2"))], now)
    assert rows(world, "early")[PL1].dlr_status == "delivered"
