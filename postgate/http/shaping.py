"""Traffic shaping for operators (operator keys only):

- ``GET /v1/operator/shaping``  the shaping file's provider groups and their limits, and
  the automations in force (slowed or suspended groups, tenants suspended on a group),
  each with the rule that set it and when it lapses
- ``GET /v1/operator/sources``  the source addresses (``MX_SOURCES``) senders have
  enrolled: each one's warm-up state and stage, today's cap per provider group and use

The automations are read from the senders' shared state in Redis (``REDIS_URL``); without
Redis each sender keeps its own and this lists none (``shared`` false): the audit log has
every one of them either way.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from postgate.core.clock import utcnow
from postgate.http.auth import Operator
from postgate.platform import source_warmup
from postgate.providers import shaping_file
from postgate.providers.shaper import throttle_for
from postgate.providers.throttle import Unavailable

router = APIRouter(prefix="/v1/operator", tags=["traffic shaping"])


@router.get("/shaping")
async def shaping(request: Request, operator: Operator) -> dict[str, Any]:
    settings = request.app.state.settings
    try:
        loaded = shaping_file.load(settings.shaping_file)
    except shaping_file.ShapingError as exc:
        raise HTTPException(503, str(exc)) from None
    actions: list[dict[str, Any]] = []
    if settings.redis_url:
        throttle = throttle_for(settings)
        try:
            active = await throttle.active()
        except Unavailable as exc:
            raise HTTPException(503, str(exc)) from None
        finally:
            await throttle.close()
        actions = [
            {
                "key": a.key,
                "group": a.key.partition("/")[0],
                "action": a.action.value,
                "rule": a.rule,
                "tenant": a.tenant or None,
                "factor": a.factor if a.action.value == "slow" else None,
                "until": datetime.fromtimestamp(a.until, UTC).isoformat(),
            }
            for a in active
        ]
    return {
        "shared": bool(settings.redis_url),
        "groups": {
            name: {
                "mx": group.mx,
                "connections": group.connections,
                "messages_per_connection": group.messages_per_connection,
                "per_minute": group.per_minute,
                "per_hour": group.per_hour,
                "tenant_share": group.tenant_share,
            }
            for name, group in loaded.groups.items()
        },
        "actions": actions,
    }


@router.get("/sources")
async def sources(request: Request, operator: Operator) -> dict[str, Any]:
    settings, engine = request.app.state.settings, request.app.state.engine

    def read() -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return source_warmup.status(conn, settings, utcnow())

    return {"sources": await asyncio.to_thread(read)}
