"""The HTTP service, assembled from routers that live with their domain."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from postgate.campaigns.gauges import PipelineGauges
from postgate.http import campaigns as campaign_api
from postgate.http import consent as consent_api
from postgate.http import data as data_api
from postgate.http import platform as platform_api
from postgate.http.content_policy import router as policy_router
from postgate.http.domains import router as domain_router
from postgate.http.kill_switch import router as kill_switch_router
from postgate.http.shaping import router as shaping_router
from postgate.http.sms_callbacks import router as sms_callbacks
from postgate.http.sns import router as sns_router
from postgate.http.webhooks import router as webhooks_router
from postgate.observability.export import exposition
from postgate.operator_page import routes as operator_page
from postgate.pages import routes as visitor_pages
from postgate.runtime.broker import QUEUES, Broker
from postgate.settings import Settings, get_settings
from postgate.store.db import engine_for
from postgate.tenants.reputation_gauges import BreakerGauges


class RefuseNulInUrl:
    """No route can look up or store a NUL (PostgreSQL text refuses it): a URL whose path
    or query carries one gets a 400 before any route sees it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = (
                bytes(scope.get("raw_path") or b"") + b"?" + bytes(scope.get("query_string") or b"")
            )
            if b"%00" in raw or b"\x00" in raw or "\x00" in scope.get("path", ""):
                reply = JSONResponse({"detail": "a URL may not contain NUL (%00)"}, 400)
                await reply(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Our own 422s say why in words; shape them like FastAPI's validation errors so every
    422 the api sends matches the one schema it publishes for 422."""
    if exc.status_code == 422 and isinstance(exc.detail, str):
        detail = [{"loc": ["body"], "msg": exc.detail, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422, headers=exc.headers)
    return await http_exception_handler(request, exc)


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, written as ASCII JSON: the errors quote the input, and a lone
    surrogate in it (valid in JSON, not in UTF-8) must not turn the answer into a 500."""
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True, default=str)
    return Response(body, status_code=422, media_type="application/json")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.require_secret()  # MissingSecret: the api never signs with a guessable key
    app = FastAPI(title="postgate", version="0.1.0")
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_middleware(RefuseNulInUrl)
    engine = engine_for(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    platform_api.install(app)  # /v1/me, provisioning, contacts, suppressions, results
    consent_api.install(app)
    campaign_api.install(app)
    data_api.install(app)
    app.include_router(kill_switch_router)
    app.include_router(shaping_router)
    app.include_router(sns_router)  # before /v1/webhooks/{provider}
    app.include_router(webhooks_router)
    app.include_router(sms_callbacks)
    app.include_router(domain_router)
    app.include_router(policy_router)
    operator_page.install(app)
    visitor_pages.install(app)
    platform_api.tag_scopes(app)
    gauges = PipelineGauges(engine, _broker_depth(settings))
    breaker_gauges = BreakerGauges(engine, settings)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(exposition([gauges, breaker_gauges]), media_type=CONTENT_TYPE_LATEST)

    return app


def _broker_depth(settings: Settings) -> Callable[[], dict[str, int]] | None:
    """Queue depths from a shared broker (an in-process one holds nothing of the workers')."""
    if settings.broker_url.startswith("memory://"):
        return None

    def depth() -> dict[str, int]:
        broker = Broker(settings.broker_url, settings.queue_prefix)
        try:
            return {name: broker.depth(name) for name in QUEUES}
        finally:
            broker.close()

    return depth
