"""Daily counters taken against a cap, shared by every sender: a warming domain's or
source address's turns per provider group and UTC day (``warmup_day``, ``source_day``).
The count is taken before a message is sent, in one transaction, so two senders can
never both take the day's last turn."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table, and_, select, update

from postgate.store.dialect import insert_ignore


def take(engine: Engine, table: Table, key: dict[str, Any], want: int, cap: int) -> int:
    """Take up to ``want`` turns of the row ``key`` (its ``sent`` under ``cap``); how many
    were granted. The row is created at 0 the first time."""
    where = and_(*(table.c[name] == value for name, value in key.items()))
    with engine.begin() as conn:
        insert_ignore(conn, table, [key | {"sent": 0}], tuple(key))
        used = conn.scalar(select(table.c.sent).where(where).with_for_update()) or 0
        granted = max(0, min(want, cap - int(used)))
        if granted:
            conn.execute(update(table).where(where).values(sent=table.c.sent + granted))
    return granted
