"""Pause, resume and cancel a campaign while it sends.

Pausing stops new claims at once (the sender's claim requires a sending campaign);
rows already handed to SMTP finish. Resuming republishes the campaign's queued rows.
Cancelling ends every row not yet sent as ``cancelled``; the sweeper cancels rows that
come back from in-flight deferrals later. None of this can send a row twice: the row
guards in :mod:`postgate.campaigns.deliveries` still decide who sends.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, insert, select, update

from postgate.core.clock import utcnow
from postgate.core.states import CampaignState as C
from postgate.core.states import DeliveryState as S
from postgate.store import tables as t

c, d = t.campaign.c, t.delivery.c
# hands a campaign's queued delivery ids to the send queue (runtime.publish.publisher)
Publish = Callable[[int, list[int]], None]
OPEN_ROWS = (S.QUEUED, S.DEFERRED, S.HELD)


class ControlError(ValueError):
    """The campaign is not in a state that allows this."""


def _transition(
    engine: Engine,
    tenant_id: int,
    campaign_id: int,
    allowed: tuple[str, ...],
    target: str | None,
    actor: str,
    action: str,
) -> str:
    with engine.begin() as conn:
        row = conn.execute(
            select(c.state, c.planned_at)
            .where(c.id == campaign_id, c.tenant_id == tenant_id)
            .with_for_update()
        ).first()
        if row is None:
            raise LookupError("no such campaign")
        if row.state not in allowed:
            raise ControlError(f"cannot {action} a campaign that is {row.state}")
        new = target or (C.SENDING if row.planned_at is not None else C.PLANNING)
        conn.execute(update(t.campaign).where(c.id == campaign_id).values(state=new))
        if new == C.CANCELLED:
            conn.execute(
                update(t.delivery)
                .where(d.campaign_id == campaign_id, d.state.in_(OPEN_ROWS))
                .values(state=S.CANCELLED, reason="campaign_cancelled", updated_at=utcnow())
            )
        conn.execute(
            insert(t.audit_log).values(
                tenant_id=tenant_id,
                actor=actor,
                action=f"campaign_{action}",
                created_at=utcnow(),
                detail={"campaign_id": campaign_id, "from": row.state, "to": new},
            )
        )
    return new


def pause(engine: Engine, tenant_id: int, campaign_id: int, actor: str) -> str:
    return _transition(
        engine,
        tenant_id,
        campaign_id,
        (C.PLANNING, C.SENDING, C.SCHEDULED),
        C.PAUSED,
        actor,
        "pause",
    )


def cancel(engine: Engine, tenant_id: int, campaign_id: int, actor: str) -> str:
    return _transition(
        engine,
        tenant_id,
        campaign_id,
        (C.PLANNING, C.SENDING, C.SCHEDULED, C.PAUSED),
        C.CANCELLED,
        actor,
        "cancel",
    )


def resume(engine: Engine, publish: Publish, tenant_id: int, campaign_id: int, actor: str) -> str:
    """Resume a paused campaign and hand its queued rows to ``publish`` (send batches)."""
    state = _transition(engine, tenant_id, campaign_id, (C.PAUSED,), None, actor, "resume")
    with engine.connect() as conn:
        ids = list(
            conn.scalars(
                select(d.id).where(d.campaign_id == campaign_id, d.state == S.QUEUED).order_by(d.id)
            )
        )
    publish(campaign_id, ids)
    return state
