"""NUL and other control characters from outside, over real HTTP and the queue: PostgreSQL
text refuses NUL, so each must be refused (or made harmless) before it reaches a query —
a clear 4xx or a dead letter, never a 500, and nothing else in the request lost."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select

from postgate.http.auth import create_key
from postgate.store import tables as t
from tests.consent.test_signup_forms import make_form
from tests.delivery.test_webhooks import SECRET, post
from tests.support import World


def keys(world: World) -> tuple[dict[str, str], dict[str, str]]:
    engine = world.ctx.engine
    return (
        {"Authorization": f"Bearer {create_key(engine, 'tenant', 'crm', world.tenant.slug)}"},
        {"Authorization": f"Bearer {create_key(engine, 'operator', 'ops')}"},
    )


def test_nul_in_urls_is_refused_before_any_route(world: World, api: str) -> None:
    tenant, ops = keys(world)
    _, form = make_form(world, api)
    with httpx.Client(base_url=api, timeout=10) as http:
        for method, url, headers in (
            ("POST", "/f/%00abc", {}),
            ("GET", "/f/a%00", {}),
            ("POST", f"/f/{form['public_id']}?x=%00", {}),
            ("GET", "/v1/operator/tenants/a%00b/sending-state", ops),
            ("GET", "/v1/operator/tenants/a%00b/audit", ops),
            ("PATCH", "/v1/forms/%00", tenant),
            ("GET", "/c/%00" + "a" * 40, {}),
            ("GET", "/v1/campaigns?state=%00", tenant),
        ):
            reply = http.request(method, url, headers=headers)
            assert reply.status_code == 400, (method, url, reply.text)
            assert "NUL" in reply.json()["detail"]
        assert http.get("/healthz").status_code == 200


def test_nul_in_bodies_is_a_clear_422(world: World, api: str) -> None:
    """NUL, other controls, bidi overrides and lone surrogates (valid JSON escapes, not
    UTF-8): each a 422 that quotes the input as ASCII JSON, never a 500."""
    tenant, ops = keys(world)
    slug = world.tenant.slug
    with httpx.Client(base_url=api, timeout=10) as http:
        for url, body, headers in (
            ("/v1/erasures", {"address": "d\u0000[\u0012"}, tenant),
            ("/v1/domains", {"domain": "acme\u0000.example"}, tenant),
            (
                "/v1/forms",
                {
                    "name": "n\u0000",
                    "topic": "news",
                    "list_id": world.mlist.id,
                    "consent_text": "yes",
                    "consent_text_version": "1",
                },
                tenant,
            ),
            (
                "/v1/forms",
                {
                    "name": "n",
                    "topic": "news",
                    "list_id": world.mlist.id,
                    "consent_text": "yes\u0000",
                    "consent_text_version": "1",
                },
                tenant,
            ),
            (
                f"/v1/operator/tenants/{slug}/sending-blocks",
                {"scope": "bulk_email", "reason": "why\u0000"},
                ops,
            ),
            (f"/v1/operator/tenants/{slug}/held/cancel", {"reason": "why\u0000"}, ops),
            ("/v1/erasures", {"address": "a\ud800@x.example"}, tenant),
            ("/v1/domains", {"domain": "acme\u202e.example"}, tenant),
            (f"/v1/operator/tenants/{slug}/held/cancel", {"reason": "lone \udfff"}, ops),
        ):
            reply = http.post(
                url,
                content=json.dumps(body),  # escapes lone surrogates
                headers=headers | {"Content-Type": "application/json"},
            )
            assert reply.status_code == 422, (url, reply.text)
            said = " ".join(e["msg"] for e in reply.json()["detail"])
            assert "control characters" in said or "unicode string" in said, said
    with world.ctx.engine.connect() as conn:
        assert (
            conn.execute(
                select(t.sending_block.c.id).where(t.sending_block.c.tenant_id == world.tenant_id)
            ).first()
            is None
        )


def test_a_campaign_message_with_nul_is_dead_lettered_and_the_next_one_sends(world: World) -> None:
    world.contact("anna")
    bad = world.message("nul-text")
    bad["content"]["text"] = "Hello\u0000there"
    world.publish(bad)
    world.publish(world.message("clean"))
    world.run(world.finished("clean"))
    d = t.dead_letter.c
    with world.ctx.engine.connect() as conn:
        errors = list(conn.scalars(select(d.error).order_by(d.id.desc()).limit(5)))
    assert any("control characters" in e for e in errors), errors
    assert [r.state for r in world.deliveries("clean")] == ["sent"]
    assert world.deliveries("nul-text") == []


def test_a_webhook_event_with_nul_is_kept_readably_with_the_rest(world: World, api: str) -> None:
    world.ctx.settings.webhook_secrets = {"esp": SECRET}
    world.contact("w0")
    world.contact("w1")
    world.publish(world.message("hooked"))
    world.run(world.finished("hooked"))
    first, second = world.deliveries("hooked")
    events = [
        {"id": "nul\u0000id", "type": "bounce", "recipient": "x\u0000@y", "status": "5.1.1\u0000"},
        {"id": "hard", "type": "hard_bounce", "delivery_id": first.id, "status": "5.1.1\u0000"},
        {"id": "ok", "type": "spamreport", "delivery_id": second.id},
    ]
    with httpx.Client(base_url=api, timeout=10) as http:
        reply = post(http, json.dumps({"events": events}).encode())
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"applied": 3, "duplicate": 0, "ignored": 0}
    e = t.feedback_event.c
    with world.ctx.engine.connect() as conn:
        stored = conn.execute(
            select(e.kind, e.address, e.status, e.dedup_key)
            .where(e.dedup_key.like("webhook:esp:%"))
            .order_by(e.id.desc())
            .limit(3)
        ).all()
        suppressed = {
            a: detail
            for a, detail in conn.execute(
                select(t.suppression.c.address, t.suppression.c.detail).where(
                    t.suppression.c.tenant_id == world.tenant_id
                )
            )
        }
    garbled = next(s for s in stored if s.dedup_key.startswith("webhook:esp:nul"))
    assert "\u0000" not in garbled.address + garbled.status + garbled.dedup_key
    assert garbled.dedup_key == "webhook:esp:nul\ufffdid"
    assert suppressed[first.address] == "bounce 5.1.1\ufffd"  # the hard bounce took effect
    assert second.address in suppressed  # and so did the complaint beside it
