"""Provider webhooks over real HTTP: HMAC-signed ESP events become the same exactly-once
feedback events as mailed bounces; bad, stale or unsigned requests are refused."""

from __future__ import annotations

import json
import time

import httpx
from sqlalchemy import select

from postgate.feedback.webhook import signature
from postgate.store import tables as t
from tests.support import World

SECRET = "esp-webhook-secret"


def post(
    http: httpx.Client, body: bytes, secret: str = SECRET, skew: int = 0, provider: str = "esp"
) -> httpx.Response:
    ts = str(int(time.time()) - skew)
    return http.post(
        f"/v1/webhooks/{provider}",
        content=body,
        headers={
            "X-Postgate-Timestamp": ts,
            "X-Postgate-Signature": signature(secret, ts, body),
            "Content-Type": "application/json",
        },
    )


def test_signed_events_are_applied_once(world: World, api: str) -> None:
    world.ctx.settings.webhook_secrets = {"esp": SECRET}
    for i in range(3):
        world.contact(f"w{i}")
    world.publish(world.message("hooked"))
    world.run(world.finished("hooked"))
    rows = world.deliveries("hooked")
    campaign = t.delivery.c
    with world.ctx.engine.connect() as conn:
        campaign_id = conn.scalar(select(campaign.campaign_id).where(campaign.id == rows[0].id))
    events = [
        {
            "id": "ev1",
            "type": "hard_bounce",
            "message_id": f"<{rows[0].id}.{campaign_id}@x>",
            "recipient": rows[0].address.upper(),
            "status": "5.1.1",
        },  # the provider's spelling
        {"id": "ev2", "type": "spamreport", "delivery_id": rows[1].id},
        {"id": "ev3", "type": "delivered", "delivery_id": rows[2].id},
        {"id": "ev4", "type": "brand_new_status", "delivery_id": rows[2].id},
    ]
    body = json.dumps({"events": events}).encode()
    with httpx.Client(base_url=api, timeout=10) as http:
        assert post(http, body).json() == {"applied": 3, "duplicate": 0, "ignored": 1}
        assert post(http, body).json() == {"applied": 0, "duplicate": 3, "ignored": 1}
        assert post(http, body, secret="wrong").status_code == 401
        assert post(http, body, skew=600).status_code == 401  # a replay of an old request
        assert post(http, body, provider="other").status_code == 404
        assert post(http, b"not json").status_code == 422
        unsigned = http.post("/v1/webhooks/esp", content=body)
        assert unsigned.status_code == 401
    s, e = t.suppression.c, t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        suppressed = dict(
            conn.execute(select(s.address, s.reason).where(s.tenant_id == world.tenant_id)).all()
        )
        kinds = conn.execute(
            select(e.kind, e.delivery_id, e.source)
            .where(e.tenant_id == world.tenant_id)
            .order_by(e.id)
        ).all()
    assert suppressed == {rows[0].address: "hard_bounce", rows[1].address: "complaint"}
    assert [tuple(k) for k in kinds] == [
        ("bounce", rows[0].id, "webhook"),
        ("complaint", rows[1].id, "webhook"),
        ("unknown", rows[2].id, "webhook"),
    ]


def test_hostile_ids_and_signatures_get_an_answer_not_a_crash(world: World, api: str) -> None:
    """Values the parser fuzzing found: non-ASCII digits, ids past BIGINT, a non-ASCII
    signature header. Each is an ordinary answer (applied as unknown, or 401), never a 500."""
    world.ctx.settings.webhook_secrets = {"esp": SECRET}
    events = [
        {"id": "h1", "type": "hard_bounce", "delivery_id": "²"},
        {"id": "h2", "type": "complaint", "delivery_id": "9" * 19},
        {"id": "h3", "type": "complaint", "message_id": "<9999999999999999999.1@x>"},
    ]
    body = json.dumps({"events": events}).encode()
    with httpx.Client(base_url=api, timeout=10) as http:
        assert post(http, body).json() == {"applied": 3, "duplicate": 0, "ignored": 0}
        ts = str(int(time.time()))
        forged = http.post(
            "/v1/webhooks/esp",
            content=body,
            headers={
                "X-Postgate-Timestamp": ts,
                "X-Postgate-Signature": "sha256=\u00e9t\u00e9".encode("latin-1"),
            },
        )
        assert forged.status_code == 401
        huge = http.post(
            "/v1/webhooks/esp",
            content=body,
            headers={"X-Postgate-Timestamp": "1" * 400, "X-Postgate-Signature": "sha256=00"},
        )
        assert huge.status_code == 401
