"""Direct-to-MX throughput into Postfix's C ``smtp-sink``, next to the smarthost pool.

    python bench/mx.py --messages N [--domains 4] [--per-domain 4]
    python bench/mx.py --shaped [--seconds 20] [--senders 2] [--redis-url URL]

One ``smtp-sink`` per destination domain, each domain's MX record (and its host's A
record) served by the tests' local DNS server on 127.0.0.1. The MX provider sends N
messages spread over the domains with ``--per-domain`` connections each (as many sends in
flight as it has connections); then the smarthost pool sends N messages over the same
total number of connections into one sink. The last line printed is one JSON object.

With ``--shaped``: 20 domains on 4 provider groups, sender processes sharing the shaping
state in Redis, each group's measured rate against its limit (``bench/mx_shaped.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import sink_count, smtp_sink

from postgate.core.outcome import Outcome
from postgate.providers.base import EmailProvider
from postgate.providers.mx import MxProvider
from postgate.providers.smtp import SmtpPool
from postgate.settings import Settings
from tests.dns_server import LocalDns

MESSAGE = (
    b"From: News <news@shop.example>\r\nTo: reader\r\nSubject: autumn\r\n"
    b"Message-ID: <1@shop.example>\r\n\r\n" + b"Hello, reader.\r\n" * 150
)


async def blast(provider: EmailProvider, recipients: list[str], in_flight: int) -> float:
    """Messages per second for sending to every recipient, ``in_flight`` at a time."""
    await provider.start()
    slots = asyncio.Semaphore(in_flight)

    async def one(rcpt: str) -> bool:
        async with slots:
            result = await provider.send("bounce@bounces.example", rcpt, MESSAGE)
            return result.outcome is Outcome.SENT

    try:
        started = time.perf_counter()
        sent = await asyncio.gather(*(one(r) for r in recipients))
        elapsed = time.perf_counter() - started
    finally:
        await provider.close()
    if not all(sent):
        raise SystemExit(f"{len(sent) - sum(sent)} messages were not sent")
    return len(recipients) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--domains", type=int, default=4)
    parser.add_argument("--per-domain", type=int, default=4)
    parser.add_argument("--shaped", action="store_true")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.shaped:
        from mx_shaped import run

        raise SystemExit(run(args.seconds, args.senders, args.redis_url))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    dns = LocalDns()
    domains = [f"d{i}.example" for i in range(args.domains)]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        sinks = []
        for domain in domains:
            (Path(tmp) / domain).mkdir()
            sinks.append(stack.enter_context(smtp_sink(Path(tmp) / domain)))
            dns.publish_mx(domain, 10, f"mx.{domain}")
            dns.publish_a(f"mx.{domain}")
        settings = Settings(
            dns_resolver=dns.address,
            providers={
                "mx": {
                    "connections_per_domain": args.per_domain,
                    "port_overrides": {
                        f"mx.{d}": port for d, (port, _) in zip(domains, sinks, strict=True)
                    },
                },
                "smtp": {"port": sinks[0][0], "connections": args.domains * args.per_domain},
            },
        )
        in_flight = args.domains * args.per_domain
        recipients = [f"r{i}@{domains[i % len(domains)]}" for i in range(args.messages)]
        mx_rate = asyncio.run(blast(MxProvider(settings), recipients, in_flight))
        time.sleep(1.5)  # the sinks write their counters once a second
        received = sum(sink_count(counters) for _, counters in sinks)
        pool_rate = asyncio.run(blast(SmtpPool(settings), recipients, in_flight))
    dns.close()
    print(
        f"direct to MX, {args.domains} domains x {args.per_domain} connections: "
        f"{mx_rate:,.0f} msg/s; smarthost pool, {in_flight} connections: "
        f"{pool_rate:,.0f} msg/s ({received:,} received from the MX provider)",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "mx_per_s": round(mx_rate),
                "smarthost_per_s": round(pool_rate),
                "messages": args.messages,
                "received": received,
            }
        )
    )


if __name__ == "__main__":
    main()
