"""An SMS campaign's events reach the CRM: sent, the gateway's delivery report and the
recipient's STOP reply, each once, in order, on the cursor and on a signed webhook."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import jsonschema
import pytest

from postgate.client import verify_signature
from postgate.platform import schemas
from postgate.providers.smsapi import callback_key
from postgate.settings import Settings
from postgate.sinks.smsapi import SmsApiSink
from tests.events.receiver import Receiver, serve
from tests.events.test_stream import all_events, key, run_events
from tests.sms.world import phone_contact, rows, sms_message
from tests.support import World

HU1, HU2 = "+36301234561", "+36301234562"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.sms_routes = "*=smsapi"
    settings.webhook_allow_networks = "127.0.0.1/32"
    settings.webhook_backoff_s = 0.05
    settings.events_poll_s = 0.05
    return settings


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


def test_sms_delivered_and_stop_reach_the_crm(
    world: World, smsapi: SmsApiSink, api_url: str, receiver: Receiver
) -> None:
    headers = key(world)
    made = httpx.post(
        f"{api_url}/v1/event-endpoints",
        json={"url": receiver.url, "types": ["delivery.sent", "delivery.delivered"]},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    phone_contact(world, "Anna", HU1)
    phone_contact(world, "Bela", HU2)
    world.publish(sms_message(world, "Tavaszi akció: 20% kedvezmény", "sms-spring"))
    world.run(
        lambda: {r.state for r in rows(world, "sms-spring").values()} == {"sent"},
        workers=["planner", "sender"],
    )
    (accepted,) = smsapi.state.to(HU1)
    cb = callback_key(world.ctx.settings.secret_key)
    report = {
        "MsgId": accepted.message_id,
        "status": "404",
        "idx": str(rows(world, "sms-spring")[HU1].id),
        "donedate": "1764072000",
    }
    for _ in range(2):  # the gateway repeats a report: one event
        done = httpx.post(f"{api_url}/v1/sms/smsapi/report?k={cb}", data=report)
        assert (done.status_code, done.text) == (200, "OK")
    stop = httpx.post(
        f"{api_url}/v1/sms/smsapi/inbound?k={cb}",
        data={"sms_from": HU2.lstrip("+"), "sms_to": "Acme", "sms_text": "STOP", "MsgId": "MO9"},
    )
    assert stop.text == "OK"

    events = all_events(api_url, headers)
    told = [(ev["type"], ev["recipient"]) for ev in events]
    assert sorted(told) == sorted(
        [
            ("delivery.sent", HU1),
            ("delivery.sent", HU2),
            ("delivery.delivered", HU1),
            ("feedback.stop", HU2),
        ]
    )
    assert told.index(("delivery.sent", HU1)) < told.index(("delivery.delivered", HU1))
    schema = schemas.shipped("event.v1")
    for ev in events:
        jsonschema.validate(ev, schema)
        assert ev["channel"] == "sms" and ev["tenant"] == world.tenant.slug
    delivered = next(ev for ev in events if ev["type"] == "delivery.delivered")
    assert delivered["campaign_external_id"] == "sms-spring"
    assert delivered["delivery_id"] == rows(world, "sms-spring")[HU1].id

    wanted = {ev["id"] for ev in events if ev["type"] != "feedback.stop"}
    run_events(world.ctx, lambda: receiver.ids() >= wanted)
    assert receiver.ids() == wanted  # the endpoint asked for these two types only
    assert all(
        verify_signature(
            secret, p.body, p.headers["x-postgate-timestamp"], p.headers["x-postgate-signature"]
        )
        for p in receiver.posts
    )
