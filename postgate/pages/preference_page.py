"""The preference centre's page and its buttons (``/u/{token}``): leave a topic, leave
everything, or ask for a confirmation link to subscribe to a topic again."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from postgate.consent import preferences, signup
from postgate.core import i18n
from postgate.core.clock import aware, utcnow
from postgate.observability.metrics import CONSENT_EVENTS
from postgate.pages import views
from postgate.pages.render import locale_for, page, words
from postgate.runtime.broker import Broker
from postgate.settings import Settings
from postgate.tenants import brand


def _visitor(request: Request) -> signup.Visitor:
    host = request.client.host if request.client else ""
    return signup.Visitor(host, request.headers.get("user-agent", "")[:500])


def show(request: Request, token: str, notice: str = "", done: bool = False) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    engine = request.app.state.engine
    who = preferences.subscriber(engine, settings.keys, token)
    if who is None:
        return views.invalid_link(request, "unsubscribe")
    with engine.connect() as conn:
        shown = brand.load(conn, who.tenant_id)
        locale = locale_for(request, shown.locale)
        states = preferences.topics(conn, who, shown.allow_resubscribe)
        names = brand.topics(conn, who.tenant_id, [s.slug for s in states], locale)
        blocked = preferences.suppressed(conn, who) is not None
    _ = words(locale)
    subscribed = [s for s in states if s.subscribed]
    others = [s for s in states if not s.subscribed]
    since = {
        s.slug: i18n.date_text(aware(s.since), locale, shown.time_zone)
        for s in states
        if s.since is not None
    }
    title = _("Unsubscribed") if done else _("Your subscriptions")
    return page(
        locale,
        "preferences.html",
        shown,
        title,
        subscribed=subscribed,
        others=others,
        names=names,
        since=since,
        address=who.address,
        channel=who.channel,
        notice=notice,
        blocked=blocked,
        done=done,
        action=f"/u/{token}",
    )


def unsubscribed(request: Request, token: str) -> HTMLResponse:
    return show(request, token, done=True)


def _publish(settings: Settings, batch: dict[str, Any]) -> None:
    broker = Broker(settings.broker_url, settings.queue_prefix)
    try:
        broker.publish("send", batch)
    finally:
        broker.close()


async def change(request: Request, token: str, body: bytes) -> Response:
    settings: Settings = request.app.state.settings
    engine = request.app.state.engine
    try:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), max_num_fields=5).items()}
    except (UnicodeDecodeError, ValueError):
        return views.error_page(request, 400)
    who = await asyncio.to_thread(preferences.subscriber, engine, settings.keys, token)
    if who is None:
        return views.invalid_link(request, "unsubscribe")
    action, topic = form.get("action", ""), form.get("topic", "")[:100]
    caller, now = _visitor(request), utcnow()
    with engine.connect() as conn:
        shown = brand.load(conn, who.tenant_id)
        locale = locale_for(request, shown.locale)
        name = brand.topic(conn, who.tenant_id, topic, locale).name if topic else ""
    _ = words(locale)
    if action == "leave_all":
        await asyncio.to_thread(
            preferences.leave_all, engine, settings.keys, token, who, caller, now
        )
        CONSENT_EVENTS.labels(who.tenant_slug, "unsubscribed").inc()
        return await asyncio.to_thread(unsubscribed, request, token)
    if action == "leave":
        left = await asyncio.to_thread(preferences.leave, engine, who, topic, caller, now)
        if left:
            CONSENT_EVENTS.labels(who.tenant_slug, "topic_left").inc()
        notice = _("You will get no more messages about %(topic)s.", topic=name)
        return await asyncio.to_thread(show, request, token, notice)
    if action == "join" and shown.allow_resubscribe:
        form_row = await asyncio.to_thread(preferences.rejoin_form, engine, who, topic)
        if form_row is not None:
            email = who.address if who.channel == "email" else None
            phone = who.address if who.channel == "sms" else None
            result = await asyncio.to_thread(
                signup.submit,
                engine,
                settings,
                form_row,
                signup.Applicant(email, phone, ""),
                [who.channel],
                caller,
                now,
                locale,
            )
            for batch in result.batches:
                await asyncio.to_thread(_publish, settings, batch)
            CONSENT_EVENTS.labels(who.tenant_slug, "signup").inc()
            # the same words whether or not a link went out (24 h limit, suppression)
            notice = _(
                "We sent a confirmation link to %(address)s. Open it to subscribe "
                "to %(topic)s again.",
                address=who.address,
                topic=name,
            )
            return await asyncio.to_thread(show, request, token, notice)
    return await asyncio.to_thread(show, request, token, "")
