"""The operator kill switch over real HTTP, with real workers: a flip stops a running
campaign within a second (rows are held, not dropped), re-enabling resumes it with no
duplicates, held rows can be cancelled, and every change is in the audit trail."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from postgate.http.auth import create_key
from postgate.sinks.smtp import SmtpSink
from tests.support import World
from tests.workers.switching import TimedHandler, bulk_audience


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(handler=TimedHandler(delay=0.01)) as server:
        yield server


def operator(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(world.ctx.engine, 'operator', 'ops')}"}


def test_flip_holds_a_running_campaign_and_re_enable_resumes_it(world: World, api: str) -> None:
    handler: TimedHandler = world.sink.handler  # type: ignore[assignment]
    bulk_audience(world, 600)
    ops, slug = operator(world), world.tenant.slug
    tenant_key = {"Authorization": f"Bearer {create_key(world.ctx.engine, 'tenant', 'crm', slug)}"}
    flipped: dict[str, float] = {}
    with httpx.Client(base_url=api, timeout=10) as http:
        url = f"/v1/operator/tenants/{slug}/sending-blocks"
        assert http.post(url, json={"scope": "all", "reason": "x"}, headers=ops).status_code == 422
        assert (
            http.post(
                url, json={"scope": "all", "reason": "spam wave"}, headers=tenant_key
            ).status_code
            == 403
        )

        def flip_midway() -> bool:
            if "at" not in flipped and len(handler.starts_for(world.tenant.domain)) >= 60:
                flipped["at"] = time.time()
                reply = http.post(
                    url, json={"scope": "bulk_email", "reason": "spam wave"}, headers=ops
                )
                assert reply.status_code == 201, reply.text
            return "at" in flipped and time.time() - flipped["at"] > 2

        world.publish(world.message("big"))
        world.run(flip_midway)
        starts = handler.starts_for(world.tenant.domain)
        late = max(starts) - flipped["at"]
        assert late < 1.0, f"a transaction started {late:.3f}s after the flip"
        states = Counter(r.state for r in world.deliveries("big"))
        assert states["held"] > 0 and states["sent"] == len(starts)
        assert world.campaign_state("big") == "sending"
        state = http.get(f"/v1/operator/tenants/{slug}/sending-state", headers=ops).json()
        assert state["scopes"] == ["bulk_email"] and state["held"] == states["held"]
        assert state["status"] == "bulk_disabled"
        listed = http.get("/v1/operator/sending-blocks", headers=ops).json()
        assert [b["scope"] for b in listed if b["tenant"] == slug] == ["bulk_email"]

        cleared = http.post(
            f"{url}/clear", json={"scope": "bulk_email", "reason": "cleaned up"}, headers=ops
        ).json()
        assert cleared["resumed"] == states["held"]
        world.run(world.finished("big"))
        audit = http.get(f"/v1/operator/tenants/{slug}/audit", headers=ops).json()
        assert (
            http.post(
                f"{url}/clear", json={"scope": "bulk_email", "reason": "again"}, headers=ops
            ).status_code
            == 404
        )
    assert Counter(r.state for r in world.deliveries("big")) == {"sent": 600}
    received = Counter(a for r in handler.received for a in r.recipients)
    assert len(received) == 600 and set(received.values()) == {1}
    assert [(a["action"], a["actor"]) for a in reversed(audit)] == [
        ("sending_block.operator", "ops"),
        ("sending_block.clear", "ops"),
    ]
    assert audit[0]["detail"]["reason"] == "cleaned up"
    via = "Redis" if world.ctx.settings.redis_url else "in-process"
    print(
        f"\nkill switch ({via} pub/sub): last transaction start {late * 1000:.0f} ms after the flip"
    )


def test_stop_everything_then_cancel_held(world: World, api: str) -> None:
    for i in range(5):
        world.contact(f"k{i}")
    ops, slug = operator(world), world.tenant.slug
    with httpx.Client(base_url=api, timeout=10) as http:
        url = f"/v1/operator/tenants/{slug}/sending-blocks"
        assert (
            http.post(
                url, json={"scope": "all", "reason": "account compromised"}, headers=ops
            ).status_code
            == 201
        )
        world.publish(world.message("receipt", kind="transactional"))
        world.run(lambda: Counter(r.state for r in world.deliveries("receipt")) == {"held": 5})
        assert world.sink.handler.received == []
        cancelled = http.post(
            f"/v1/operator/tenants/{slug}/held/cancel",
            json={"reason": "stale receipts"},
            headers=ops,
        ).json()
        assert cancelled["cancelled"] == 5
        assert http.get("/v1/operator/tenants/nope/sending-state", headers=ops).status_code == 404
    world.run(world.finished("receipt"))
    assert Counter(r.state for r in world.deliveries("receipt")) == {"cancelled": 5}
