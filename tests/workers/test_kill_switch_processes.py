"""The kill switch across processes: two sender processes (plus planner and sweeper) send a
10,000-recipient campaign; an operator flips the tenant off over the api and no SMTP
transaction for it starts more than a second later; re-enabling resumes it and every
recipient gets exactly one mail. Needs a cross-process broker and Redis pub/sub."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from postgate.http.auth import create_key
from postgate.sinks.smtp import SmtpSink
from tests.dns_server import LocalDns
from tests.support import World, signing_domain
from tests.workers.fleet import Fleet, wait_until
from tests.workers.switching import TimedHandler, bulk_audience

pytestmark = pytest.mark.skipif(
    os.environ.get("BROKER_URL", "memory://").startswith("memory")
    or not os.environ.get("REDIS_URL"),
    reason="needs a cross-process broker and REDIS_URL for pub/sub",
)
N = 10_000


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(handler=TimedHandler()) as server:
        yield server


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "rsa-signed"])
def test_flip_reaches_every_sender_process_within_a_second(
    world: World, api: str, tmp_path: Path, signed: bool, suite_dns: LocalDns
) -> None:
    """With ``signed`` the tenant's mail is DKIM-signed with RSA-2048, as production
    sends: signatures in flight on the signing threads must not delay the stop."""
    handler: TimedHandler = world.sink.handler  # type: ignore[assignment]
    bulk_audience(world, N)
    if signed:
        signing_domain(world, suite_dns, "rsa-sha256")
    ops = {"Authorization": f"Bearer {create_key(world.ctx.engine, 'operator', 'ops')}"}
    url = f"/v1/operator/tenants/{world.tenant.slug}/sending-blocks"
    fleet = Fleet(world.ctx.settings, tmp_path)
    for names in (("planner", "sweeper"), ("sender",), ("sender",)):
        fleet.spawn(*names, BATCH_SIZE="25")
    domain = world.tenant.domain
    try:
        world.publish(world.message("huge"))
        wait_until(lambda: len(handler.starts_for(domain)) >= 1500, 120, every=0.01)
        with httpx.Client(base_url=api, timeout=10) as http:
            flipped = time.time()
            reply = http.post(
                url, json={"scope": "bulk_email", "reason": "complaint storm"}, headers=ops
            )
            assert reply.status_code == 201
            time.sleep(3)
            starts = handler.starts_for(domain)
            late = max(starts) - flipped
            held = Counter(r.state for r in world.deliveries("huge"))
            assert held["held"] > 0, held
            cleared = http.post(
                f"{url}/clear", json={"scope": "bulk_email", "reason": "investigated"}, headers=ops
            )
            assert cleared.status_code == 200
        assert wait_until(world.finished("huge"), 120)
    finally:
        codes = fleet.stop()
    assert set(codes.values()) == {0}, {k: fleet.tail(k) for k, v in codes.items() if v}
    print(
        f"\nkill switch across 2 sender processes (Redis pub/sub): sent {len(starts)} before "
        f"the flip took hold, last transaction start {late * 1000:.0f} ms after the flip, "
        f"{held['held']} held then resumed"
    )
    assert late < 1.0, f"a transaction started {late:.3f}s after the flip"
    assert Counter(r.state for r in world.deliveries("huge")) == {"sent": N}
    received = Counter(a for r in handler.received for a in r.recipients)
    assert len(received) == N and set(received.values()) == {1}
    assert all(r.data.startswith(b"DKIM-Signature:") == signed for r in handler.received)
