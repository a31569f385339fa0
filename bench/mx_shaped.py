"""Direct-to-MX under traffic shaping: several sender processes, one Redis, the shaping
file's limits measured at the destinations.

    python bench/mx.py --shaped [--seconds 20] [--senders 2] [--redis-url URL]

20 destination domains on 4 provider groups (5 each, their MX names under the groups'
suffixes, served by the tests' local DNS server), one aiosmtpd MX host per group that
stamps each message's arrival and counts the sessions open at once. ``--senders`` processes
(each its own ``MxProvider``, sharing the shaping state in Redis) are given the messages
of all groups at once, as many as the limits allow in ``--seconds``, and send them with a
few hundred in flight; a deferred send is tried again when it is due, as the sweeper
would. Per group: the measured rate (messages after the first over the time to the last)
against its limit, and the most sessions open at once against its connections. The last
line printed is one JSON object; it exits non-zero unless every group is within 5% of its
limit and the total reaches 90% of their sum.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from postgate.core.outcome import Outcome
from postgate.providers.mx import MxProvider
from postgate.settings import Settings
from tests.dns_server import LocalDns
from tests.providers.shaping_servers import CountingMx

GROUPS = {  # name: (MX suffix, per minute, connections)
    "google": ("google.com", 3000, 8),
    "microsoft": ("protection.outlook.com", 2400, 6),
    "yahoo": ("yahoodns.net", 1800, 4),
    "freemail": ("freemail.hu", 1200, 3),
}
IN_FLIGHT = 300  # sends in flight per sender process
MESSAGE = b"From: news@shop.example\r\nTo: reader\r\nSubject: autumn\r\n\r\n" + b"Hi.\r\n" * 150


def shaping_toml() -> str:
    lines = ["max_wait_s = 2.0", "lease_s = 10.0", ""]
    for name, (suffix, per_minute, connections) in GROUPS.items():
        lines += [
            f"[groups.{name}]",
            f'mx = ["*.{suffix}"]',
            f"connections = {connections}",
            "messages_per_connection = 1000",
            f"per_minute = {per_minute}",
            "",
        ]
    return "\n".join([*lines, "[groups.default]", ""])


async def child(start: float, addresses: list[str]) -> dict[str, int]:
    """One sender process: every address, IN_FLIGHT at a time, deferrals retried."""
    provider = MxProvider(Settings())
    await provider.start()
    slots = asyncio.Semaphore(IN_FLIGHT)
    await asyncio.sleep(max(0.0, start - time.time()))

    deferrals: Counter[str] = Counter()

    async def one(address: str) -> str:
        for _ in range(50):
            async with slots:
                result = await provider.send("bounce@bounces.example", address, MESSAGE)
            if result.outcome is not Outcome.DEFERRED or result.retry_after is None:
                return result.outcome.value
            deferrals[f"deferred ({result.detail[:120]})"] += 1
            await asyncio.sleep(result.retry_after)
        return "gave_up"

    try:
        outcomes = await asyncio.gather(*(one(a) for a in addresses))
    finally:
        await provider.close()
    return dict(Counter(outcomes) + deferrals)


def run(seconds: float, senders: int, redis_url: str) -> int:
    dns = LocalDns()
    sinks = {name: CountingMx() for name in GROUPS}
    ports: dict[str, int] = {}
    domains: dict[str, list[str]] = {}
    for name, (suffix, _, _) in GROUPS.items():
        domains[name] = [f"{name}{i}.example" for i in range(5)]
        for i, domain in enumerate(domains[name]):
            host = f"mx{i}.{suffix}"
            dns.publish_mx(domain, 10, host)
            dns.publish_a(host)
            ports[host] = sinks[name].port
    addresses = [
        f"r{n}@{domains[name][n % 5]}"
        for name, (_, per_minute, _) in GROUPS.items()
        for n in range(int(per_minute / 60 * seconds))
    ]
    with tempfile.TemporaryDirectory() as tmp:
        shaping = Path(tmp) / "shaping.toml"
        shaping.write_text(shaping_toml(), encoding="utf-8")
        env = os.environ | {
            "REDIS_URL": redis_url,
            "QUEUE_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "SHAPING_FILE": str(shaping),
            "DNS_RESOLVER": dns.address,
            "MX_PORT_OVERRIDES": json.dumps(ports),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        start = time.time() + 3
        procs = []
        for k in range(senders):
            part = Path(tmp) / f"addresses-{k}.json"
            part.write_text(json.dumps(addresses[k::senders]), encoding="utf-8")
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--child", str(start), str(part)],
                    env=env,
                    stdout=subprocess.PIPE,
                )
            )
        outcomes: Counter[str] = Counter()
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds * 10 + 60)
            if proc.returncode:
                raise SystemExit(f"a sender exited with {proc.returncode}")
            outcomes.update(json.loads(out))
    report: dict[str, object] = {"outcomes": dict(outcomes), "groups": {}}
    total_rate = limit_sum = 0.0
    ok = True
    for name, (_, per_minute, connections) in GROUPS.items():
        stamps = sorted(sinks[name].handler.arrived)
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        limit = per_minute / 60
        within = abs(rate - limit) <= 0.05 * limit
        most = sinks[name].sessions.most
        ok = ok and within and most <= connections
        total_rate += rate
        limit_sum += limit
        report["groups"][name] = {  # type: ignore[index]
            "per_s": round(rate, 2),
            "limit_per_s": limit,
            "messages": len(stamps),
            "sessions_most": most,
            "connections": connections,
        }
        print(
            f"{name:10} {rate:7.2f} msg/s of {limit:5.1f} ({rate / limit:6.1%}), "
            f"{len(stamps)} messages, at most {most} of {connections} connections",
            file=sys.stderr,
        )
    ok = ok and total_rate >= 0.9 * limit_sum
    print(
        f"total {total_rate:.1f} msg/s of {limit_sum:.1f} ({total_rate / limit_sum:.1%})",
        file=sys.stderr,
    )
    report |= {"total_per_s": round(total_rate, 2), "limit_sum_per_s": limit_sum, "ok": ok}
    for sink in sinks.values():
        sink.stop()
    dns.close()
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    _, _, when, path = sys.argv
    result = asyncio.run(child(float(when), json.loads(Path(path).read_text(encoding="utf-8"))))
    print(json.dumps(result))
