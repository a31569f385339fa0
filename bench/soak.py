"""Soak: steady campaign traffic through real worker processes while every kind of them is
killed, and the servers under them restarted.

    python bench/soak.py --minutes N [--broker redis|rabbitmq] [--kill-every 6]
        [--tenants 3] [--contacts 600] [--rate 100] [--seed 1] [--sqlite]
        [--lease-s 5] [--plan-lease-s 5] [--visibility-s 10] [--page-size 100] [--keep DIR]

Everything runs on 127.0.0.1 and is thrown away afterwards: its own Redis (pub/sub, and the
broker with ``--broker redis``; no persistence, so a restart empties the queues), with
``--broker rabbitmq`` its own RabbitMQ node as the broker (own node name, ports, database
directory, cookie, no plugins; durable queues survive its restart), its own PostgreSQL
cluster (``initdb`` in a temporary directory; ``--sqlite`` or missing binaries: SQLite), an
aiosmtpd sink, the api (for the operator's kill switch) and one process per worker: planner
(``PAGE_SIZE`` ``--page-size``, so a campaign takes several pages), sweeper, feedback
listener and two senders. The workers get short leases (``LEASE_S``, ``PLAN_LEASE_S``,
``BROKER_VISIBILITY_TIMEOUT_S``) so that recovery is measurable in seconds.

While tenants publish campaigns at about ``--rate`` mails per second, the soak
  - every ``--kill-every`` seconds kills one worker with SIGKILL and starts a new one, in
    turn sender, planner, sweeper, feedback listener; each kill is aimed at work in
    progress: a sender once rows are ``sending``, the planner once a campaign it was
    just handed is ``planning``, the feedback listener once a complaint is on the wire;
    a sweeper kill makes a small campaign that waits scheduled an hour ahead due at once
    (the soak moves its time, as an operator rescheduling it), which only a sweeper can
    start,
  - restarts the broker every ``--restart-every`` (60) s (offset 25 s), PostgreSQL (offset
    50 s) and, with RabbitMQ as the broker, the pub/sub Redis (offset 40 s) as often,
  - mails an ARF complaint about a delivered message to the feedback listener every 3 s,
    retrying on refused connections, dropped sessions and 4xx until the listener takes it,
    as a sending MTA would,
  - flips the kill switch of a tenant that is sending every 60 s (offset 12 s): the
    operator's POST, then 3 s later the start of the tenant's last SMTP transaction tells
    the propagation delay, then the block is cleared and held rows resume,
  - samples the queue lag (age of the oldest queued row) every second.
A campaign message is published again by the producer (same campaign id: idempotent), as a
CRM would, only when its publish failed or the broker was restarted after it (Redis keeps
nothing over a restart); a message a killed planner took must come back from the broker.
Then traffic stops, the pipeline drains, and it reports.

Recovery, per kill: a sender's, once no row that was ``sending`` at the kill still holds
the lease it had then (the dead sender's rows were taken back) and the sink got mail again;
a planner's, once the campaigns it was planning left ``planning`` (for a kill that caught
it idle, once a campaign published after the kill was accepted); a sweeper's, once a sweep
result is visible (the scheduled probe started, or a campaign marked finished); the
feedback listener's, once it accepts a mail again; a server restart's, once the sink gets
mail after the server is back. A duplicate (an extra copy the sink got of one delivery;
copies carry the same Message-ID) is put down to a PostgreSQL restart when its first copy
went out while the database was down (the sender could not record it), else to the first
sender kill after that copy whose ``sending`` rows held the delivery.

Lost = a row marked sent that the sink never got, a campaign that never arrived, a list
member a campaign has no row for, or a complaint the listener accepted that was not
recorded. Stuck = a row not in a terminal state after the drain (and campaigns not
finished). The exit status is 1 on any loss or stuck row. It prints a table per kind of
fault (kills, kills that caught work, median and max recovery, duplicates), and last one
JSON object with ``sent``, ``lost``, ``duplicates``, ``max_kill_switch_delay_s``,
``max_queue_lag_s``, ``stuck``, ``kills``, ``median_recovery_s``, ``max_recovery_s``,
``max_duplicates_per_sender_kill`` and more. ``--keep DIR`` keeps the workers' logs and
every fault and duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import queue
import random
import re
import shutil
import signal
import smtplib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import Connection, func, select, update

from postgate.core.clock import aware, utcnow
from postgate.http.auth import create_key
from postgate.runtime.context import Context
from postgate.settings import Settings, new_secret
from postgate.sinks.smtp import SinkHandler, SmtpSink
from postgate.store import tables as t
from postgate.store.db import migrate
from tests.local_services import LocalPostgres, LocalRabbit, LocalRedis, free_port
from tests.support import World, serve_api
from tests.workers.fleet import BATCH, PREFETCH, Fleet
from tests.workers.switching import bulk_audience

# our signed Message-ID <delivery.campaign.tenant.mac@domain> (postgate.core.tokens)
OUR_ID = re.compile(
    rb"^Message-ID: (<(\d+)\.(\d+)\.\d+\.[a-z2-7]+@([^>]+)>)", re.MULTILINE | re.IGNORECASE
)
BOUNCE_DOMAIN = "bounces.soak.test"
TERMINAL = ("sent", "failed", "blocked", "cancelled")
KINDS = ("sender", "planner", "sweeper", "feedback")
SERVERS = ("redis", "rabbitmq", "postgres")
SENDERS = 2
PROBE_CONTACTS = 10  # the sweeper probes' tenant: small campaigns, scheduled
MTA_GIVE_UP_S = 300.0  # a sending MTA keeps a mail for days; the soak for this long
d, c = t.delivery.c, t.campaign.c


class SoakHandler(SinkHandler):
    """Keeps only what the report needs: copies per delivery (and when the extra ones came),
    last transaction per domain, when the last mail came."""

    def __init__(self, latency_s: float = 0.0) -> None:
        super().__init__()
        self.latency_s = latency_s  # a real server takes a moment to queue a mail
        self.copies: Counter[int] = Counter()
        self.first_at: dict[int, float] = {}  # delivery -> arrival of its first copy
        self.extra_at: dict[int, list[float]] = {}  # delivery -> arrival of each extra copy
        # delivery, campaign, rcpt, domain, Message-ID
        self.delivered: list[tuple[int, int, str, str, str]] = []
        self.last_start: dict[str, float] = {}
        self.last_mail_at = 0.0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
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
                self.last_mail_at = time.time()
                if self.copies[delivery] == 1:
                    self.first_at[delivery] = self.last_mail_at
                    self.delivered.append(
                        (
                            delivery,
                            campaign,
                            envelope.rcpt_tos[0],
                            m.group(4).decode(),
                            m.group(1).decode(),
                        )
                    )
                else:
                    self.extra_at.setdefault(delivery, []).append(self.last_mail_at)
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


def permanent(exc: Exception) -> bool:
    """A 5xx: an MTA would bounce the mail rather than try again."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600


@dataclass
class Fault:
    """One kill -9 of a worker, or one restart of a server, and how it was recovered from."""

    kind: str  # a worker kind (KINDS) or a server (SERVERS)
    at: float  # time.time() of the kill, or of the start of the restart
    at_utc: datetime
    what: str  # what it hit, for the log
    hit: bool = True  # the kill caught work in progress
    rows: dict[int, Any] = field(default_factory=dict)  # sender: rows sending -> their lease
    campaigns: list[int] = field(default_factory=list)  # planner: campaigns planning
    probe: str | None = None  # sweeper: the scheduled campaign only a sweeper starts
    probe_seen: bool = False  # ... seen waiting in "scheduled"
    ready_at: float | None = None  # server: back up
    recovered_at: float | None = None
    duplicates: int = 0
    resent: int = 0  # ... of them mails the sink had before the kill (in flight, unflushed)

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered_at is None else self.recovered_at - self.at


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.rng = random.Random(args.seed)
        self.redis = LocalRedis().start()
        self.rabbit: LocalRabbit | None = None
        if args.broker == "rabbitmq":
            self.rabbit = LocalRabbit()
            if not self.rabbit.available:
                raise SystemExit(f"--broker rabbitmq: {LocalRabbit.SERVER} is not installed")
            self.rabbit.start()
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
            database_url=database_url,
            broker_url=self.rabbit.url() if self.rabbit else self.redis.url(0),
            redis_url=self.redis.url(1),
            queue_prefix=f"soak{uuid.uuid4().hex[:8]}",
            providers={"smtp": {"port": self.sink.port, "timeout_s": 10}},
            bounce_domain=BOUNCE_DOMAIN,
            broker_visibility_timeout_s=args.visibility_s,
            secret_key=new_secret(),
            use_uvloop=False,
        )
        self.ctx = Context.from_settings(self.settings)
        self.fleet = Fleet(self.settings, work)
        self.leases = {
            "LEASE_S": args.lease_s,
            "PLAN_LEASE_S": args.plan_lease_s,
            "BROKER_VISIBILITY_TIMEOUT_S": args.visibility_s,
        }
        common = {
            "BOUNCE_DOMAIN": BOUNCE_DOMAIN,
            "FEEDBACK_PORT": str(self.feedback_port),
            "BREAKER_MIN_VOLUME": "1000000000",
            "REQUEUE_QUEUED_AFTER_S": "30",
            "SMTP_CONNECTIONS": str(args.smtp_connections),
            **{k: str(v) for k, v in self.leases.items()},
        }
        planning = {"PAGE_SIZE": str(args.page_size)}  # the sweeper re-plans, too
        self.env = {
            "sender": common,
            "feedback": common,
            "planner": common | planning,
            "sweeper": common | planning,
        }
        # campaign id -> (tenant, message, last try, that try failed)
        self.published: dict[str, tuple[World, dict[str, Any], float, bool]] = {}
        self.publish_lock = threading.Lock()
        self.n = 0
        self.next_publish = 0.0  # monotonic; a planner kill publishes the next one early
        self.broker_restarts: list[float] = []  # monotonic starts of broker restarts
        self.flips: list[float] = []
        self.lags: list[float] = []
        self.events: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.faults_lock = threading.Lock()
        self.killed: set[str] = set()  # fleet labels we killed
        self.probes: list[str] = []  # probes for the next sweeper kills, an hour ahead
        self.complaints: set[int] = set()  # deliveries whose complaint the listener took
        self.pending: set[int] = set()  # ... queued at the MTA or being tried
        self.accepted_at: list[float] = []  # when the listener answered 250
        self.mta: queue.Queue[tuple[int, int, str, str, str]] = queue.Queue()
        self.mta_busy = threading.Event()  # an SMTP session to the listener is open
        self.stopping = threading.Event()  # traffic and faults stop
        self.done = threading.Event()  # everything stops
        self.t0 = time.time()

    # --- set-up -------------------------------------------------------------------------
    def seed(self) -> list[World]:
        worlds = []
        for _ in range(self.args.tenants):
            world = World.create(self.ctx, self.sink)
            bulk_audience(world, self.args.contacts)
            worlds.append(world)
        self.probe_world = World.create(self.ctx, self.sink)
        bulk_audience(self.probe_world, PROBE_CONTACTS)
        return worlds

    def start_workers(self) -> None:
        for kind in ("planner", "sweeper", "feedback", *["sender"] * SENDERS):
            self.fleet.spawn(kind, **self.env[kind])

    def log(self, text: str) -> None:
        print(f"  [{time.time() - self.t0:6.1f}] {text}", flush=True)

    # --- traffic ------------------------------------------------------------------------
    def publish(self, world: World, campaign_id: str, **overrides: Any) -> None:
        message = world.message(campaign_id, **overrides)
        self._publish(world, campaign_id, message)

    def _publish(self, world: World, campaign_id: str, message: dict[str, Any]) -> None:
        with self.publish_lock:
            self.published[campaign_id] = (world, message, time.monotonic(), False)
        try:
            world.publish(message)
        except Exception as exc:
            with self.publish_lock:
                self.published[campaign_id] = (world, message, time.monotonic(), True)
            self.events["publish_failed"] += 1
            self.log(f"publish {campaign_id} failed ({type(exc).__name__}); will retry")

    def publish_next(self) -> str:
        """The next regular campaign, now; the regular schedule moves on from here."""
        with self.publish_lock:
            self.n += 1
            campaign_id = f"soak-{self.n:05d}"
            self.next_publish = time.monotonic() + self.interval
        self.publish(self.rng.choice(self.worlds), campaign_id)
        return campaign_id

    def republish_missing(self) -> None:
        """A producer's duty: a campaign not seen 10 s after its publish failed, or after
        the broker was restarted since (Redis keeps nothing), is published again."""
        with contextlib.suppress(Exception), self.ctx.engine.connect() as conn:
            known = set(conn.scalars(select(c.external_id)))
            with self.publish_lock:
                missing = [(k, v) for k, v in self.published.items() if k not in known]
            for campaign_id, (world, message, at, failed) in missing:
                if time.monotonic() - at < 10:
                    continue
                if failed or any(r > at for r in self.broker_restarts):
                    self.events["republished"] += 1
                    self._publish(world, campaign_id, message)
                elif (
                    time.monotonic() - at > 3 * self.args.visibility_s + 30
                    and campaign_id not in self.overdue
                ):
                    self.overdue.add(campaign_id)
                    self.log(
                        f"campaign {campaign_id} published {time.monotonic() - at:.0f} s "
                        "ago has not arrived, with no broker restart since"
                    )

    def complain(self) -> None:
        with self.handler.lock:
            candidates = [
                x
                for x in self.handler.delivered[-2000:]
                if x[0] not in self.complaints and x[0] not in self.pending
            ]
        if candidates:
            delivery = self.rng.choice(candidates)
            self.pending.add(delivery[0])
            self.mta.put(delivery)

    def mta_loop(self) -> None:
        """Hand complaints to the feedback listener like a sending MTA: a refused
        connection, a dropped session or a 4xx is tried again until it is taken."""
        while not self.done.is_set():
            try:
                delivery = self.mta.get(timeout=0.2)
            except queue.Empty:
                continue
            first, refused = time.monotonic(), 0
            while not self.done.is_set():
                try:
                    self.mta_busy.set()
                    with smtplib.SMTP("127.0.0.1", self.feedback_port, timeout=10) as smtp:
                        smtp.sendmail("fbl@isp.example", [f"fbl@{BOUNCE_DOMAIN}"], arf(*delivery))
                    self.complaints.add(delivery[0])
                    self.accepted_at.append(time.time())
                    break
                except (OSError, smtplib.SMTPException) as exc:
                    if permanent(exc):
                        self.events["complaints_rejected"] += 1
                        self.log(f"complaint rejected for good: {exc!r:.100}")
                        break
                    refused += 1
                    if time.monotonic() - first > MTA_GIVE_UP_S:
                        self.events["complaints_given_up"] += 1
                        self.log(f"complaint given up after {refused} tries: {exc!r:.100}")
                        break
                    time.sleep(0.1)
                finally:
                    self.mta_busy.clear()
            if refused:
                self.events["complaint_retries"] += refused
            self.pending.discard(delivery[0])

    def flip(self, http: httpx.Client, key: str) -> None:
        """Start a campaign for one tenant, flip it off once that is sending, measure."""
        world = self.rng.choice(self.worlds)
        domain = world.tenant.domain
        asked = time.time()
        with self.publish_lock:
            self.n += 1
            campaign_id = f"soak-{self.n:05d}"
        self.publish(world, campaign_id)
        deadline = time.monotonic() + 15
        while self.handler.last_start.get(domain, 0) < asked + 0.3 and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.handler.last_start.get(domain, 0) < asked:
            self.log("kill switch: the tenant's campaign did not start sending, skipped")
            return
        url = f"/v1/operator/tenants/{world.tenant.slug}/sending-blocks"
        headers = {"Authorization": f"Bearer {key}"}
        flipped = time.time()
        reply = http.post(url, json={"scope": "bulk_email", "reason": "soak"}, headers=headers)
        if reply.status_code != 201:
            self.log(f"kill switch request answered {reply.status_code}")
            return
        time.sleep(3)
        delay = max(0.0, self.handler.last_start.get(domain, 0) - flipped)
        self.flips.append(delay)
        cleared = None
        for _ in range(10):  # the database may be restarting: the operator tries again
            with contextlib.suppress(httpx.HTTPError):
                cleared = http.post(
                    f"{url}/clear", json={"scope": "bulk_email", "reason": "soak"}, headers=headers
                )
                if cleared.status_code < 500:
                    break
            time.sleep(2)
        self.log(
            f"kill switch {world.tenant.slug}: last transaction {delay * 1000:.0f} ms "
            f"after the request; cleared {cleared.status_code if cleared else 'failed'}"
        )

    def sample_lag(self) -> None:
        with contextlib.suppress(Exception), self.ctx.engine.connect() as conn:
            oldest = conn.scalar(select(func.min(d.updated_at)).where(d.state == "queued"))
            self.lags.append((utcnow() - aware(oldest)).total_seconds() if oldest else 0.0)

    # --- kills --------------------------------------------------------------------------
    def _query(self, fn: Callable[[Connection], Any], timeout: float = 30) -> Any:
        """One read, tried again while the database restarts."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.ctx.engine.connect() as conn:
                    return fn(conn)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _wait(self, until: Callable[[], bool], timeout: float, every: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if until():
                    return True
            time.sleep(every)
        return False

    def _kill(self, kind: str) -> tuple[str, int]:
        alive = [
            (label, p)
            for label, p in self.fleet.procs
            if label.startswith(f"{kind}-") and p.poll() is None
        ]
        label, victim = self.rng.choice(alive)
        self.killed.add(label)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        return label, victim.pid

    def _record(self, fault: Fault) -> None:
        with self.faults_lock:
            self.faults.append(fault)
        self.events[f"{fault.kind}_kills" if fault.kind in KINDS else f"{fault.kind}_restarts"] += 1
        self.log(f"{'kill -9' if fault.kind in KINDS else 'restart'} {fault.kind}: {fault.what}")

    def sending_rows(self) -> dict[int, Any]:
        return dict(
            self._query(
                lambda conn: conn.execute(
                    select(d.id, d.lease_until).where(d.state == "sending")
                ).all()
            )
        )

    def kill_sender(self) -> None:
        self._wait(lambda: bool(self.sending_rows()), timeout=5)
        _, pid = self._kill("sender")
        at, at_utc = time.time(), utcnow()
        rows = self.sending_rows()  # the dead sender's rows keep the lease they have now
        self.fleet.spawn("sender", **self.env["sender"])
        self._record(
            Fault(
                "sender",
                at,
                at_utc,
                f"pid {pid}, {len(rows)} rows sending",
                hit=bool(rows),
                rows=rows,
            )
        )

    def planning(self) -> list[int]:
        earlier = {
            i
            for f in self.faults
            if f.kind == "planner" and f.recovered_at is None
            for i in f.campaigns
        }  # left by an earlier kill, waiting for the sweeper
        ids = self._query(
            lambda conn: list(conn.scalars(select(c.id).where(c.state == "planning")))
        )
        return [i for i in ids if i not in earlier]

    def kill_planner(self) -> None:
        self.publish_next()

        def mid_plan() -> bool:  # a page written, more to come
            ids = self.planning()
            return bool(ids) and bool(
                self._query(
                    lambda conn: conn.scalar(select(func.count()).where(d.campaign_id.in_(ids)))
                )
            )

        if not self._wait(mid_plan, timeout=10, every=0.005):
            self._wait(lambda: bool(self.planning()), timeout=2, every=0.005)
        _, pid = self._kill("planner")
        at, at_utc = time.time(), utcnow()
        campaigns = self.planning()
        written = (
            self._query(
                lambda conn: conn.scalar(select(func.count()).where(d.campaign_id.in_(campaigns)))
            )
            if campaigns
            else 0
        )
        self.fleet.spawn("planner", **self.env["planner"])
        what = (
            f"pid {pid}, campaigns {campaigns} planning ({written} rows written)"
            if campaigns
            else f"pid {pid}, idle"
        )
        self._record(Fault("planner", at, at_utc, what, hit=bool(campaigns), campaigns=campaigns))
        if not campaigns:  # the restarted planner must take the next one
            self.publish_next()

    def publish_probe(self, due: datetime) -> tuple[str, datetime]:
        """A small campaign scheduled for ``due``: only a sweeper starts it."""
        with self.publish_lock:
            self.n += 1
            probe = f"probe-{self.n:05d}"
        self.publish(self.probe_world, probe, schedule_at=due.isoformat())
        return probe, due

    def bring_forward(self, probe: str, to: datetime) -> bool:
        """Move a waiting probe's due time to ``to`` (as an operator rescheduling it)."""

        def write(conn: Connection) -> bool:
            done = conn.execute(
                update(t.campaign)
                .where(c.external_id == probe, c.state == "scheduled")
                .values(scheduled_at=to)
            )
            conn.commit()
            return bool(done.rowcount)

        return bool(self._query(write))

    def kill_sweeper(self) -> None:
        """A probe published at an earlier sweeper kill waits, scheduled an hour ahead; it
        is made due the moment the sweeper dies, so only the new one can start it. (None
        accepted yet, when the planner was slow: a probe of its own, due 1 s after the
        kill.)"""
        waiting = set(
            self._query(
                lambda conn: list(
                    conn.scalars(
                        select(c.external_id).where(
                            c.external_id.in_(self.probes), c.state == "scheduled"
                        )
                    )
                )
            )
            if self.probes
            else []
        )
        probe = next((p for p in self.probes if p in waiting), "")
        _, pid = self._kill("sweeper")
        at, at_utc = time.time(), utcnow()
        if used := bool(probe) and self.bring_forward(probe, at_utc):
            self.probes.remove(probe)
            what = f"{probe} made due at the kill"
        else:
            probe, _ = self.publish_probe(at_utc + timedelta(seconds=1))
            what = f"{probe} due 1 s after the kill"
        self.fleet.spawn("sweeper", **self.env["sweeper"])
        self._record(
            Fault("sweeper", at, at_utc, f"pid {pid}; {what}", probe=probe, probe_seen=used)
        )
        if not self.probes:  # for the next kill
            self.probes.append(self.publish_probe(utcnow() + timedelta(hours=1))[0])

    def kill_feedback(self) -> None:
        self.complain()
        hit = self._wait(self.mta_busy.is_set, timeout=2, every=0.001)
        _, pid = self._kill("feedback")
        at, at_utc = time.time(), utcnow()
        self.fleet.spawn("feedback", **self.env["feedback"])
        self._record(
            Fault(
                "feedback",
                at,
                at_utc,
                f"pid {pid}{', a complaint on the wire' if hit else ''}",
                hit=hit,
            )
        )
        self.complain()  # the MTA has mail for it

    def respawn_crashed(self) -> None:
        """A worker that died on its own is an engine problem: report it, start another."""
        for label, proc in list(self.fleet.procs):
            if proc.poll() is not None and label not in self.killed:
                self.killed.add(label)
                self.events["crashed"] += 1
                self.log(
                    f"worker {label} exited by itself ({proc.returncode}): "
                    f"{self.fleet.tail(label, 800)!r}"
                )
                kind = label.rsplit("-", 1)[0]
                self.fleet.spawn(kind, **self.env[kind])

    def killer(self) -> None:
        kinds = itertools.cycle(KINDS)
        due = time.monotonic() + 5.0
        self.probes.append(self.publish_probe(utcnow() + timedelta(hours=1))[0])
        while not self.stopping.is_set():
            self.respawn_crashed()
            if time.monotonic() < due:
                time.sleep(0.05)
                continue
            kind = next(kinds)
            try:
                getattr(self, f"kill_{kind}")()
            except Exception as exc:
                self.events["kill_failed"] += 1
                self.log(f"kill {kind} failed: {exc!r:.200}")
            due = max(due + self.args.kill_every, time.monotonic())

    # --- server restarts ----------------------------------------------------------------
    def restart(self, name: str) -> None:
        server: Any = {"redis": self.redis, "rabbitmq": self.rabbit, "postgres": self.postgres}[
            name
        ]
        fault = Fault(name, time.time(), utcnow(), "")
        if name == ("rabbitmq" if self.rabbit else "redis"):
            self.broker_restarts.append(time.monotonic())
        server.restart()
        fault.ready_at = time.time()
        fault.what = f"{fault.ready_at - fault.at:.1f} s down"
        self._record(fault)

    def services(self) -> None:
        every = self.args.restart_every
        broker = "rabbitmq" if self.rabbit else "redis"
        schedule = {broker: 25.0}
        if self.rabbit:
            schedule["redis"] = 40.0  # pub/sub only
        if self.postgres:
            schedule["postgres"] = 50.0
        started = time.monotonic()
        while not self.stopping.is_set():
            elapsed = time.monotonic() - started
            for name, due in schedule.items():
                if elapsed >= due and not self.stopping.is_set():
                    schedule[name] = due + every
                    try:
                        self.restart(name)
                    except Exception as exc:
                        self.events["restart_failed"] += 1
                        self.log(f"restart {name} failed: {exc!r:.200}")
            time.sleep(0.1)

    # --- recovery -----------------------------------------------------------------------
    def recovered(self, conn: Connection, f: Fault) -> float | None:
        """When ``f`` was recovered from, if it was (time.time())."""
        now = time.time()
        if f.kind == "sender":
            if self.handler.last_mail_at <= f.at:
                return None
            if f.rows:
                still = conn.execute(
                    select(d.id, d.lease_until).where(d.id.in_(list(f.rows)), d.state == "sending")
                ).all()
                if any(lease == f.rows[i] for i, lease in still):
                    return None
            return now
        if f.kind == "planner":
            if f.campaigns:
                states = list(conn.scalars(select(c.state).where(c.id.in_(f.campaigns))))
                return now if "planning" not in states else None
            return (
                now
                if conn.scalar(
                    select(func.count()).where(c.created_at > f.at_utc, c.state != "planning")
                )
                else None
            )
        if f.kind == "sweeper":
            state = conn.scalar(select(c.state).where(c.external_id == f.probe))
            if state == "scheduled":
                f.probe_seen = True
            elif state is not None and f.probe_seen:
                return now
            return (
                now if conn.scalar(select(func.count()).where(c.finished_at > f.at_utc)) else None
            )
        if f.kind == "feedback":
            return min((a for a in self.accepted_at if a > f.at), default=None)
        if f.ready_at is not None and self.handler.last_mail_at > f.ready_at:
            return now
        return None

    def watch(self) -> None:
        while not self.done.is_set():
            with self.faults_lock:
                open_faults = [f for f in self.faults if f.recovered_at is None]
            if open_faults:
                with contextlib.suppress(Exception), self.ctx.engine.connect() as conn:
                    for f in open_faults:
                        if (at := self.recovered(conn, f)) is not None:
                            f.recovered_at = at
                            self.log(
                                f"{f.kind} {'kill' if f.kind in KINDS else 'restart'} at "
                                f"{f.at - self.t0:.1f} s recovered in {at - f.at:.1f} s"
                            )
            time.sleep(0.1)

    # --- the run ------------------------------------------------------------------------
    def thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # a bug of the soak itself: say so, keep the rest going
                self.events[f"{name}_thread_failed"] += 1
                self.log(f"{name} thread failed: {exc!r}")

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    def flipper(self, http: httpx.Client, key: str) -> None:
        due = time.monotonic() + 12.0
        while not self.stopping.is_set():
            if time.monotonic() >= due:
                due += 60.0
                try:
                    self.flip(http, key)
                except Exception as exc:
                    self.log(f"kill switch flip failed: {exc!r:.200}")
            time.sleep(0.1)

    def run(self) -> dict[str, Any]:
        self.worlds = self.seed()
        self.overdue: set[str] = set()
        self.start_workers()
        key = create_key(self.ctx.engine, "operator", "soak")
        api = serve_api(self.settings)
        http = httpx.Client(base_url=next(api), timeout=10)
        self.interval = self.args.contacts / self.args.rate
        duration = self.args.minutes * 60
        self.t0 = time.time()
        started = time.monotonic()
        watchers = [self.thread(self.watch, "watch"), self.thread(self.mta_loop, "mta")]
        faults = [
            self.thread(self.killer, "killer"),
            self.thread(self.services, "services"),
            self.thread(lambda: self.flipper(http, key), "flip"),
        ]
        schedule = {"complain": 3.0, "lag": 1.0, "republish": 10.0}
        every = {"complain": 3.0, "lag": 1.0, "republish": 5.0}
        try:
            while (elapsed := time.monotonic() - started) < duration:
                if time.monotonic() >= self.next_publish:
                    self.publish_next()
                for name, due in schedule.items():
                    if elapsed < due:
                        continue
                    schedule[name] = due + every[name]
                    if name == "complain":
                        self.complain()
                    elif name == "lag":
                        self.sample_lag()
                    elif name == "republish":
                        self.republish_missing()
                time.sleep(0.05)
            self.stopping.set()
            print(f"traffic stopped after {duration:.0f} s; draining", flush=True)
            for thread in faults:
                thread.join(timeout=180)
            self.respawn_crashed()
            drained = self.drain()
            self._wait(lambda: all(f.recovered_at is not None for f in self.faults), 30, 0.5)
        finally:
            self.stopping.set()
            self.done.set()
            for thread in watchers:
                thread.join(timeout=15)
            http.close()
            next(api, None)
            codes = self.fleet.stop()
        return self.report(drained, codes)

    def drain(self, limit: float = 300) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.republish_missing()
            self.sample_lag()
            for probe in self.probes:  # a probe no kill used starts like any other
                with contextlib.suppress(Exception):
                    self.bring_forward(probe, utcnow())
            with contextlib.suppress(Exception), self.ctx.engine.connect() as conn:
                states: dict[str, int] = dict(
                    conn.execute(select(c.state, func.count()).group_by(c.state)).all()
                )
                if (
                    states.get("finished", 0) == len(self.published)
                    and self.mta.empty()
                    and not self.pending
                ):
                    return True
            time.sleep(1)
        return False

    def attribute_duplicates(self) -> int:
        """Put each extra copy down to a fault: to a PostgreSQL restart when the first copy
        went out while the database was down (the sender could not record it), else to the
        first sender kill after the first copy whose ``sending`` rows held the delivery.
        Return how many fit neither."""
        senders = sorted((f for f in self.faults if f.kind == "sender"), key=lambda f: f.at)
        outages = [f for f in self.faults if f.kind == "postgres"]
        other = 0
        with self.handler.lock:
            extra = {k: list(v) for k, v in self.handler.extra_at.items()}
            first = dict(self.handler.first_at)
        for delivery, times in extra.items():
            for at in times:
                outage = next(
                    (
                        f
                        for f in outages
                        if f.at - 0.5 <= first[delivery] <= (f.ready_at or f.at) + 1.0
                    ),
                    None,
                )  # unflushed as it stopped
                # the first kill after the first copy went out left it unrecorded
                kill = next(
                    (f for f in senders if first[delivery] <= f.at <= at and delivery in f.rows),
                    None,
                ) or next((f for f in reversed(senders) if f.at <= at and delivery in f.rows), None)
                if outage is not None:
                    outage.duplicates += 1
                elif kill is None:
                    other += 1
                else:
                    kill.duplicates += 1
                    kill.resent += first[delivery] <= kill.at
        return other

    def report(self, drained: bool, codes: dict[str, int]) -> dict[str, Any]:
        with self.ctx.engine.connect() as conn:
            states: dict[str, int] = dict(
                conn.execute(select(d.state, func.count()).group_by(d.state)).all()
            )
            sent_ids = set(conn.scalars(select(d.id).where(d.state == "sent")))
            arrived = set(conn.scalars(select(c.external_id)))
            complaints = int(
                conn.scalar(
                    select(func.count())
                    .select_from(t.feedback_event)
                    .where(t.feedback_event.c.kind == "complaint")
                )
                or 0
            )
            unfinished = int(conn.scalar(select(func.count()).where(c.state != "finished")) or 0)
            # each campaign has one row per list member: a planner killed mid-plan and
            # planned again wrote the rest, no more and no less
            sizes = conn.execute(
                select(c.tenant_id, func.count(d.id))
                .select_from(t.campaign)
                .outerjoin(t.delivery, d.campaign_id == c.id)
                .group_by(c.id, c.tenant_id)
            ).all()
        audience = {w.tenant_id: self.args.contacts for w in self.worlds} | {
            self.probe_world.tenant_id: PROBE_CONTACTS
        }
        rows_missing = sum(max(0, audience[tenant] - n) for tenant, n in sizes)
        rows_extra = sum(max(0, n - audience[tenant]) for tenant, n in sizes)
        with self.handler.lock:
            copies = dict(self.handler.copies)
        stuck = sum(n for state, n in states.items() if state not in TERMINAL)
        never_arrived = len(sent_ids - set(copies))
        missing_campaigns = sorted(set(self.published) - arrived)
        complaints_lost = max(0, len(self.complaints) - complaints)
        lost = never_arrived + len(missing_campaigns) + complaints_lost + rows_missing
        duplicates = sum(n - 1 for n in copies.values())
        other_duplicates = self.attribute_duplicates()
        died = {label: code for label, code in codes.items() if code not in (0, -9)}
        sweeps: Counter[str] = Counter()
        for label, _ in self.fleet.procs:
            if label.startswith("sweeper-"):
                for line in (self.work / f"{label}.log").read_text().splitlines():
                    if " sweep: {" in line:
                        sweeps.update(json.loads(line.split(" sweep: ", 1)[1].replace("'", '"')))

        by_kind: dict[str, list[Fault]] = {}
        for f in self.faults:
            by_kind.setdefault(f.kind, []).append(f)
        kinds = [k for k in (*KINDS, *SERVERS) if k in by_kind]
        print(
            f"campaigns published {len(self.published)}, arrived {len(arrived)}, "
            f"unfinished {unfinished}, drained {drained}"
        )
        print(f"deliveries by state: {dict(sorted(states.items()))}")
        print(
            f"workers: {self.leases}, PAGE_SIZE {self.args.page_size} (planner, sweeper), "
            f"SMTP_CONNECTIONS {self.args.smtp_connections}, broker {self.args.broker}"
        )
        print(
            f"{'fault':<9} {'count':>5} {'hit':>4} {'recovery s: median':>19} {'max':>6} "
            f"{'unrecovered':>11} {'duplicates':>10} {'max/kill':>8}"
        )
        hits: dict[str, int] = {}
        median: dict[str, float | None] = {}
        maximum: dict[str, float | None] = {}
        for kind in kinds:
            faults = by_kind[kind]
            times = [f.recovery_s for f in faults if f.recovery_s is not None]
            median[kind] = round(statistics.median(times), 1) if times else None
            maximum[kind] = round(max(times), 1) if times else None
            dups = [f.duplicates for f in faults]
            hits[kind] = sum(f.probe_seen if kind == "sweeper" else f.hit for f in faults)
            print(
                f"{kind:<9} {len(faults):>5} {hits[kind] if kind in KINDS else '-':>4} "
                f"{median[kind] if times else '-':>19} {maximum[kind] if times else '-':>6} "
                f"{len(faults) - len(times):>11} "
                f"{sum(dups) if kind in ('sender', 'postgres') else '-':>10} "
                f"{max(dups, default=0) if kind in ('sender', 'postgres') else '-':>8}"
            )
        max_dup = max((f.duplicates for f in by_kind.get("sender", [])), default=0)
        print(
            "sender kills (at s: rows sending, duplicates, of them sent before the kill): "
            + ", ".join(
                f"{f.at - self.t0:.0f}: {len(f.rows)}/{f.duplicates}/{f.resent}"
                for f in by_kind.get("sender", [])
            )
        )
        print(
            f"lost {lost}: {never_arrived} marked sent but never received, "
            f"{len(missing_campaigns)} campaigns missing {missing_campaigns[:10]}, "
            f"{complaints_lost} complaints taken but not recorded, {rows_missing} rows "
            f"never planned ({rows_extra} planned twice)"
        )
        print(
            f"stuck {stuck} rows not terminal after the drain ({unfinished} campaigns not finished)"
        )
        kill_dups = sum(f.duplicates for f in by_kind.get("sender", []))
        outage_dups = sum(f.duplicates for f in by_kind.get("postgres", []))
        print(
            f"duplicates {duplicates}: {kill_dups} after sender kills (at most {max_dup} per "
            f"kill; SMTP_CONNECTIONS {self.args.smtp_connections}), {outage_dups} sent while "
            f"PostgreSQL was down (in-flight bound: {SENDERS} senders x {PREFETCH} x "
            f"{BATCH} per restart), {other_duplicates} put down to neither"
        )
        print(
            f"faults: {dict(self.events)}; complaints injected {len(self.complaints)}, "
            f"recorded {complaints}"
        )
        print(f"sweeper: {dict(+sweeps)}")
        print(f"kill switch flips {len(self.flips)}: delays {[round(x, 3) for x in self.flips]} s")
        print(f"queue lag: max {max(self.lags, default=0):.1f} s over {len(self.lags)} samples")
        if died:
            print(f"workers that exited badly: {died}")
        return {
            "sent": len(sent_ids),
            "lost": lost,
            "duplicates": duplicates,
            "max_kill_switch_delay_s": round(max(self.flips, default=0.0), 3),
            "max_queue_lag_s": round(max(self.lags, default=0.0), 1),
            "stuck": stuck,
            "stuck_campaigns": unfinished,
            "broker": self.args.broker,
            "kills": {k: len(by_kind.get(k, [])) for k in KINDS},
            "kills_on_work": {k: hits.get(k, 0) for k in KINDS},
            "restarts": {k: len(by_kind[k]) for k in SERVERS if k in by_kind},
            "median_recovery_s": median,
            "max_recovery_s": maximum,
            "unrecovered": sum(f.recovered_at is None for f in self.faults),
            "max_duplicates_per_sender_kill": max_dup,
            "duplicates_after_sender_kills": kill_dups,
            "duplicates_while_postgres_down": outage_dups,
            "duplicates_unattributed": other_duplicates,
            "complaints": {"injected": len(self.complaints), "recorded": complaints},
            "crashed_workers": self.events["crashed"],
            "leases_s": self.leases,
        }

    def keep(self, into: Path) -> None:
        """Worker logs, faults and duplicates (times relative to the start) for a look."""
        into.mkdir(parents=True, exist_ok=True)
        for log in self.work.glob("*.log"):
            shutil.copy(log, into / log.name)
        with self.handler.lock:
            first, extra = dict(self.handler.first_at), dict(self.handler.extra_at)
        (into / "faults.json").write_text(
            json.dumps(
                [
                    {
                        "kind": f.kind,
                        "at": round(f.at - self.t0, 3),
                        "what": f.what,
                        "hit": f.hit,
                        "recovery_s": f.recovery_s and round(f.recovery_s, 3),
                        "duplicates": f.duplicates,
                        "resent": f.resent,
                        "rows": sorted(f.rows),
                    }
                    for f in self.faults
                ],
                indent=1,
            )
        )
        (into / "duplicates.json").write_text(
            json.dumps(
                {
                    str(k): {
                        "first": round(first[k] - self.t0, 3),
                        "extra": [round(x - self.t0, 3) for x in v],
                    }
                    for k, v in extra.items()
                },
                indent=1,
            )
        )
        print(f"logs and faults kept in {into}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sink.stop()
        self.ctx.engine.dispose()
        self.redis.close()
        if self.rabbit is not None:
            self.rabbit.close()
        if self.postgres is not None:
            self.postgres.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--broker", choices=("redis", "rabbitmq"), default="redis")
    parser.add_argument(
        "--kill-every", type=float, default=6.0, help="seconds between kills; the kinds take turns"
    )
    parser.add_argument(
        "--restart-every", type=float, default=60.0, help="seconds between restarts of each server"
    )
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=600, help="per tenant")
    parser.add_argument("--rate", type=float, default=100.0, help="mails per second offered")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--smtp-latency-ms", type=float, default=20.0, help="the sink's delay before answering DATA"
    )
    parser.add_argument(
        "--smtp-connections", type=int, default=4, help="SMTP_CONNECTIONS of each sender"
    )
    parser.add_argument(
        "--lease-s",
        type=float,
        default=5.0,
        help="LEASE_S of the senders: how long a claimed row is theirs",
    )
    parser.add_argument(
        "--plan-lease-s",
        type=float,
        default=5.0,
        help="PLAN_LEASE_S: a dead planner's campaign is re-planned after it",
    )
    parser.add_argument(
        "--visibility-s",
        type=float,
        default=10.0,
        help="BROKER_VISIBILITY_TIMEOUT_S: a dead worker's Redis message comes back after it",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=100,
        help="PAGE_SIZE of planner and sweeper: rows per planning page",
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="copy the workers' logs and every fault and duplicate here",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        soak = Soak(args, Path(tmp))
        try:
            result = soak.run()
        finally:
            if args.keep:
                soak.keep(args.keep)
            soak.close()
    print(json.dumps(result))
    return 1 if result["lost"] or result["stuck"] or result["stuck_campaigns"] else 0


if __name__ == "__main__":
    sys.exit(main())
