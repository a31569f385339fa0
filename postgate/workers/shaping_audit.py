"""Traffic-shaping automations in the audit log, where the operator page shows them: one
entry per action a sender starts (``actor`` shaping, ``action`` shaping_slow,
shaping_suspend or shaping_suspend_tenant), naming the provider group, the rule, the
reply that set it off and until when it holds. A tenant suspended on a group is the
entry's tenant; a group-wide action belongs to no tenant and names whose mail got the
reply."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, insert

from postgate.core.clock import utcnow
from postgate.core.shaping import Action
from postgate.providers.shaper import Started
from postgate.store import tables as t


def entry(started: Started, tenant_id: int | None) -> dict[str, object]:
    action = started.action
    return {
        "tenant_id": tenant_id if action.action is Action.SUSPEND_TENANT else None,
        "actor": "shaping",
        "action": f"shaping_{action.action.value}",
        "detail": {
            "group": started.group,
            "key": action.key,
            "rule": action.rule,
            "tenant": started.tenant,
            "domain": started.domain,
            "reply": f"{started.code} {started.reply}"[:500],
            "until": datetime.fromtimestamp(action.until, UTC).isoformat(),
            **({"factor": action.factor} if action.action is Action.SLOW else {}),
            # what the operator page's audit panel shows
            "scope": f"provider group {started.group}",
            "reason": (
                f"rule {action.rule} after {started.code} {started.reply}"[:300]
                + f" from {started.domain} ({started.tenant or 'no tenant'}), until "
                + datetime.fromtimestamp(action.until, UTC).strftime("%H:%M UTC")
            ),
        },
        "created_at": utcnow(),
    }


class ShapingAudit:
    def __init__(self, engine: Engine, tenant_ids: Callable[[], dict[str, int]]) -> None:
        self.engine = engine
        self.tenant_ids = tenant_ids  # slug -> id, of the tenants this sender knows

    async def __call__(self, started: Started) -> None:
        row = entry(started, self.tenant_ids().get(started.tenant))
        await asyncio.to_thread(self._write, row)

    def _write(self, row: dict[str, object]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(t.audit_log).values(**row))
