"""Run the demo: seed, publish a campaign as a queue message, plan, send, report."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from postgate.core.states import CampaignState
from postgate.demo.seed import TOPIC, seed
from postgate.runtime.context import Context
from postgate.settings import Settings, new_secret
from postgate.sinks.smtp import SmtpSink
from postgate.store import tables as t
from postgate.store.db import migrate
from postgate.workers.main import install_loop, run_workers


def campaign_message(tenant: str, list_id: int) -> dict[str, object]:
    return {
        "version": "campaign.v1",
        "tenant": tenant,
        "campaign_id": "spring-sale-2026",
        "channel": "email",
        "kind": "promotional",
        "topic": TOPIC,
        "audience": [list_id],
        "from": {"email": "news@acme.example", "name": "Acme Kft."},
        "content": {
            "subject": "Spring sale, {{ name }}!",
            "text": "Hello {{ name }},\n\nEverything is 20% off this week.\n",
            "html": "<p>Hello {{ name }},</p><p>Everything is <b>20% off</b> this week.</p>",
        },
    }


def forbidden_message(tenant: str, list_id: int) -> dict[str, object]:
    """A campaign the content policy refuses: counterfeit goods."""
    message = campaign_message(tenant, list_id)
    message["campaign_id"] = "replica-deal"
    message["content"] = {
        "subject": "Replica watches -90%",
        "text": "Fake Rolex and other replica watches, today only.",
    }
    return message


def run_demo(workdir: Path | None = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    directory = workdir or Path(tempfile.mkdtemp(prefix="postgate-demo-"))
    sink = SmtpSink().start()
    sink.handler.script("nobody@example.com", "550 5.1.1 <nobody@example.com>: user unknown")
    settings = Settings(
        database_url=f"sqlite:///{directory / 'postgate.db'}",
        broker_url="memory://",
        queue_prefix=f"demo{time.time_ns()}",
        providers={"smtp": {"port": sink.port, "connections": 4}},
        retry_base_s=1,
        sweep_interval_s=0.2,
        secret_key=new_secret(),  # a throwaway key: the demo's links die with its database
    )
    try:
        migrate(settings.database_url)
        ctx = Context.from_settings(settings)
        tenant, list_id = seed(ctx.engine)
        broker = ctx.broker()
        message = campaign_message(tenant, list_id)
        broker.publish("campaigns", message)
        broker.publish("campaigns", message)  # a producer retry: must stay one campaign
        broker.publish("campaigns", b'{"version": "campaign.v1", "tenant": "acme"}')
        broker.publish("campaigns", forbidden_message(tenant, list_id))
        install_loop(settings)
        asyncio.run(_run_until_finished(ctx))
        report = _report(ctx, sink)
    finally:
        sink.stop()
    _print(report, say, directory)
    return report


async def _run_until_finished(ctx: Context, timeout_s: float = 60) -> None:
    stop = asyncio.Event()

    async def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with ctx.engine.connect() as conn:
                states = dict(
                    conn.execute(
                        select(t.campaign.c.external_id, t.campaign.c.state).where(
                            t.campaign.c.external_id.in_(["spring-sale-2026", "replica-deal"])
                        )
                    ).all()
                )
            if states == {
                "spring-sale-2026": CampaignState.FINISHED,
                "replica-deal": CampaignState.REJECTED,
            }:
                break
            await asyncio.sleep(0.2)
        stop.set()

    await run_workers(ctx, ["planner", "sender", "sweeper"], stop, extra=[watch()])


def _report(ctx: Context, sink: SmtpSink) -> dict[str, Any]:
    d, cp = t.delivery.c, t.campaign.c
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(d.address, d.state, d.reason, d.smtp_code, d.last_error)
            .join(t.campaign, cp.id == d.campaign_id)
            .where(cp.external_id == "spring-sale-2026")
            .order_by(d.id)
        ).all()
        campaigns = conn.execute(select(cp.external_id, cp.state)).all()
        rejected = conn.execute(
            select(cp.external_id, cp.policy).where(cp.state == CampaignState.REJECTED)
        ).all()
        dead = conn.execute(select(t.dead_letter.c.queue, t.dead_letter.c.error)).all()
    states = Counter(r.state for r in rows)
    return {
        "recipients": [dict(r._mapping) for r in rows],
        "sent": states["sent"],
        "failed": states["failed"],
        "blocked": dict(Counter(r.reason for r in rows if r.state == "blocked")),
        "campaigns": [tuple(c) for c in campaigns],
        "dead_letters": [tuple(x) for x in dead],
        "rejected": [(name, policy or {}) for name, policy in rejected],
        "sink_messages": len(sink.handler.received),
    }


def _print(report: dict[str, Any], out: Callable[[str], None], directory: Path) -> None:
    out(
        "postgate demo: tenant 'acme', campaign 'spring-sale-2026' (promotional, topic "
        f"'{TOPIC}')\n"
    )
    out(f"{'recipient':<24} {'result':<8} why")
    for r in report["recipients"]:
        why = r["reason"] or ""
        if r["state"] == "failed":
            why = f"{why}: {r['smtp_code']} {r['last_error']}"
        out(f"{r['address']:<24} {r['state']:<8} {why}")
    blocked = report["blocked"]
    total_blocked = sum(blocked.values())
    by_reason = ", ".join(f"{k} {v}" for k, v in sorted(blocked.items()))
    out(
        f"\nsent {report['sent']}, blocked {total_blocked} ({by_reason}), failed {report['failed']}"
    )
    out(f"the local SMTP sink received {report['sink_messages']} message(s)")
    out(f"campaigns: {report['campaigns']} (the duplicate queue message made no second one)")
    for name, policy in report["rejected"]:
        found = "; ".join(
            f"{category}: {', '.join(terms)}"
            for category, terms in (policy.get("matches") or {}).items()
        )
        out(f"campaign '{name}' rejected by the content policy ({found})")
    for queue, error in report["dead_letters"]:
        out(f"dead letter from '{queue}': {error}")
    out(f"\ndatabase kept at {directory / 'postgate.db'}")
    out(json.dumps({k: report[k] for k in ("sent", "failed", "blocked")}))
