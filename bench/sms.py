"""SMS throughput through each gateway against the local servers, and end to end.

    python bench/sms.py [--messages N] [--recipients R] [--database-url URL]

All on 127.0.0.1, the gateways' own rate limits lifted: (1) the SMPP gateway (window
of 10 outstanding submit_sm) into the local SMSC; (2) the SMSAPI gateway (aiohttp, 50
keep-alive connections) into the local SMSAPI stand-in, and, for comparison, httpx
with the same 50 connections; (3) end to end per gateway: R consenting contacts, one
sms ``campaign.v1``, planner + sender + sweeper until the campaign is finished. The
servers run in threads of this process, so they share its GIL: figures are a floor.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import fresh_database

from postgate.core.clock import aware, utcnow
from postgate.core.sms.encoding import encode
from postgate.feedback.sms import DatabaseFeedback
from postgate.providers.smpp import SmppGateway
from postgate.providers.sms import SmsMessage
from postgate.providers.smsapi import SmsApiGateway
from postgate.runtime.context import Context
from postgate.settings import Settings
from postgate.sinks.smsapi import SmsApiSink, SmsApiState
from postgate.sinks.smsc import SmscSink
from postgate.store import tables as t
from postgate.store.db import engine_for, migrate
from postgate.workers.main import install_loop, run_workers

PREFIX = {"smpp": ("+3620", 1_000_000), "smsapi": ("+48501", 100_000)}  # valid mobiles


@dataclass
class Servers:
    smpp_port: int
    smsapi_port: int
    token: str = SmsApiState().token

    @property
    def smsapi_url(self) -> str:
        return f"http://127.0.0.1:{self.smsapi_port}"


@contextmanager
def servers() -> Iterator[Servers]:
    """The local SMSC and SMSAPI stand-in, in a child process."""
    ports = Servers(_free_port(), _free_port())
    child = subprocess.Popen(
        [sys.executable, __file__, "--_serve", str(ports.smpp_port), str(ports.smsapi_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        yield ports
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(10)


def serve(smpp_port: int, smsapi_port: int) -> int:
    install_loop(Settings(use_uvloop=True))
    with SmscSink(smpp_port), SmsApiSink(smsapi_port):
        print("ready", flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_for(url: str, ports: Servers) -> Settings:
    return Settings(
        database_url=url,
        use_uvloop=True,
        queue_prefix=f"smsbench{os.getpid()}",
        providers={
            "smpp": {"port": ports.smpp_port, "window": 10, "rate_per_s": 0},
            "smsapi": {
                "url": ports.smsapi_url,
                "token": ports.token,
                "connections": 50,
                "rate_per_s": 0,
            },
        },
        batch_size=500,
        sender_prefetch=4,
        sms_send_window="*=00:00-24:00",  # measure at any hour, never held for the night
    )


async def gateway_rate(gateway: Any, n: int, number: str) -> float:
    await gateway.start()
    sms = encode("Hello, this is a benchmark message")
    started = time.perf_counter()
    results = await gateway.send_batch(
        [SmsMessage(10_000_000 + i, number, "Bench", sms) for i in range(n)]
    )
    elapsed = time.perf_counter() - started
    await gateway.close()
    assert all(r.outcome.value == "sent" for r in results), "not every message was accepted"
    return n / elapsed


async def httpx_rate(api: Servers, n: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    gate = asyncio.Semaphore(200)
    async with httpx.AsyncClient(
        limits=limits,
        timeout=httpx.Timeout(30, pool=None),
        headers={"Authorization": f"Bearer {api.token}"},
    ) as client:

        async def one(i: int) -> int:
            async with gate:
                response = await client.post(
                    f"{api.smsapi_url}/sms.do",
                    data={
                        "to": "48501000000",
                        "message": "Hello",
                        "format": "json",
                        "idx": f"h{i}",
                        "check_idx": "1",
                    },
                )
            return response.status_code

        started = time.perf_counter()
        codes = await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - started
    assert set(codes) == {200}
    return n / elapsed


def seed(url: str, recipients: int, provider: str) -> int:
    engine, now = engine_for(url), utcnow()
    given = now - timedelta(days=30)
    with engine.begin() as conn:
        tenant_id = conn.execute(
            insert(t.tenant)
            .values(
                slug=f"bench-{provider}",
                name="Bench",
                domain=f"{provider}.example",
                status="active",
                status_reason="",
                created_at=now,
            )
            .returning(t.tenant.c.id)
        ).scalar_one()
        list_id = conn.execute(
            insert(t.mailing_list)
            .values(tenant_id=tenant_id, name="All", created_at=now)
            .returning(t.mailing_list.c.id)
        ).scalar_one()
        ids = list(
            conn.execute(
                insert(t.contact).returning(t.contact.c.id),
                [
                    {
                        "tenant_id": tenant_id,
                        "phone": f"{PREFIX[provider][0]}{PREFIX[provider][1] + i}",
                        "name": f"C{i}",
                        "attributes": {},
                        "created_at": now,
                    }
                    for i in range(recipients)
                ],
            ).scalars()
        )
        conn.execute(
            insert(t.list_member),
            [{"list_id": list_id, "contact_id": i, "tenant_id": tenant_id} for i in ids],
        )
        conn.execute(
            insert(t.consent),
            [
                {
                    "tenant_id": tenant_id,
                    "contact_id": i,
                    "channel": "sms",
                    "topic": "news",
                    "source": "signup_form",
                    "status": "confirmed",
                    "consented_at": given,
                    "confirmed_at": given,
                    "created_at": now,
                }
                for i in ids
            ],
        )
    return int(list_id)


def end_to_end(settings: Settings, provider: str, recipients: int) -> dict[str, Any]:
    list_id = seed(settings.database_url, recipients, provider)
    ctx = Context.from_settings(settings)
    external = f"bench-{provider}"
    broker = ctx.broker()
    published = utcnow()
    broker.publish(
        "campaigns",
        {
            "version": "campaign.v1",
            "tenant": f"bench-{provider}",
            "campaign_id": external,
            "channel": "sms",
            "kind": "transactional",
            "topic": "news",
            "audience": [list_id],
            "content": {"text": "Hello {{ name }}, your order has shipped."},
        },
    )
    broker.close()
    c, d = t.campaign.c, t.delivery.c

    def state() -> str | None:
        with ctx.engine.connect() as conn:
            return conn.scalar(select(c.state).where(c.external_id == external))

    async def run() -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            while await asyncio.to_thread(state) != "finished":
                await asyncio.sleep(0.2)
            stop.set()

        await run_workers(ctx, ["planner", "sender", "sweeper"], stop, extra=[watch()])

    asyncio.run(run())
    with ctx.engine.connect() as conn:
        finished_at = conn.scalar(select(c.finished_at).where(c.external_id == external))
        sent = conn.scalar(
            select(func.count())
            .select_from(t.delivery)
            .join(t.campaign, c.id == d.campaign_id)
            .where(c.external_id == external, d.state == "sent")
        )
    elapsed = (aware(finished_at) - published).total_seconds()
    return {f"{provider}_e2e_sms_per_s": (sent or 0) / elapsed, f"{provider}_e2e_sent": sent}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--recipients", type=int, default=5000)
    p.add_argument("--database-url", default=None)
    p.add_argument("--_serve", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._serve:
        return serve(*args._serve)
    result: dict[str, Any] = {"messages": args.messages, "recipients": args.recipients}
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="postgate-smsbench-") as tmp,
        servers() as ports,
        fresh_database(args.database_url, Path(tmp)) as url,
    ):
        migrate(url)
        settings = settings_for(url, ports)
        install_loop(settings)
        feedback = DatabaseFeedback(engine_for(url))
        print("  gateways...", file=sys.stderr)
        result["smpp_gateway_per_s"] = asyncio.run(
            gateway_rate(SmppGateway(settings, feedback), args.messages, "+36201000000")
        )
        result["smsapi_aiohttp_per_s"] = asyncio.run(
            gateway_rate(SmsApiGateway(settings, feedback), args.messages, "+48501000000")
        )
        result["smsapi_httpx_per_s"] = asyncio.run(httpx_rate(ports, args.messages))
        for provider in ("smpp", "smsapi"):
            print(f"  end to end through {provider}...", file=sys.stderr)
            result |= end_to_end(settings, provider, args.recipients)
        print(f"  measured in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    for key, value in result.items():
        print(f"  {key:<28} {value:,.0f}" if isinstance(value, float) else f"  {key:<28} {value}")
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}))
    complete = all(result[f"{p}_e2e_sent"] == args.recipients for p in PREFIX)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
