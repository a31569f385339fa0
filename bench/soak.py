"""Soak: steady campaign traffic through real worker processes while things break.

    python bench/soak.py --minutes N [--tenants 3] [--contacts 600] [--rate 100] [--seed 1]
        [--sqlite]

Everything runs on 127.0.0.1 and is thrown away afterwards: its own Redis (broker and
pub/sub, no persistence, so a restart empties the queues), its own PostgreSQL cluster
(``initdb`` in a temporary directory; ``--sqlite`` or missing binaries: SQLite), an
aiosmtpd sink, the api (for the operator's kill switch) and worker processes: planner +
sweeper, the feedback listener and two senders.

While tenants publish campaigns at about ``--rate`` mails per second, the soak
  - kills a random sender with SIGKILL every 20 s and starts a new one,
  - restarts Redis every 60 s (offset 25 s) and PostgreSQL every 60 s (offset 50 s),
  - mails an ARF complaint about a delivered message to the feedback listener every 3 s,
  - flips the kill switch of a tenant that is sending every 60 s (offset 12 s): the
    operator's POST, then 3 s later the start of the tenant's last SMTP transaction tells
    the propagation delay, then the block is cleared and held rows resume,
  - samples the queue lag (age of the oldest queued row) every second.
A campaign message lost with Redis is published again by the producer (same campaign id:
idempotent), as a CRM would. Then traffic stops, the pipeline drains, and it reports.

Lost = a row that never reached a terminal state, a row marked sent that the sink never got,
or a campaign that never arrived. Duplicates = extra copies the sink got of one delivery
(they carry the same Message-ID). The exit status is 1 on any loss. The last line printed is
one JSON object with ``sent``, ``lost``, ``duplicates``, ``max_kill_switch_delay_s`` and
``max_queue_lag_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import signal
import smtplib
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import func, select

from postgate import tables as t
from postgate.auth import create_key
from postgate.clock import aware, utcnow
from postgate.db import migrate
from postgate.providers.sink import SinkHandler, SmtpSink
from postgate.settings import Settings, new_secret
from postgate.workers.context import Context
from tests.local_services import LocalPostgres, LocalRedis, free_port
from tests.support import World, serve_api
from tests.workers.fleet import BATCH, PREFETCH, Fleet
from tests.workers.switching import bulk_audience

# our signed Message-ID <delivery.campaign.tenant.mac@domain> (postgate.delivery.tokens)
OUR_ID = re.compile(rb"^Message-ID: (<(\d+)\.(\d+)\.\d+\.[a-z2-7]+@([^>]+)>)",
                    re.MULTILINE | re.IGNORECASE)
BOUNCE_DOMAIN = "bounces.soak.test"
TERMINAL = ("sent", "failed", "blocked", "cancelled")


class SoakHandler(SinkHandler):
    """Keeps only what the report needs: copies per delivery, last transaction per domain."""

    def __init__(self, latency_s: float = 0.0) -> None:
        super().__init__()
        self.latency_s = latency_s  # a real server takes a moment to queue a mail
        self.copies: Counter[int] = Counter()
        # delivery, campaign, rcpt, domain, Message-ID
        self.delivered: list[tuple[int, int, str, str, str]] = []
        self.last_start: dict[str, float] = {}

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            self.last_start[address.rsplit("@", 1)[-1].lower()] = time.time()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        data = envelope.original_content or envelope.content
        if m := OUR_ID.search(data):
            delivery, campaign = int(m.group(2)), int(m.group(3))
            with self.lock:
                self.copies[delivery] += 1
                if self.copies[delivery] == 1:
                    self.delivered.append((delivery, campaign, envelope.rcpt_tos[0],
                                           m.group(4).decode(), m.group(1).decode()))
        return "250 2.0.0 OK queued"


def arf(delivery: int, campaign: int, rcpt: str, domain: str, message_id: str) -> bytes:
    """A complaint quoting the mail as the sink received it (its signed Message-ID)."""
    return (
        f"From: fbl@isp.example\r\nTo: fbl@{BOUNCE_DOMAIN}\r\nSubject: complaint\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;"
        ' boundary="ARF"\r\n\r\n--ARF\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n'
        "--ARF\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        f"User-Agent: soak\r\nVersion: 1\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\r\n"
        "--ARF\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: news@{domain}\r\nTo: <{rcpt}>\r\nSubject: hi\r\n"
        f"Message-ID: {message_id}\r\n\r\nHi!\r\n--ARF--\r\n"
    ).encode()


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.rng = random.Random(args.seed)
        self.redis = LocalRedis().start()
        self.postgres: LocalPostgres | None = None
        if not args.sqlite and (pg := LocalPostgres()).available:
            self.postgres = pg.start()
            database_url = pg.create_database("soak")
        else:
            database_url = f"sqlite:///{work / 'soak.db'}"
        migrate(database_url)
        self.handler = SoakHandler(args.smtp_latency_ms / 1000)
        self.sink = SmtpSink(handler=self.handler).start()
        self.feedback_port = free_port()
        self.settings = Settings(
            database_url=database_url, broker_url=self.redis.url(0),
            redis_url=self.redis.url(1), queue_prefix=f"soak{uuid.uuid4().hex[:8]}",
            smtp_port=self.sink.port, smtp_timeout_s=10, bounce_domain=BOUNCE_DOMAIN,
            secret_key=new_secret(), use_uvloop=False)
        self.ctx = Context.from_settings(self.settings)
        self.fleet = Fleet(self.settings, work)
        self.published: dict[str, tuple[World, float]] = {}  # campaign id -> tenant, last try
        self.flips: list[float] = []
        self.lags: list[float] = []
        self.events: Counter[str] = Counter()
        self.complaints: set[int] = set()

    # --- set-up -------------------------------------------------------------------------
    def seed(self) -> list[World]:
        worlds = []
        for _ in range(self.args.tenants):
            world = World.create(self.ctx, self.sink)
            bulk_audience(world, self.args.contacts)
            worlds.append(world)
        return worlds

    def start_workers(self) -> None:
        extra = {"BOUNCE_DOMAIN": BOUNCE_DOMAIN, "FEEDBACK_PORT": str(self.feedback_port),
                 "BREAKER_MIN_VOLUME": "1000000000", "REQUEUE_QUEUED_AFTER_S": "30",
                 "LEASE_S": str(self.args.lease_s)}
        self.fleet.spawn("planner", "sweeper", **extra)
        self.fleet.spawn("feedback", **extra)
        for _ in range(2):
            self.fleet.spawn("sender", **extra)
        self.extra = extra

    # --- traffic and faults -------------------------------------------------------------
    def publish(self, world: World, campaign_id: str) -> None:
        self.published[campaign_id] = (world, time.monotonic())
        try:
            world.publish(world.message(campaign_id))
        except Exception as exc:
            self.events["publish_failed"] += 1
            print(f"  publish {campaign_id} failed ({type(exc).__name__}); will retry")

    def republish_missing(self) -> None:
        """A producer's duty: a campaign not seen after 10 s is published again."""
        with contextlib.suppress(Exception), self.ctx.engine.connect() as conn:
            known = set(conn.scalars(select(t.campaign.c.external_id)))
            for campaign_id, (world, at) in list(self.published.items()):
                if campaign_id not in known and time.monotonic() - at > 10:
                    self.events["republished"] += 1
                    self.publish(world, campaign_id)

    def kill_sender(self) -> None:
        senders = [p for label, p in self.fleet.procs if label.startswith("sender")
                   and p.poll() is None]
        victim = self.rng.choice(senders)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.fleet.spawn("sender", **self.extra)
        self.events["sender_kills"] += 1
        print(f"  kill -9 sender pid {victim.pid}")

    def restart(self, name: str) -> None:
        started = time.monotonic()
        (self.redis if name == "redis" else self.postgres).restart()  # type: ignore[union-attr]
        self.events[f"{name}_restarts"] += 1
        print(f"  {name} restarted ({time.monotonic() - started:.1f} s down)")

    def complain(self) -> None:
        with self.handler.lock:
            candidates = [d for d in self.handler.delivered[-2000:] if d[0] not in self.complaints]
        if not candidates:
            return
        delivery = self.rng.choice(candidates)
        try:
            with smtplib.SMTP("127.0.0.1", self.feedback_port, timeout=10) as smtp:
                smtp.sendmail("fbl@isp.example", [f"fbl@{BOUNCE_DOMAIN}"], arf(*delivery))
            self.complaints.add(delivery[0])
        except (OSError, smtplib.SMTPException) as exc:  # 451 while the database restarts
            self.events["complaints_refused"] += 1
            print(f"  complaint refused ({exc!r:.80}); an MTA would retry")

    def flip(self, worlds: list[World], http: httpx.Client, key: str, n: int) -> None:
        """Start a campaign for one tenant, flip it off once that is sending, measure."""
        world = self.rng.choice(worlds)
        domain = world.tenant.domain
        asked = time.time()
        self.publish(world, f"soak-{n:05d}")
        deadline = time.monotonic() + 15
        while self.handler.last_start.get(domain, 0) < asked + 0.3 and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        if self.handler.last_start.get(domain, 0) < asked:
            print("  kill switch: the tenant's campaign did not start sending, skipped")
            return
        url = f"/v1/operator/tenants/{world.tenant.slug}/sending-blocks"
        headers = {"Authorization": f"Bearer {key}"}
        flipped = time.time()
        reply = http.post(url, json={"scope": "bulk_email", "reason": "soak"}, headers=headers)
        if reply.status_code != 201:
            print(f"  kill switch request answered {reply.status_code}")
            return
        time.sleep(3)
        delay = max(0.0, self.handler.last_start.get(domain, 0) - flipped)
        self.flips.append(delay)
        cleared = http.post(f"{url}/clear", json={"scope": "bulk_email", "reason": "soak"},
                            headers=headers)
        print(f"  kill switch {world.tenant.slug}: last transaction {delay * 1000:.0f} ms after "
              f"the request; cleared {cleared.status_code}")

    def sample_lag(self) -> None:
        d = t.delivery.c
        with contextlib.suppress(Exception), self.ctx.engine.connect() as conn:
            oldest = conn.scalar(select(func.min(d.updated_at)).where(d.state == "queued"))
            self.lags.append((utcnow() - aware(oldest)).total_seconds() if oldest else 0.0)

    # --- the run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        worlds = self.seed()
        self.start_workers()
        key = create_key(self.ctx.engine, "operator", "soak")
        api = serve_api(self.settings)
        http = httpx.Client(base_url=next(api), timeout=10)
        interval = self.args.contacts / self.args.rate
        duration = self.args.minutes * 60
        started = time.monotonic()
        schedule = {"publish": 0.0, "complain": 3.0, "lag": 1.0, "kill": 7.0, "flip": 12.0,
                    "redis": 25.0, "postgres": 50.0, "republish": 10.0}
        every = {"publish": interval, "complain": 3.0, "lag": 1.0, "kill": 20.0, "flip": 60.0,
                 "redis": 60.0, "postgres": 60.0, "republish": 5.0}
        n = 0
        try:
            while (elapsed := time.monotonic() - started) < duration:
                for name, due in schedule.items():
                    if elapsed < due:
                        continue
                    schedule[name] = due + every[name]
                    if name == "publish":
                        n += 1
                        self.publish(self.rng.choice(worlds), f"soak-{n:05d}")
                    elif name == "complain":
                        self.complain()
                    elif name == "lag":
                        self.sample_lag()
                    elif name == "kill":
                        self.kill_sender()
                    elif name == "flip":
                        n += 1
                        self.flip(worlds, http, key, n)
                    elif name == "redis" or (name == "postgres" and self.postgres):
                        self.restart(name)
                    elif name == "republish":
                        self.republish_missing()
                time.sleep(0.05)
            print(f"traffic stopped after {duration:.0f} s; draining")
            drained = self.drain()
        finally:
            http.close()
            next(api, None)
            codes = self.fleet.stop()
        return self.report(drained, codes)

    def drain(self, limit: float = 300) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.republish_missing()
            self.sample_lag()
            with contextlib.suppress(Exception), self.ctx.engine.connect() as conn:
                c = t.campaign.c
                states: dict[str, int] = dict(conn.execute(
                    select(c.state, func.count()).group_by(c.state)).all())
                if states.get("finished", 0) == len(self.published):
                    return True
            time.sleep(1)
        return False

    def report(self, drained: bool, codes: dict[str, int]) -> dict[str, Any]:
        d, c = t.delivery.c, t.campaign.c
        with self.ctx.engine.connect() as conn:
            states: dict[str, int] = dict(conn.execute(
                select(d.state, func.count()).group_by(d.state)).all())
            sent_ids = set(conn.scalars(select(d.id).where(d.state == "sent")))
            campaigns = int(conn.scalar(select(func.count()).select_from(t.campaign)) or 0)
            complaints = int(conn.scalar(select(func.count()).select_from(t.feedback_event)
                                         .where(t.feedback_event.c.kind == "complaint")) or 0)
            unfinished = int(conn.scalar(select(func.count()).where(c.state != "finished")) or 0)
        with self.handler.lock:
            copies = dict(self.handler.copies)
        open_rows = sum(n for state, n in states.items() if state not in TERMINAL)
        never_arrived = len(sent_ids - set(copies))
        missing_campaigns = len(self.published) - campaigns
        lost = open_rows + never_arrived + missing_campaigns
        duplicates = sum(n - 1 for n in copies.values())
        bound = (self.events["sender_kills"] + 2 * self.events["postgres_restarts"]) * \
            PREFETCH * BATCH
        died = {label: code for label, code in codes.items() if code not in (0, -9)}
        sweeps: Counter[str] = Counter()
        for line in (self.work / f"{self.fleet.procs[0][0]}.log").read_text().splitlines():
            if " sweep: {" in line:
                sweeps.update(json.loads(line.split(" sweep: ", 1)[1].replace("'", '"')))
        print(f"campaigns published {len(self.published)}, arrived {campaigns}, "
              f"unfinished {unfinished}, drained {drained}")
        print(f"deliveries by state: {dict(sorted(states.items()))}")
        print(f"lost: {open_rows} not terminal, {never_arrived} marked sent but never received, "
              f"{missing_campaigns} campaigns missing")
        print(f"duplicates {duplicates} (in-flight bound for these faults: {bound})")
        print(f"faults: {dict(self.events)}; complaints injected {len(self.complaints)}, "
              f"recorded {complaints}")
        print(f"sweeper: {dict(+sweeps)}")
        print(f"kill switch flips {len(self.flips)}: delays "
              f"{[round(x, 3) for x in self.flips]} s")
        print(f"queue lag: max {max(self.lags, default=0):.1f} s over {len(self.lags)} samples")
        if died:
            print(f"workers that exited badly: {died}")
        return {"sent": len(sent_ids), "lost": lost, "duplicates": duplicates,
                "max_kill_switch_delay_s": round(max(self.flips, default=0.0), 3),
                "max_queue_lag_s": round(max(self.lags, default=0.0), 1)}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sink.stop()
        self.ctx.engine.dispose()
        self.redis.close()
        if self.postgres is not None:
            self.postgres.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=600, help="per tenant")
    parser.add_argument("--rate", type=float, default=100.0, help="mails per second offered")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smtp-latency-ms", type=float, default=20.0,
                        help="the sink's delay before answering DATA")
    parser.add_argument("--lease-s", type=float, default=30.0,
                        help="LEASE_S of the senders: how long a claimed row is theirs")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        soak = Soak(args, Path(tmp))
        try:
            result = soak.run()
        finally:
            soak.close()
    print(json.dumps(result))
    return 1 if result["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
