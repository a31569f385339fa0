"""The operator page over real HTTP shows what came back by reason: per tenant the last
24 hours and 7 days by kind and reason, the breaker's policy-block and authentication
failure rates against their thresholds, and each recent and unverified event's reason."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from postgate.core.clock import utcnow
from postgate.core.states import Channel, FeedbackKind
from postgate.feedback import ledger
from postgate.http.auth import create_key
from postgate.store import tables as t
from tests.operator_page.background import seed_history
from tests.operator_page.test_sessions import login
from tests.support import World

SENT = 200


def cell(panel: str, row_attr: str, name: str) -> str:
    """The text of one data-cell in the table row marked ``row_attr``."""
    row = re.search(rf"<tr {row_attr}[^>]*>(.*?)</tr>", panel, re.S)
    assert row, f"no row {row_attr}"
    found = re.search(rf'data-cell="{name}"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert found, f"no cell {name} in row {row_attr}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def cell_class(panel: str, row_attr: str, name: str) -> str:
    row = re.search(rf"<tr {row_attr}[^>]*>(.*?)</tr>", panel, re.S)
    assert row
    found = re.search(rf'<td class="([^"]*)" data-cell="{name}"', row.group(1))
    assert found
    return found.group(1)


def events(world: World, reason: str, kind: FeedbackKind, n: int, days_ago: float) -> None:
    """``n`` events about distinct sent deliveries, as the listener records them."""
    d = t.delivery.c
    at = utcnow() - timedelta(days=days_ago)
    with world.ctx.engine.begin() as conn:
        taken = set(conn.scalars(select(t.feedback_event.c.delivery_id)))
        free = [
            (i, a)
            for i, a in conn.execute(
                select(d.id, d.address).where(d.tenant_id == world.tenant_id).order_by(d.id)
            )
            if i not in taken
        ][:n]
        ledger.record(
            conn,
            [
                ledger.Event(
                    Channel.EMAIL,
                    kind,
                    f"test:{reason}:{delivery_id}",
                    "dsn",
                    at,
                    world.tenant_id,
                    delivery_id,
                    address,
                    reason in ("user_unknown", "host_unknown"),
                    "5.7.1" if reason == "policy_block" else "5.1.1",
                    "verp",
                    reason=reason,
                )
                for delivery_id, address in free
            ],
        )


def test_feedback_by_reason_and_the_refusal_rates_are_on_the_page(world: World, api: str) -> None:
    world.ctx.settings.breaker_min_volume = 100
    seed_history(world, delivered=SENT, complaints=0, hard_bounces=0)
    quiet = World.create(world.ctx, world.sink)
    events(world, "policy_block", FeedbackKind.BOUNCE, 12, days_ago=0.1)  # 6 % > 5 %
    events(world, "auth_failure", FeedbackKind.BOUNCE, 4, days_ago=0.2)  # 2 %: near, not over
    events(world, "user_unknown", FeedbackKind.BOUNCE, 4, days_ago=3)  # in the week only
    events(world, "mailbox_full", FeedbackKind.BOUNCE, 2, days_ago=9)  # outside the week
    with world.ctx.engine.begin() as conn:  # a forged report: no tenant
        ledger.record(
            conn,
            [
                ledger.Event(
                    Channel.EMAIL,
                    FeedbackKind.BOUNCE,
                    "test:forged",
                    "dsn",
                    utcnow(),
                    address="victim@example.com",
                    hard=False,
                    status="5.7.26",
                    verification="unverified",
                    reason="auth_failure",
                )
            ],
        )
    key = create_key(world.ctx.engine, "operator", "alice")
    with httpx.Client(base_url=api, timeout=10) as http:
        assert login(http, key).status_code == 303
        panel = http.get("/operator/panels")
    assert panel.status_code == 200
    text = panel.text
    tenant = f'data-tenant="{world.tenant.slug}"'
    assert cell(text, tenant, "policy") == "6.00 % / 5.0 % 12"
    assert "over" in cell_class(text, tenant, "policy")
    assert cell(text, tenant, "auth") == "2.00 % / 2.0 % 4"
    assert "near" in cell_class(text, tenant, "auth")
    assert cell(text, tenant, "sent") == str(SENT)
    assert cell(text, tenant, "bounce").startswith("2.00 %")  # the 4 user_unknown (3 days)
    calm = f'data-tenant="{quiet.tenant.slug}"'
    assert cell(text, calm, "policy").startswith("0.00 %")

    slug = world.tenant.slug

    def reason_row(kind: str, reason: str) -> tuple[str, str]:
        attr = f'data-reason="{slug}-{kind}-{reason}"'
        return cell(text, attr, "day"), cell(text, attr, "week")

    assert reason_row("bounce", "policy_block") == ("12", "12")
    assert reason_row("bounce", "auth_failure") == ("4", "4")
    assert reason_row("bounce", "user_unknown") == ("0", "4")
    assert f'data-reason="{slug}-bounce-mailbox_full"' not in text  # 9 days ago
    assert f'data-reason="{quiet.tenant.slug}-' not in text

    recent = [
        f"<tr data-event>{row}</tr>"
        for row in re.findall(r'<tr data-event="\d+">(.*?)</tr>', text, re.S)
    ]
    with world.ctx.engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(t.feedback_event))
    assert len(recent) == min(25, stored)  # the latest events of every tenant
    ours = recent[:23]  # ours are the newest 23
    assert {cell(r, "data-event", "tenant") for r in ours} == {slug, "—"}
    reasons = [cell(row, "data-event", "reason") for row in ours]
    assert reasons.count("policy_block") == 12 and reasons.count("mailbox_full") == 2
    assert reasons.count("auth_failure") == 5  # four verified, one forged
    assert reasons.count("user_unknown") == 4
    assert "victim@example.com" in text
    assert 'data-unverified="dsn-bounce-auth_failure"' in text
