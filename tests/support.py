"""Test scaffolding: a tenant world to seed, and running real workers until a condition."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from postgate.consent import records
from postgate.core import tokens
from postgate.core.clock import utcnow
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.sinks.smtp import SmtpSink
from postgate.store import tables as t
from postgate.store.models.consent import Contact, MailingList
from postgate.store.models.tenants import Tenant
from postgate.workers.main import run_workers


@dataclass
class World:
    """One fresh tenant with one list, in the shared test database."""

    ctx: Context
    sink: SmtpSink
    tenant: Tenant
    mlist: MailingList

    @classmethod
    def create(cls, ctx: Context, sink: SmtpSink) -> World:
        slug = f"tenant-{uuid.uuid4().hex[:8]}"
        with Session(ctx.engine, expire_on_commit=False) as s:
            tenant = records.create_tenant(s, slug, f"Tenant {slug}", f"{slug}.example")
            assert tenant.id is not None
            mlist = records.create_list(s, tenant.id, "main")
            s.commit()
        return cls(ctx, sink, tenant, mlist)

    @property
    def tenant_id(self) -> int:
        assert self.tenant.id is not None
        return self.tenant.id

    def contact(
        self,
        local: str,
        consent: str | None = "confirmed",
        source: str = "signup_form",
        days_ago: int = 30,
        topic: str = "news",
        **proof: Any,
    ) -> Contact:
        """A list member at ``local@<tenant domain>`` with (by default) a fresh DOI consent."""
        email = f"{local}@{self.tenant.domain}"
        with Session(self.ctx.engine, expire_on_commit=False) as s:
            contact = records.add_contact(
                s, self.tenant_id, email=email, name=local.title(), lists=[self.mlist]
            )
            if consent is not None:
                when = utcnow() - timedelta(days=days_ago)
                if source == "signup_form" and consent == "confirmed":
                    proof.setdefault("confirmed_at", when)
                records.add_consent(s, contact, "email", topic, source, consent, when, **proof)
            s.commit()
        return contact

    def message(self, campaign_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "version": "campaign.v1",
            "tenant": self.tenant.slug,
            "campaign_id": campaign_id or f"c-{uuid.uuid4().hex[:8]}",
            "channel": "email",
            "kind": "promotional",
            "topic": "news",
            "audience": [self.mlist.id],
            "from": {"email": f"news@{self.tenant.domain}", "name": "News Desk"},
            "content": {
                "subject": "Hello {{ name }}",
                "text": "Hi {{ name }}!\n",
                "html": "<p>Hi {{ name }}!</p>",
            },
        }
        msg.update(overrides)
        return msg

    def publish(self, message: dict[str, Any] | bytes | str) -> None:
        broker = self.ctx.broker()
        broker.publish("campaigns", message)
        broker.close()

    def deliveries(self, external_id: str) -> list[Any]:
        d, c = t.delivery.c, t.campaign.c
        with self.ctx.engine.connect() as conn:
            return list(
                conn.execute(
                    select(d.address, d.state, d.reason, d.smtp_code, d.attempts, d.id)
                    .join(t.campaign, c.id == d.campaign_id)
                    .where(c.tenant_id == self.tenant_id, c.external_id == external_id)
                    .order_by(d.id)
                ).all()
            )

    def campaign_state(self, external_id: str) -> str | None:
        c = t.campaign.c
        with self.ctx.engine.connect() as conn:
            return conn.scalar(
                select(c.state).where(c.tenant_id == self.tenant_id, c.external_id == external_id)
            )

    def campaign_count(self) -> int:
        with self.ctx.engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(t.campaign)
                    .where(t.campaign.c.tenant_id == self.tenant_id)
                )
                or 0
            )

    def finished(self, external_id: str) -> Callable[[], bool]:
        return lambda: self.campaign_state(external_id) == "finished"

    def run(
        self,
        until: Callable[[], bool],
        workers: tuple[str, ...] = ("planner", "sender", "sweeper"),
        timeout: float = 30,
    ) -> float:
        """Run real workers on one event loop until ``until()`` holds; return the seconds."""
        return asyncio.run(run_until(self.ctx, list(workers), until, timeout))


async def run_until(
    ctx: Context, workers: list[str], until: Callable[[], bool], timeout: float
) -> float:
    stop = asyncio.Event()
    started = time.monotonic()
    outcome: dict[str, bool] = {}

    async def watch() -> None:
        while time.monotonic() - started < timeout:
            if await asyncio.to_thread(until):
                outcome["ok"] = True
                break
            await asyncio.sleep(0.05)
        stop.set()

    await run_workers(ctx, workers, stop, extra=[watch()])
    if not outcome.get("ok"):
        raise AssertionError(f"condition not reached within {timeout}s")
    return time.monotonic() - started


def serve_api(settings: Settings) -> Iterator[str]:
    """Run the api with uvicorn on a free 127.0.0.1 port in a thread, for real HTTP tests."""
    import socket
    import threading

    import uvicorn

    from postgate.cli.main import proxy_options
    from postgate.http.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy_headers, allowed = proxy_options(settings)  # as `postgate api` runs it
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            proxy_headers=proxy_headers,
            forwarded_allow_ips=allowed,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "api did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


def ref_for(engine: Any, delivery_id: int) -> tokens.Ref:
    """The reference postgate signs into the mail of ``delivery_id``."""
    d = t.delivery.c
    with engine.connect() as conn:
        campaign_id, tenant_id = conn.execute(
            select(d.campaign_id, d.tenant_id).where(d.id == delivery_id)
        ).one()
    return tokens.Ref(delivery_id, campaign_id, tenant_id)


def verp_for(ctx: Context, delivery_id: int) -> str:
    """The signed return path postgate gives the mail of ``delivery_id``."""
    return tokens.verp_address(
        ctx.settings.secret_key, ref_for(ctx.engine, delivery_id), ctx.settings.bounce_domain
    )


def unsubscribe_token_for(ctx: Context, delivery_id: int) -> str:
    return tokens.unsubscribe_token(ctx.settings.secret_key, ref_for(ctx.engine, delivery_id))


def publish_domain(dns: Any, created: dict[str, Any]) -> None:
    """Publish in the tests' DNS server what a tenant provisioned over the api is told to
    (its ``sender_domain`` DKIM record(s)), with an SPF record and a DMARC policy, so its
    primary domain passes the authentication preflight as a well-set-up tenant's would."""
    domain = created["domain"]
    for record in created["sender_domain"]["dns"]:
        dns.publish(record["name"], record["value"])
    dns.publish(domain, "v=spf1 -all")
    dns.publish(f"_dmarc.{domain}", "v=DMARC1; p=none; adkim=r; aspf=r")


def signing_domain(world: World, dns: Any, algorithm: str, dual: bool = False) -> Any:
    """Make the world's primary domain an established sender domain that signs with
    ``algorithm`` (and with ``dual`` a second key): vouched for as provisioning does, past
    its warm-up, its records published in ``dns`` (so its preflight passes when the planner
    first checks it). Returns the sender_domain row."""
    from postgate.tenants import domains

    settings = world.ctx.settings.model_copy(
        update={"dkim_algorithm": algorithm, "dkim_dual": dual, "warmup_enabled": False}
    )
    with world.ctx.engine.begin() as conn:
        row = domains.vouch(conn, settings, world.tenant_id, world.tenant.domain, utcnow())
    publish_domain(dns, {"domain": world.tenant.domain, "sender_domain": domains.describe(row)})
    return row


def signing_processes(parent: int | None = None) -> list[int]:
    """The ids of the DKIM signing processes (``postgate.workers.signing_process``) that
    ``parent`` (this process) started, read from /proc."""
    base = Path(f"/proc/{os.getpid() if parent is None else parent}/task")
    found = []
    for children in base.glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:  # the thread has just ended
            continue
        for pid in pids:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:  # it has just ended
                continue
            if b"postgate.workers.signing_process" in command:
                found.append(int(pid))
    return sorted(found)
