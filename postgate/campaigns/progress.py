"""How far a campaign has got: its delivery rows counted by state.

``tally`` is pure (state counts in, a ``Progress`` out); ``read`` and ``read_many`` count
the rows with one grouped query. The operator page and ``postgate campaign status
--follow`` both show these numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from postgate.core.states import CampaignState as C
from postgate.core.states import DeliveryState as S
from postgate.store import tables as t

c, d = t.campaign.c, t.delivery.c
TERMINAL_CAMPAIGN = frozenset({C.FINISHED, C.CANCELLED, C.REJECTED})
IN_FLIGHT = (C.PLANNING, C.SENDING, C.PAUSED)


@dataclass(frozen=True, slots=True)
class Progress:
    campaign_id: int
    external_id: str
    state: str
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    cancelled: int = 0
    held: int = 0
    open: int = 0  # queued, sending or deferred: still to be tried

    @property
    def total(self) -> int:
        return self.sent + self.blocked + self.failed + self.cancelled + self.held + self.open

    @property
    def done(self) -> int:
        """Rows that reached a final state."""
        return self.sent + self.blocked + self.failed + self.cancelled

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_CAMPAIGN

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0


def tally(campaign_id: int, external_id: str, state: str, counts: Mapping[str, int]) -> Progress:
    """Fold row counts by delivery state into a ``Progress``."""
    return Progress(
        campaign_id,
        external_id,
        state,
        sent=counts.get(S.SENT, 0),
        blocked=counts.get(S.BLOCKED, 0),
        failed=counts.get(S.FAILED, 0),
        cancelled=counts.get(S.CANCELLED, 0),
        held=counts.get(S.HELD, 0),
        open=sum(counts.get(s, 0) for s in (S.QUEUED, S.SENDING, S.DEFERRED)),
    )


def read_many(conn: Connection, campaign_ids: Iterable[int]) -> dict[int, Progress]:
    ids = list(campaign_ids)
    if not ids:
        return {}
    heads = {
        r.id: r for r in conn.execute(select(c.id, c.external_id, c.state).where(c.id.in_(ids)))
    }
    counts: dict[int, dict[str, int]] = {i: {} for i in heads}
    for campaign_id, state, n in conn.execute(
        select(d.campaign_id, d.state, func.count())
        .where(d.campaign_id.in_(list(heads)))
        .group_by(d.campaign_id, d.state)
    ):
        counts[campaign_id][state] = int(n)
    return {i: tally(i, heads[i].external_id, heads[i].state, counts[i]) for i in heads}


def read(conn: Connection, campaign_id: int) -> Progress | None:
    return read_many(conn, [campaign_id]).get(campaign_id)
