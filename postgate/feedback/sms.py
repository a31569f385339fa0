"""Delivery reports and inbound SMS, written to the database.

Message ids tie a gateway's reports to our rows (``sms_part``). A report may arrive
before the sender has recorded the id it answers (SMPP gateways report within
milliseconds); both sides insert-or-update the same ``(provider, message_id)`` row,
and whichever comes second applies the result to the delivery. Applying twice is
harmless: the updates are guarded by the delivery's state.

A STOP reply suppresses the number for the tenant that last sent an SMS to it and is
recorded as a ``stop`` feedback event; the next send to that number is blocked.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, bindparam, or_, select, update

from postgate.core.clock import utcnow
from postgate.core.events import EventType
from postgate.core.sms.addressing import AddressError, e164
from postgate.core.sms.opt_out import RESUME_KEYWORDS, keyword
from postgate.core.sms.outcomes import FINAL_FAILURES, DlrStatus, overall
from postgate.core.states import Channel, DeliveryState, FeedbackKind, SuppressionReason
from postgate.events import outbox
from postgate.feedback import ledger
from postgate.providers.sms import DeliveryReport, InboundSms
from postgate.store import tables as t
from postgate.store.dialect import insert_ignore

START_REPLAY_WINDOW = timedelta(minutes=10)
log = logging.getLogger("postgate.sms.feedback")
p, d = t.sms_part.c, t.delivery.c


def record_parts(
    conn: Connection, provider: str, accepted: Iterable[tuple[int, Sequence[str]]], now: datetime
) -> None:
    """The message ids a gateway gave for each delivery; applies reports already here."""
    rows = [
        {
            "provider": provider,
            "message_id": mid,
            "delivery_id": did,
            "part": i + 1,
            "parts": len(ids),
            "created_at": now,
        }
        for did, ids in accepted
        for i, mid in enumerate(ids)
    ]
    if not rows:
        return
    insert_ignore(conn, t.sms_part, rows, ("provider", "message_id"))
    conn.execute(
        update(t.sms_part)
        .where(p.provider == provider, p.message_id == bindparam("b_mid"), p.delivery_id.is_(None))
        .values(
            delivery_id=bindparam("b_did"), part=bindparam("b_part"), parts=bindparam("b_parts")
        ),
        [
            {
                "b_mid": r["message_id"],
                "b_did": r["delivery_id"],
                "b_part": r["part"],
                "b_parts": r["parts"],
            }
            for r in rows
        ],
    )
    apply(conn, provider, [str(r["message_id"]) for r in rows], now)


def record_reports(
    conn: Connection,
    reports: Sequence[DeliveryReport],
    now: datetime,
    delivery_ids: Sequence[int | None] | None = None,
) -> None:
    """Store delivery reports (optionally with the delivery id the gateway echoed back)."""
    ids = list(delivery_ids or [None] * len(reports))
    for provider in {r.provider for r in reports}:
        mine = [(r, did) for r, did in zip(reports, ids, strict=True) if r.provider == provider]
        insert_ignore(
            conn,
            t.sms_part,
            [
                {
                    "provider": provider,
                    "message_id": r.message_id,
                    "delivery_id": did,
                    "status": r.status.value,
                    "error": r.code,
                    "done_at": r.done_at,
                    "created_at": now,
                }
                for r, did in mine
            ],
            ("provider", "message_id"),
        )
        settled = or_(
            p.status.is_(None), p.status == DlrStatus.ACCEPTED, p.status == DlrStatus.UNKNOWN
        )  # a final status is never overwritten
        conn.execute(
            update(t.sms_part)
            .where(p.provider == provider, p.message_id == bindparam("b_mid"), settled)
            .values(
                status=bindparam("b_status"), error=bindparam("b_code"), done_at=bindparam("b_done")
            ),
            [
                {
                    "b_mid": r.message_id,
                    "b_status": r.status.value,
                    "b_code": r.code,
                    "b_done": r.done_at,
                }
                for r, _ in mine
            ],
        )
        with_ids = [{"b_mid": r.message_id, "b_did": did} for r, did in mine if did]
        if with_ids:
            conn.execute(
                update(t.sms_part)
                .where(
                    p.provider == provider,
                    p.message_id == bindparam("b_mid"),
                    p.delivery_id.is_(None),
                )
                .values(delivery_id=bindparam("b_did")),
                with_ids,
            )
        apply(conn, provider, [r.message_id for r, _ in mine], now)


def apply(conn: Connection, provider: str, message_ids: Sequence[str], now: datetime) -> int:
    """Move deliveries whose parts are all reported to delivered or failed."""
    touched = select(p.delivery_id).where(
        p.provider == provider, p.message_id.in_(list(message_ids)), p.delivery_id.is_not(None)
    )
    rows = conn.execute(
        select(p.delivery_id, p.status, p.parts, p.done_at, p.message_id).where(
            p.delivery_id.in_(touched)
        )
    ).all()
    parts: dict[int, list[tuple[str | None, int, datetime | None, str]]] = {}
    for did, status, count, done_at, mid in rows:
        parts.setdefault(did, []).append((status, count, done_at, mid))
    changed = 0
    for did, items in parts.items():
        verdict = overall([s for s, _, _, _ in items], max(c for _, c, _, _ in items))
        if verdict is None:
            continue
        done = max((x for _, _, x, _ in items if x is not None), default=now)
        if verdict is DlrStatus.DELIVERED:
            moved = conn.execute(
                update(t.delivery)
                .where(d.id == did, d.state == DeliveryState.SENT, d.dlr_status.is_(None))
                .values(dlr_status=verdict.value, delivered_at=done, updated_at=now)
                .returning(d.tenant_id, d.campaign_id, d.address)
            ).all()
            changed += len(moved)
            outbox.write(
                conn,
                [
                    outbox.Pending(
                        f"delivered:{did}",
                        EventType.DELIVERED,
                        tenant_id,
                        Channel.SMS,
                        done,
                        did,
                        campaign_id,
                        address,
                        {"provider": provider, "parts": len(items)},
                    )
                    for tenant_id, campaign_id, address in moved
                ],
            )
        elif verdict in FINAL_FAILURES:
            changed += _failed(conn, did, verdict, provider, items[0][3], now)
    return changed


def _failed(
    conn: Connection,
    delivery_id: int,
    verdict: DlrStatus,
    provider: str,
    message_id: str,
    now: datetime,
) -> int:
    row = conn.execute(select(d.tenant_id, d.address).where(d.id == delivery_id)).first()
    count = conn.execute(
        update(t.delivery)
        .where(d.id == delivery_id, d.state == DeliveryState.SENT)
        .values(
            state=DeliveryState.FAILED,
            reason=f"sms_{verdict.value}",
            dlr_status=verdict.value,
            updated_at=now,
        )
    ).rowcount
    if row is not None:
        ledger.record(
            conn,
            [
                ledger.Event(
                    Channel.SMS,
                    FeedbackKind.BOUNCE,
                    f"dlr:{provider}:{message_id}",
                    "dlr",
                    now,
                    row[0],
                    delivery_id,
                    row[1],
                    False,
                    verdict.value,
                    raw=f"{provider} {message_id} {verdict.value}",
                )
            ],
        )
    return int(count)


def _mo_key(conn: Connection, message: InboundSms, resume: bool, now: datetime) -> str | None:
    """The event's dedup key, or None when this reply was handled before. A gateway's
    message id makes a retry recognisable. Without one (SMPP MO carry none) a STOP always
    applies, suppressing being the safe side, while a START repeated word for word within
    about ``START_REPLAY_WINDOW`` is taken for a resent one, so it cannot undo a later STOP."""
    content = hashlib.sha256(
        f"{message.provider}|{message.message_id}|{message.sender}|"
        f"{message.recipient}|{message.text}".encode()
    ).hexdigest()[:40]
    fe = t.feedback_event.c

    def seen(*keys: str) -> bool:
        return conn.scalar(select(fe.id).where(fe.dedup_key.in_(keys)).limit(1)) is not None

    if message.message_id:
        return None if seen(f"mo:{content}") else f"mo:{content}"
    if not resume:
        return f"mo:{content}:{now.timestamp():.6f}"
    window = int(START_REPLAY_WINDOW.total_seconds())
    bucket = int(now.timestamp()) // window
    if seen(f"mo:{content}:w{bucket}", f"mo:{content}:w{bucket - 1}"):
        return None
    return f"mo:{content}:w{bucket}"


def inbound(conn: Connection, message: InboundSms, now: datetime) -> int | None:
    """Handle a reply: a STOP suppresses the number, a START from it lifts that STOP
    (never a suppression for any other reason). Returns the tenant it applied to: the
    one whose SMS last reached the number."""
    word = keyword(message.text)
    resume = None if word else keyword(message.text, RESUME_KEYWORDS)
    if word is None and resume is None:
        log.info("inbound sms from %s via %s is not an opt-out", message.sender, message.provider)
        return None
    try:
        number = e164(message.sender if message.sender.startswith("+") else "+" + message.sender)
    except AddressError:  # kept as sent, minus what a database cannot hold
        number = message.sender.replace("\x00", "\ufffd")[:64]
    c = t.campaign.c
    tenant_id = conn.scalar(
        select(d.tenant_id)
        .join(t.campaign, c.id == d.campaign_id)
        .where(
            d.address == number,
            c.channel == "sms",
            and_(d.state.in_([DeliveryState.SENT, DeliveryState.FAILED])),
        )
        .order_by(d.updated_at.desc(), d.id.desc())
        .limit(1)
    )
    key = _mo_key(conn, message, bool(resume), now)
    if key is None:
        log.info(
            "inbound sms %r from %s seen before: nothing changes", message.message_id, number
        )  # a gateway retrying an old STOP or START must not undo a later one
        return None
    stop = ledger.Event(
        Channel.SMS,
        FeedbackKind.STOP if word else FeedbackKind.START,
        key,
        message.provider,
        now,
        tenant_id,
        address=number,
        raw=message.raw[:2000].replace("\x00", "\ufffd"),
        suppress=SuppressionReason.STOP if word else None,
        detail=f"{word} via {message.provider}",
    )
    ledger.record(conn, [stop])
    if tenant_id is None:
        log.warning("%s from %s matches no tenant's SMS; recorded only", word or resume, number)
        return None
    if resume:
        lifted = ledger.lift(conn, tenant_id, Channel.SMS, [number], [SuppressionReason.STOP])
        log.info(
            "tenant=%s recipient=%s opted back in by %s (%d STOP lifted)",
            tenant_id,
            number,
            resume,
            lifted,
        )
        return int(tenant_id)
    log.info("tenant=%s recipient=%s opted out by %s", tenant_id, number, word)
    return int(tenant_id)


class DatabaseFeedback:
    """The :class:`~postgate.providers.sms.FeedbackSink` gateways report into.

    Reports arriving within ``linger_s`` of each other are written in one transaction
    (an SMSC sends one receipt per part, thousands a second); each caller still waits
    until its own report is committed, so a gateway acknowledges only what is stored.
    """

    def __init__(self, engine: Engine, linger_s: float = 0.02) -> None:
        self.engine = engine
        self.linger_s = linger_s
        self._pending: list[tuple[DeliveryReport, asyncio.Future[None]]] = []
        self._flush: asyncio.Task[None] | None = None

    async def reports(self, reports: Sequence[DeliveryReport]) -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for report in reports:
            future: asyncio.Future[None] = loop.create_future()
            self._pending.append((report, future))
            futures.append(future)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._write_soon())
        await asyncio.gather(*futures)

    async def _write_soon(self) -> None:
        await asyncio.sleep(self.linger_s)
        batch, self._pending = self._pending, []
        try:
            await asyncio.to_thread(self._reports, [r for r, _ in batch])
        except Exception as exc:
            for _, future in batch:
                future.set_exception(exc)
        else:
            for _, future in batch:
                future.set_result(None)
        if self._pending:
            self._flush = asyncio.create_task(self._write_soon())

    def _reports(self, reports: list[DeliveryReport]) -> None:
        with self.engine.begin() as conn:
            record_reports(conn, reports, utcnow())

    async def inbound(self, message: InboundSms) -> None:
        await asyncio.to_thread(self._inbound, message)

    def _inbound(self, message: InboundSms) -> None:
        with self.engine.begin() as conn:
            inbound(conn, message, utcnow())
