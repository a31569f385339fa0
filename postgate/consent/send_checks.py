"""Checks the sender makes on the rows it just claimed, right before sending.

The planner gated every row against suppression when it planned; an unsubscribe that
arrives between planning and sending must still win. ``late_suppressed`` finds such
rows with one query per batch and blocks them. ``cancel`` retires rows that cannot be
sent any more (a confirmation mail whose one-time link was lost with its queue message).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, update

from postgate.core.gate import HARD_SUPPRESSIONS
from postgate.core.states import BlockReason, DeliveryState, Kind
from postgate.store import tables as t
from postgate.tenants import erasure


def suppressed_rows(
    found: dict[str, str], kind: str, rows: Sequence[tuple[int, str]], channel: str = "email"
) -> list[int]:
    """Pure: which (delivery id, address) rows the suppressions ``found`` stop for ``kind``.
    Transactional mail still reaches an unsubscribed mailbox; an SMS never reaches a
    number that said STOP, whatever it carries."""
    hard_only = kind == Kind.TRANSACTIONAL and channel == "email"
    stops = (lambda r: r in HARD_SUPPRESSIONS) if hard_only else bool
    return [
        delivery_id for delivery_id, address in rows if address in found and stops(found[address])
    ]


def late_suppressed(
    engine: Engine,
    tenant_id: int,
    channel: str,
    kind: str,
    rows: Sequence[tuple[int, str]],
    now: datetime,
) -> set[int]:
    """Block the claimed rows whose address was suppressed after planning; return their ids."""
    if not rows:
        return set()
    d = t.delivery.c
    with engine.begin() as conn:
        found = erasure.suppressions(conn, tenant_id, channel, sorted({a for _, a in rows}))
        ids = suppressed_rows(found, kind, rows, channel)
        if ids:
            conn.execute(
                update(t.delivery)
                .where(d.id.in_(ids), d.state == DeliveryState.SENDING)
                .values(
                    state=DeliveryState.BLOCKED,
                    reason=BlockReason.SUPPRESSED.value,
                    lease_until=None,
                    updated_at=now,
                )
            )
    return set(ids)


def cancel(engine: Engine, ids: Sequence[int], reason: str, now: datetime) -> None:
    d = t.delivery.c
    with engine.begin() as conn:
        conn.execute(
            update(t.delivery)
            .where(d.id.in_(list(ids)), d.state == DeliveryState.SENDING)
            .values(state=DeliveryState.CANCELLED, reason=reason, lease_until=None, updated_at=now)
        )
