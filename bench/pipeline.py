"""End-to-end throughput of the campaign pipeline, against Postfix's C ``smtp-sink``.

    python bench/pipeline.py --recipients N [--connections 32] [--database-url URL]
        [--broker-url URL [--planner-process [--senders K]]] [--baseline-messages M]
        [--skip-baselines | --only-baselines]

All on 127.0.0.1, into one ``smtp-sink``: (1) Postfix's ``smtp-source`` over reused
sessions; (2) raw aiosmtplib on uvloop, persistent connections sending copies of one
rendered campaign message (in a child process, so the peak RSS below is the pipeline's
alone); (3) the pipeline: a fresh database (SQLite in a temporary directory; for a
PostgreSQL URL a ``bench_<pid>`` database beside the named one, dropped afterwards) with
N consenting contacts, one ``campaign.v1`` message, then planner + sender + sweeper until
the campaign is finished (a SQLite URL is used as given: name a new file). With
``--planner-process`` and a Redis or RabbitMQ broker, planner and sweeper run in a
process of their own, as deployed, and only the sender shares the measured event loop;
``--senders K`` adds K-1 sender processes beside it (one per core, as deployed).
Baselines send min(N, 50000) messages by default. Seeding is timed but not part of any rate. Besides
wall-clock rates, CPU time per message is reported, which shifts less when other work
shares the machine. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, make_url, select, text

from postgate.core import dkim_signing
from postgate.core.clock import aware, utcnow
from postgate.core.dkim_signing import DkimKey
from postgate.core.rendering import CampaignContent, CompiledCampaign, RecipientData
from postgate.demo.run import campaign_message
from postgate.demo.seed import TOPIC
from postgate.providers.smtp import SmtpSettings
from postgate.runtime.context import Context
from postgate.settings import Settings, new_secret
from postgate.store import tables as t
from postgate.store.db import engine_for, migrate, normalise_url
from postgate.tenants import domains as domain_store
from postgate.workers.main import install_loop, run_workers

SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
CHUNK = 10_000
CAMPAIGN = "bench"


@contextmanager
def smtp_sink(workdir: Path) -> Iterator[tuple[int, Path]]:
    """A running ``smtp-sink``; yields its port and the file its ``-c`` counters go to."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port, counters = int(s.getsockname()[1]), workdir / "sink.out"
    with counters.open("wb") as out:
        proc = subprocess.Popen(
            [SINK, "-c", "-u", "root", f"127.0.0.1:{port}", "1000"],
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port, counters
    finally:
        proc.terminate()
        proc.wait(5)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class SigningProcesses:
    """The CPU seconds and peak RSS of the sender's signing processes (DKIM_POOL=process),
    which the bench's own rusage does not count: their CPU from RUSAGE_CHILDREN (the sender
    reaps them when it stops, within the block; the bench's other children are reaped
    after it), their peak RSS read from /proc while they live."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.rss_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        from tests.support import signing_processes

        while not self._stop.wait(0.5):
            for pid in signing_processes():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:  # it has just ended
                    continue
                peak = re.search(r"VmHWM:\s+(\d+)", status)
                self.rss_kb[pid] = int(peak.group(1)) if peak else 0

    @staticmethod
    def _children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> SigningProcesses:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support
        self.cpu_s = -self._children_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_s += self._children_cpu()

    @property
    def rss_mb(self) -> float:
        return sum(self.rss_kb.values()) / 1024


def sink_count(counters: Path) -> int:
    """Messages the sink has received so far (its last ``mesg=`` counter)."""
    with counters.open("rb") as f:
        f.seek(max(0, counters.stat().st_size - 200))
        found = re.findall(rb"mesg=(\d+)", f.read())
    return int(found[-1]) if found else 0


def sample(settings: Settings) -> tuple[str, str, bytes]:
    """Envelope and bytes of one message as the sender renders it for this campaign."""
    body: Any = campaign_message("acme", 1)["content"]
    compiled = CompiledCampaign(
        CampaignContent(
            1,
            "acme",
            "acme.example",
            "promotional",
            body["subject"],
            body["text"],
            body["html"],
            "news@acme.example",
            "Acme Kft.",
        ),
        settings.secret_key,
        settings.public_url,
        settings.bounce_domain,
    )
    rcpt = RecipientData(100_000, "user100000@example.com", "Contact 100000", {})
    return compiled.envelope_from(1), rcpt.address, compiled.render(rcpt, formatdate())


def smtp_source_rate(port: int, messages: int, connections: int, size: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            SOURCE,
            "-d",
            "-s",
            str(connections),
            "-m",
            str(messages),
            "-l",
            str(size),
            "-f",
            "news@acme.example",
            "-t",
            "user@example.com",
            f"127.0.0.1:{port}",
        ],
        check=True,
    )
    return messages / (time.perf_counter() - started)


async def _aiosmtplib_run(port: int, messages: int, connections: int) -> dict[str, float]:
    import aiosmtplib

    sender, rcpt, data = sample(Settings())
    clients = [
        aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.invalid")
        for _ in range(connections)
    ]
    await asyncio.gather(*(c.connect() for c in clients))

    async def push(client: aiosmtplib.SMTP, count: int) -> None:
        for _ in range(count):
            await client.sendmail(sender, [rcpt], data)

    shares = [messages // connections + (i < messages % connections) for i in range(connections)]
    started, cpu = time.perf_counter(), cpu_s()
    await asyncio.gather(*(push(c, n) for c, n in zip(clients, shares, strict=True)))
    elapsed, cpu = time.perf_counter() - started, cpu_s() - cpu
    await asyncio.gather(*(c.quit() for c in clients))
    return {"aiosmtplib_per_s": messages / elapsed, "aiosmtplib_cpu_us": cpu / messages * 1e6}


def aiosmtplib_rate(port: int, messages: int, connections: int) -> dict[str, float]:
    """Run the raw aiosmtplib baseline in a child process (this script, re-invoked)."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--_aiosmtplib-baseline",
            str(port),
            "--recipients",
            str(messages),
            "--connections",
            str(connections),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.splitlines()[-1]))


@contextmanager
def fresh_database(url: str | None, workdir: Path, label: str = "") -> Iterator[str]:
    if not url or url.startswith("sqlite"):
        if url and label:  # a second run beside the named file
            stem, dot, ext = url.rpartition(".")
            url = f"{stem}-{label}.{ext}" if dot else f"{url}-{label}"
        yield url or f"sqlite:///{workdir / f'bench{label}.db'}"
        return
    base = make_url(normalise_url(url))
    name = f"bench_{os.getpid()}{'_' + label if label else ''}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    fresh = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield fresh
    finally:
        engine_for(fresh).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(url: str, recipients: int) -> tuple[str, int]:
    """One tenant, one list, ``recipients`` contacts with a confirmed signup-form consent."""
    engine, now = engine_for(url), utcnow()
    given = now - timedelta(days=30)
    with engine.begin() as conn:
        tenant_id = conn.execute(
            insert(t.tenant)
            .values(
                slug="acme",
                name="Acme Kft.",
                domain="acme.example",
                status="active",
                status_reason="",
                created_at=now,
            )
            .returning(t.tenant.c.id)
        ).scalar_one()
        list_id = conn.execute(
            insert(t.mailing_list)
            .values(tenant_id=tenant_id, name="Everyone", created_at=now)
            .returning(t.mailing_list.c.id)
        ).scalar_one()
    for start in range(1, recipients + 1, CHUNK):
        ids = range(start, min(start + CHUNK, recipients + 1))
        with engine.begin() as conn:
            conn.execute(
                insert(t.contact),
                [
                    {
                        "id": i,
                        "tenant_id": tenant_id,
                        "email": f"user{i}@example.com",
                        "name": f"Contact {i}",
                        "attributes": {},
                        "created_at": now,
                    }
                    for i in ids
                ],
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
                        "channel": "email",
                        "topic": TOPIC,
                        "source": "signup_form",
                        "status": "confirmed",
                        "consented_at": given,
                        "confirmed_at": given,
                        "created_at": now,
                    }
                    for i in ids
                ],
            )
    return "acme", list_id


async def run_until_finished(
    ctx: Context, timeout_s: float, workers: tuple[str, ...] = ("planner", "sender", "sweeper")
) -> bool:
    stop, finished = asyncio.Event(), False
    c = t.campaign.c

    def state() -> str | None:
        with ctx.engine.connect() as conn:
            return conn.scalar(select(c.state).where(c.external_id == CAMPAIGN))

    async def watch() -> None:
        nonlocal finished
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not finished:
            await asyncio.sleep(0.5)
            finished = await asyncio.to_thread(state) == "finished"
        stop.set()

    await run_workers(ctx, list(workers), stop, extra=[watch()])
    return finished


def worker_process(settings: Settings, *workers: str) -> subprocess.Popen[bytes]:
    """Workers in a process of their own, as in production (planner and sweeper; or one
    more sender)."""
    env = os.environ | {
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": settings.broker_url,
        "QUEUE_PREFIX": settings.queue_prefix,
        "CANARY_MIN_AUDIENCE": "0",
        "SMTP_PORT": str(settings.provider(SmtpSettings).port),
        "SMTP_CONNECTIONS": str(settings.provider(SmtpSettings).connections),
        "SECRET_KEY": settings.secret_key,
        "DNS_RESOLVER": settings.dns_resolver,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "postgate", "worker", *workers],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def sign_limit(seconds: float = 3.0) -> float:
    """RSA-2048 DKIM signatures per second with ``cryptography`` on every core (threads:
    OpenSSL releases the GIL), over a realistic canonical header block."""
    key = DkimKey(
        "acme.example", "pg1", "rsa-sha256", dkim_signing.generate("rsa-sha256")[0].encode()
    )
    signer, message = dkim_signing.Signer(key), sample(Settings())[2]
    threads = os.cpu_count() or 1

    def work(deadline: float) -> int:
        done = 0
        while time.perf_counter() < deadline:
            signer.signature(message)
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(work, [started + seconds] * threads))
    return total / (time.perf_counter() - started)


def sign_with(url: str, algorithm: str, dns: Any) -> None:
    """The tenant's domain vouched for as provisioning does, with a fresh DKIM key, and its
    records published in the local DNS server: its preflight passes, its mail is signed."""
    engine = engine_for(url)
    settings = Settings(dkim_algorithm=algorithm, warmup_enabled=False)
    with engine.begin() as conn:
        row = domain_store.vouch(conn, settings, _tenant_id(engine), "acme.example", utcnow())
    for record in domain_store.describe(row)["dns"][1:]:
        dns.publish(record["name"], record["value"])
    dns.publish("acme.example", "v=spf1 -all")
    dns.publish("_dmarc.acme.example", "v=DMARC1; p=none")


@contextmanager
def local_dns() -> Iterator[Any]:
    """The tests' DNS server on 127.0.0.1, answering the signing domain's preflight."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.dns_server import LocalDns

    server = LocalDns()
    try:
        yield server
    finally:
        server.close()


def _tenant_id(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(t.tenant.c.id).where(t.tenant.c.slug == "acme")))


def pipeline(
    args: argparse.Namespace, port: int, workdir: Path, dkim: str | None = None
) -> dict[str, Any]:
    with (
        fresh_database(args.database_url, workdir, "signed" if dkim else "") as url,
        local_dns() as dns,
    ):
        settings = Settings(
            database_url=url,
            dns_resolver=dns.address,
            broker_url=args.broker_url,
            use_uvloop=True,
            queue_prefix=f"bench{os.getpid()}",
            providers={"smtp": {"port": port, "connections": args.connections}},
            secret_key=new_secret(),
            canary_min_audience=0,
        )  # measure the whole send, no canary pause
        started = time.perf_counter()
        migrate(url)
        tenant, list_id = seed(url, args.recipients)
        if dkim:
            sign_with(url, dkim, dns)
        seed_s = time.perf_counter() - started
        ctx = Context.from_settings(settings)
        broker = ctx.broker()
        install_loop(settings)
        helper = worker_process(settings, "planner", "sweeper") if args.planner_process else None
        senders = [worker_process(settings, "sender") for _ in range(args.senders - 1)]
        if senders:
            time.sleep(3)  # the extra senders import and connect before the campaign comes
        workers = ("sender",) if helper else ("planner", "sender", "sweeper")
        published, cpu = utcnow(), cpu_s()
        broker.publish("campaigns", campaign_message(tenant, list_id) | {"campaign_id": CAMPAIGN})
        try:
            with SigningProcesses() as signing:
                finished = asyncio.run(run_until_finished(ctx, args.timeout, workers))
        finally:
            for proc in [p for p in (helper, *senders) if p is not None]:
                proc.terminate()
                proc.wait(30)
        cpu = cpu_s() - cpu + signing.cpu_s
        broker.close()
        c, d = t.campaign.c, t.delivery.c
        with ctx.engine.connect() as conn:
            planned_at, finished_at = conn.execute(
                select(c.planned_at, c.finished_at).where(c.external_id == CAMPAIGN)
            ).one()
            states = {
                str(s): int(n)
                for s, n in conn.execute(select(d.state, func.count()).group_by(d.state))
            }
            last_sent = conn.scalar(select(func.max(d.sent_at)))
            signed = bool(conn.scalar(select(func.count()).select_from(t.sender_domain)))
            after_plan = conn.scalar(select(func.count()).where(d.sent_at > planned_at))

    def since(when: datetime | None) -> float:
        return (aware(when) - published).total_seconds() if when else float("nan")

    sent, planned_s = states.get("sent", 0), since(planned_at)
    return {
        "emails_per_s": sent / since(finished_at),
        "planner_rows_per_s": sum(states.values()) / planned_s,
        "sender_after_planning_per_s": (after_plan or 0) / (since(last_sent) - planned_s),
        "cpu_us_per_email": cpu / max(sent, 1) * 1e6,
        "signing_cpu_us_per_email": signing.cpu_s / max(sent, 1) * 1e6,
        # the measured process and its signing processes, each at its own peak
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + signing.rss_mb,
        "signing_rss_mb": signing.rss_mb,
        "sent": sent,
        "delivery_states": states,
        "finished": finished,
        "phases_s": [round(planned_s, 2), round(since(finished_at), 2)],
        "seed_s": seed_s,
        "signed": signed,
    }


TABLE = [  # label, key, format
    ("smtp-source (C)", "smtp_source_per_s", "{:,.0f} msg/s"),
    ("raw aiosmtplib + uvloop", "aiosmtplib_per_s", "{:,.0f} msg/s"),
    ("  CPU per message", "aiosmtplib_cpu_us", "{:.0f} µs"),
    ("seeding (not measured)", "seed_s", "{:.1f} s"),
    ("planner", "planner_rows_per_s", "{:,.0f} rows/s"),
    ("pipeline end to end", "emails_per_s", "{:,.0f} emails/s"),
    ("publish -> planned, finished", "phases_s", "{}"),
    ("  sender after planning", "sender_after_planning_per_s", "{:,.0f} emails/s"),
    ("  CPU per email (all threads)", "cpu_us_per_email", "{:.0f} µs"),
    ("pipeline / aiosmtplib", "pipeline_vs_aiosmtplib", "{:.0%}"),
    ("RSA-2048 signing limit (all cores)", "sign_limit_per_s", "{:,.0f} signatures/s"),
    ("signed end to end", "signed_emails_per_s", "{:,.0f} emails/s"),
    ("  CPU per signed email", "signed_cpu_us_per_email", "{:.0f} µs"),
    ("    of it in signing processes", "signed_signing_cpu_us_per_email", "{:.0f} µs"),
    ("  signed / signing limit", "signed_ratio", "{:.0%}"),
    ("  signed rows by state", "signed_delivery_states", "{}"),
    ("  same, by CPU per message", "pipeline_vs_aiosmtplib_cpu", "{:.0%}"),
    ("delivery rows by state", "delivery_states", "{}"),
    ("messages the sink received", "sink_received", "{:,}"),
    ("peak RSS (with signing processes)", "peak_rss_mb", "{:.1f} MB"),
    ("  of it signing processes", "signed_signing_rss_mb", "{:.1f} MB"),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipients", type=int, default=20_000)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--database-url", default=None)
    p.add_argument("--broker-url", default="memory://")
    p.add_argument(
        "--planner-process",
        action="store_true",
        help="planner and sweeper in their own process (needs a redis/amqp broker); "
        "CPU and RSS are then the sender's alone",
    )
    p.add_argument(
        "--senders",
        type=int,
        default=1,
        help="sender processes (with --planner-process): the measured one and N-1 more; "
        "CPU and RSS stay the measured sender's",
    )
    p.add_argument("--baseline-messages", type=int, default=None)
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the campaign")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--skip-baselines", action="store_true")
    mode.add_argument("--only-baselines", action="store_true")
    mode.add_argument("--_aiosmtplib-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument(
        "--dkim",
        choices=[*dkim_signing.ALGORITHMS, "none"],
        default="rsa-sha256",
        help="the signed run's algorithm, as production signs (default rsa-sha256); "
        "none: unsigned only",
    )
    p.add_argument("--signed-only", action="store_true", help="skip the unsigned run")
    args = p.parse_args()
    if args.senders > 1 and not args.planner_process:
        p.error("--senders needs --planner-process and a redis or amqp --broker-url")
    n, conns = args.recipients, args.connections
    if args._aiosmtplib_baseline:
        install_loop(Settings(use_uvloop=True))
        print(json.dumps(asyncio.run(_aiosmtplib_run(args._aiosmtplib_baseline, n, conns))))
        return 0

    base_n = args.baseline_messages or min(n, 50_000)
    size = len(sample(Settings())[2])
    database = make_url(normalise_url(args.database_url or "sqlite://")).get_backend_name()
    result: dict[str, Any] = {
        "recipients": n,
        "connections": conns,
        "message_bytes": size,
        "baseline_messages": base_n,
        "database": database,
        "broker": args.broker_url,
        "senders": args.senders,
    }
    with (
        tempfile.TemporaryDirectory(prefix="postgate-bench-") as tmp,
        smtp_sink(Path(tmp)) as (port, counters),
    ):
        if not args.skip_baselines:
            result["smtp_source_per_s"] = smtp_source_rate(port, base_n, conns, size)
            result |= aiosmtplib_rate(port, base_n, conns)
        if not args.only_baselines and args.dkim != "none":
            result["sign_limit_per_s"] = sign_limit()
        if not args.only_baselines and not args.signed_only:
            before = sink_count(counters)
            result |= pipeline(args, port, Path(tmp))
            result["sink_received"] = sink_count(counters) - before
        if not args.only_baselines and args.dkim != "none":
            before = sink_count(counters)
            signed = pipeline(args, port, Path(tmp), args.dkim)
            result |= {
                f"signed_{k}": v
                for k, v in signed.items()
                if k
                in (
                    "emails_per_s",
                    "cpu_us_per_email",
                    "signing_cpu_us_per_email",
                    "signing_rss_mb",
                    "delivery_states",
                    "sent",
                    "finished",
                    "phases_s",
                    "signed",
                )
            }
            result["signed_sink_received"] = sink_count(counters) - before
            result["signed_ratio"] = result["signed_emails_per_s"] / result["sign_limit_per_s"]
            result["peak_rss_mb"] = signed["peak_rss_mb"]
        if "emails_per_s" in result and "aiosmtplib_per_s" in result:
            result["pipeline_vs_aiosmtplib"] = result["emails_per_s"] / result["aiosmtplib_per_s"]
            result["pipeline_vs_aiosmtplib_cpu"] = (
                result["aiosmtplib_cpu_us"] / result["cpu_us_per_email"]
            )
    print(
        f"postgate pipeline bench: {n:,} recipients, {size} B messages, {conns} connections, "
        f"{database} + {args.broker_url}"
    )
    for label, key, fmt in TABLE:
        if key in result:
            print(f"  {label:<30} {fmt.format(result[key])}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
    ok = all(
        result.get(f"{p}finished", True) and result.get(f"{p}sent", n) == n for p in ("", "signed_")
    )
    return 0 if ok and result.get("signed_signed", True) else 1


if __name__ == "__main__":
    sys.exit(main())
