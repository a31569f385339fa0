"""The HTTP service, assembled from routers that live with their domain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import select, text

from postgate import tables as t
from postgate.auth import Operator, Principal, authenticated
from postgate.db import engine_for
from postgate.delivery.domain_routes import router as domain_router
from postgate.delivery.pipeline_gauges import PipelineGauges
from postgate.delivery.policy_routes import router as policy_router
from postgate.metrics_export import exposition
from postgate.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="postgate", version="0.1.0")
    engine = engine_for(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/v1/me")
    def me(principal: Annotated[Principal, Depends(authenticated)]) -> dict[str, object]:
        return {"role": principal.role, "name": principal.name, "tenant": principal.tenant_slug}

    @app.get("/v1/operator/tenants")
    def tenants(operator: Operator) -> list[dict[str, object]]:
        with engine.connect() as conn:
            rows = conn.execute(select(t.tenant.c.slug, t.tenant.c.name, t.tenant.c.domain,
                                       t.tenant.c.status).order_by(t.tenant.c.slug)).all()
        return [dict(r._mapping) for r in rows]

    app.include_router(domain_router)
    app.include_router(policy_router)
    gauges = PipelineGauges(engine, _broker_depth(settings))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(exposition([gauges]), media_type=CONTENT_TYPE_LATEST)

    return app


def _broker_depth(settings: Settings) -> Callable[[], dict[str, int]] | None:
    """Queue depths from a shared broker (an in-process one holds nothing of the workers')."""
    if settings.broker_url.startswith("memory://"):
        return None

    def depth() -> dict[str, int]:
        from postgate.workers.broker import QUEUES, Broker

        broker = Broker(settings.broker_url, settings.queue_prefix)
        try:
            return {name: broker.depth(name) for name in QUEUES}
        finally:
            broker.close()

    return depth
