"""The content policy in the pipeline: blocked campaigns are never planned, flagged ones
are sent and recorded for the tenant and the operator, broken templates are refused."""

from __future__ import annotations

from prometheus_client import REGISTRY
from sqlalchemy import select

from postgate.store import tables as t
from tests.support import World
from tests.workers.test_dead_letter import dead_letters


def audit(world: World) -> list[tuple[str, str, dict]]:
    a = t.audit_log.c
    with world.ctx.engine.connect() as conn:
        return [
            (r.actor, r.action, r.detail)
            for r in conn.execute(
                select(a.actor, a.action, a.detail)
                .where(a.tenant_id == world.tenant_id)
                .order_by(a.id)
            )
        ]


def policy(world: World, external_id: str) -> dict:
    c = t.campaign.c
    with world.ctx.engine.connect() as conn:
        return dict(
            conn.scalar(
                select(c.policy).where(c.tenant_id == world.tenant_id, c.external_id == external_id)
            )
            or {}
        )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_forbidden_content_rejects_the_campaign_and_sends_nothing(world: World) -> None:
    world.contact("anna")
    before = metric(
        "postgate_content_verdicts_total",
        tenant=world.tenant.slug,
        channel="email",
        verdict="block",
    )
    world.publish(
        world.message(
            "bad",
            content={
                "subject": "Hot singles",
                "text": "Replica watches and s.e.x tonight, {{ name }}",
                "html": "<p>Nothing to see</p>",
            },
        )
    )
    world.publish(world.message("good"))
    world.run(world.finished("good"))
    assert world.campaign_state("bad") == "rejected"
    assert world.deliveries("bad") == []
    assert [r.recipients for r in world.sink.handler.received] == [[f"anna@{world.tenant.domain}"]]
    verdict = policy(world, "bad")
    assert verdict["action"] == "block"
    assert verdict["matches"] == {
        "ip_infringement": ["replica watch*"],
        "sexual": ["hot singles", "sex"],
    }
    ((actor, action, detail),) = audit(world)
    assert (actor, action) == ("content_policy", "campaign_blocked")
    assert detail["external_id"] == "bad" and detail["matches"] == verdict["matches"]
    assert (
        metric(
            "postgate_content_verdicts_total",
            tenant=world.tenant.slug,
            channel="email",
            verdict="block",
        )
        == before + 1
    )
    # the same campaign id again stays rejected (idempotent), and is not re-audited
    world.publish(world.message("bad", content={"subject": "Clean", "text": "now"}))
    world.publish(world.message("good2"))
    world.run(world.finished("good2"))
    assert world.campaign_state("bad") == "rejected" and len(audit(world)) == 1


def test_spam_prone_content_is_sent_but_flagged(world: World) -> None:
    world.contact("anna")
    world.publish(
        world.message(
            "pills",
            content={
                "subject": "Vitaminok {{ name }}",
                "text": "Étrend-kiegészítők és online kaszinó",
                "html": "",
            },
        )
    )
    world.run(world.finished("pills"))
    assert [r.state for r in world.deliveries("pills")] == ["sent"]
    assert policy(world, "pills") == {
        "action": "flag",
        "matches": {"gambling": ["kaszinó*"], "supplements": ["vitamin*", "étrend-kiegészítő*"]},
        "categories": {"gambling": "flag", "supplements": "flag"},
    }
    assert [(a, b) for a, b, _ in audit(world)] == [("content_policy", "campaign_flagged")]
    assert (
        metric("postgate_content_matches_total", tenant=world.tenant.slug, category="supplements")
        >= 1
    )


def test_clean_content_is_allowed_without_audit_noise(world: World) -> None:
    world.contact("anna")
    world.publish(world.message("clean"))
    world.run(world.finished("clean"))
    assert policy(world, "clean") == {"action": "allow", "matches": {}, "categories": {}}
    assert audit(world) == []


def test_templates_that_cannot_render_are_dead_lettered_at_the_door(world: World) -> None:
    world.contact("anna")
    world.publish(
        world.message(
            "loop",
            content={
                "subject": "Hi",
                "text": "{% for a in range(99999) %}{% for b in range(99999) %}"
                "{% endfor %}{% endfor %}",
            },
        )
    )
    world.publish(world.message("syntax", content={"subject": "Hi {{ name", "text": "x"}))
    world.publish(world.message("good"))
    world.run(world.finished("good"))
    errors = [e for e, _ in dead_letters(world)]
    assert len(errors) == 2
    assert "content.text: template exceeded 100000 loop steps" in errors[0]
    assert "content.subject: template error" in errors[1]
    assert world.campaign_state("loop") is None and world.campaign_state("syntax") is None


def test_tenant_headers_arrive_and_forged_ones_are_dead_lettered(world: World) -> None:
    import email
    import email.policy

    world.contact("anna")
    world.publish(world.message("forged", headers={"Sender": "ceo@bank.example"}))
    world.publish(world.message("injected", headers={"X-Tag": "a\u2028Bcc: eve@x.example"}))
    world.publish(
        world.message("tagged", headers={"X-Campaign": "spring", "Reply-To": "help@example.com"})
    )
    world.run(world.finished("tagged"))
    errors = [e for e, _ in dead_letters(world)]
    assert len(errors) == 2
    assert "header 'Sender' is set by postgate" in errors[0]
    assert "header 'X-Tag' contains a line break" in errors[1]
    (received,) = world.sink.handler.received
    msg = email.message_from_bytes(received.data, policy=email.policy.default)
    assert msg["X-Campaign"] == "spring" and msg["Reply-To"] == "help@example.com"
    assert msg["Bcc"] is None and received.recipients == [f"anna@{world.tenant.domain}"]


def test_tenant_and_operator_see_the_verdicts_over_the_api(world: World, api: str) -> None:
    import httpx

    from postgate.http.auth import create_key

    tenant_key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    operator_key = create_key(world.ctx.engine, "operator", "ops")
    world.contact("anna")
    world.publish(world.message("casino", content={"subject": "Casino night", "text": "Hi"}))
    world.publish(world.message("porn", content={"subject": "Hi", "text": "porn"}))
    world.run(world.finished("casino"))
    as_tenant = {"authorization": f"Bearer {tenant_key}"}
    got = httpx.get(f"{api}/v1/campaigns/casino/policy", headers=as_tenant, timeout=10).json()
    assert got["state"] == "finished" and got["policy"]["action"] == "flag"
    got = httpx.get(f"{api}/v1/campaigns/porn/policy", headers=as_tenant, timeout=10).json()
    assert got["state"] == "rejected" and got["policy"]["matches"] == {"sexual": ["porn*"]}
    assert (
        httpx.get(f"{api}/v1/campaigns/nope/policy", headers=as_tenant, timeout=10).status_code
        == 404
    )
    other = World.create(world.ctx, world.sink)
    other_key = create_key(world.ctx.engine, "tenant", "crm", other.tenant.slug)
    assert (
        httpx.get(
            f"{api}/v1/campaigns/porn/policy",
            timeout=10,  # never another tenant's
            headers={"authorization": f"Bearer {other_key}"},
        ).status_code
        == 404
    )
    assert (
        httpx.get(f"{api}/v1/operator/content-verdicts", headers=as_tenant, timeout=10).status_code
        == 403
    )
    listed = httpx.get(
        f"{api}/v1/operator/content-verdicts?limit=500",
        headers={"authorization": f"Bearer {operator_key}"},
        timeout=10,
    ).json()
    mine = [(v["campaign"], v["action"]) for v in listed if v["tenant"] == world.tenant.slug]
    assert sorted(mine) == [("casino", "campaign_flagged"), ("porn", "campaign_blocked")]
