"""Metrics over real HTTP: database gauges in the api, and the multiprocess mode that sums
the values of several processes sharing PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select

from postgate.core.clock import utcnow
from postgate.core.states import Channel, FeedbackKind
from postgate.feedback import ledger
from postgate.store import tables as t
from tests.operator_page.background import seed_history
from tests.support import World


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_api_serves_tenant_states_blocks_and_backlog(world: World, api: str) -> None:
    world.contact("anna")
    with world.ctx.engine.begin() as conn:
        conn.execute(
            insert(t.sending_block).values(
                tenant_id=world.tenant_id,
                scope="bulk_email",
                source="breaker",
                reason="3 complaints in 1000",
                detail={},
                actor="breaker",
                created_at=utcnow(),
            )
        )
    world.publish(world.message("queued"))
    world.run(lambda: bool(world.deliveries("queued")), workers=("planner",), timeout=20)
    found = samples(httpx.get(f"{api}/metrics", timeout=10).text)
    slug = world.tenant.slug
    assert found[("postgate_tenant_state", (("state", "active"), ("tenant", slug)))] == 1
    assert found[("postgate_tenant_state", (("state", "killed"), ("tenant", slug)))] == 0
    assert (
        found[
            (
                "postgate_sending_blocks_active",
                (("scope", "bulk_email"), ("source", "breaker"), ("tenant", slug)),
            )
        ]
        == 1
    )
    assert found[("postgate_deliveries_open", (("state", "queued"),))] >= 1
    assert found[("postgate_queue_lag_seconds", ())] >= 0
    assert ("postgate_planned_total", (("channel", "email"), ("tenant", slug))) in found


WORKER = """
from postgate.observability.metrics import MESSAGES
MESSAGES.labels("acme", "email", "smtp", "sent").inc({n})
"""


def test_multiprocess_values_are_summed_across_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (3, 4):
        subprocess.run([sys.executable, "-c", WORKER.format(n=n)], env=env, check=True, timeout=60)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from postgate.observability.export import exposition; "
            "sys.stdout.write(exposition().decode())",
        ],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    key = (
        "postgate_messages_total",
        (("channel", "email"), ("outcome", "sent"), ("provider", "smtp"), ("tenant", "acme")),
    )
    assert samples(out)[key] == 7


def test_api_serves_the_breakers_window_counts_and_rates(world: World, api: str) -> None:
    seed_history(world, delivered=200, complaints=1, hard_bounces=4)
    d = t.delivery.c
    with world.ctx.engine.begin() as conn:
        ids = list(conn.scalars(select(d.id).where(d.tenant_id == world.tenant_id).limit(20)))
        ledger.record(
            conn,
            [
                ledger.Event(
                    Channel.EMAIL,
                    FeedbackKind.BOUNCE,
                    f"metrics:{reason}:{delivery_id}",
                    "smtp_reply",
                    utcnow(),
                    world.tenant_id,
                    delivery_id,
                    hard=False,
                    status="5.7.1" if reason == "policy_block" else "5.7.26",
                    reason=reason,
                )
                for reason, chosen in (("policy_block", ids[10:16]), ("auth_failure", ids[16:19]))
                for delivery_id in chosen
            ],
        )
    found = samples(httpx.get(f"{api}/metrics", timeout=10).text)
    slug = world.tenant.slug

    def window(count: str) -> float:
        return found[("postgate_breaker_window", (("count", count), ("tenant", slug)))]

    def rate(name: str) -> float:
        return found[("postgate_breaker_rate", (("rate", name), ("tenant", slug)))]

    assert [window(c) for c in ("sent", "delivered", "complaints", "hard_bounces")] == [
        200,
        200,
        1,
        4,
    ]
    assert (window("policy_blocks"), window("auth_failures")) == (6, 3)
    assert (rate("policy_block"), rate("auth_failure")) == (0.03, 0.015)
    assert (rate("complaint"), rate("hard_bounce")) == (0.005, 0.02)
