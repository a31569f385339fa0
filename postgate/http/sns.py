"""Amazon SES notifications delivered by SNS: ``POST /v1/webhooks/ses``.

Subscribe the route (over https) to the SNS topics your SES configuration sets publish
to, and list those topics in ``SES_SNS_TOPICS``; anything from another topic is refused,
as is any message whose SNS signature does not verify against the certificate at its
``SigningCertURL`` (fetched only from ``SNS_HOSTS``, cached; see ``feedback.sns``).
Refusals answer 403 (400 for a body that is not an SNS message) and are counted in
``postgate_sns_refused_total{reason}``; when the certificate host cannot be reached the
answer is 503 and SNS delivers again later, so nothing is lost.

- ``SubscriptionConfirmation``: confirmed by a GET to its ``SubscribeURL``, only when that
  URL is on an allowed host too.
- ``UnsubscribeConfirmation``: logged for the operator, not followed.
- ``Notification``: its ``Message`` (the SES JSON) is a bounce, complaint or delay for the
  delivery our own reference in it names, stored exactly once like mailed feedback;
  Delivery, Send, Open and Click notifications are ignored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request

from postgate.core.clock import utcnow
from postgate.feedback import apply as feedback_store
from postgate.feedback import sns
from postgate.feedback.sns_certs import TIMEOUT_S, Certificates, CertificateUnavailable
from postgate.observability.metrics import SNS_REFUSED, SNS_REQUESTS
from postgate.runtime.announce import announce
from postgate.settings import Settings

log = logging.getLogger("postgate.feedback")
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
MAX_BODY = 512 * 1024  # SNS messages are at most 256 KiB, plus the envelope
CERTIFICATES = Certificates()


def _refuse(reason: str, status: int, message: str, topic: str = "-") -> HTTPException:
    SNS_REFUSED.labels(reason).inc()
    log.warning("SNS delivery refused (%s) topic=%s: %s", reason, topic, message)
    return HTTPException(status, message)


@router.post("/ses")
async def receive(request: Request) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    if not settings.ses_sns_topics:
        raise HTTPException(404, "SES notifications over SNS are not configured (SES_SNS_TOPICS)")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise _refuse("malformed", 413, f"body larger than {MAX_BODY} bytes")
    try:
        env = sns.envelope(body)
    except sns.SnsError as exc:
        raise _refuse(exc.reason, 400 if exc.reason == "malformed" else 403, str(exc)) from None
    if env.topic_arn not in settings.ses_sns_topics:
        raise _refuse("topic", 403, "not a topic this service subscribed to", env.topic_arn)
    try:
        certificate = await asyncio.to_thread(CERTIFICATES.get, env.cert_url, settings.sns_hosts)
    except sns.SnsError as exc:
        raise _refuse(exc.reason, 403, str(exc), env.topic_arn) from None
    except CertificateUnavailable as exc:
        raise _refuse("unavailable", 503, f"signing certificate unavailable: {exc}") from None
    if not sns.verify(env, certificate):
        raise _refuse("signature", 403, "the SNS signature does not verify", env.topic_arn)
    if env.type == "SubscriptionConfirmation":
        return await _confirm(settings, env)
    if env.type == "UnsubscribeConfirmation":
        log.warning("OPERATOR: SNS topic %s unsubscribed this endpoint", env.topic_arn)
        SNS_REQUESTS.labels(env.type, "unsubscribed").inc()
        return {"unsubscribed": True}
    if sns.ignored(env.message):
        SNS_REQUESTS.labels(env.type, "ignored").inc()
        return {"applied": 0, "duplicate": 0, "ignored": 1}
    return await asyncio.to_thread(_apply, request.app.state.engine, settings, env, body)


async def _confirm(settings: Settings, env: sns.Envelope) -> dict[str, Any]:
    if not sns.allowed_url(env.subscribe_url, settings.sns_hosts):
        raise _refuse(
            "subscribe_host", 403, "SubscribeURL is not on an allowed host", env.topic_arn
        )

    def get() -> int:
        with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False) as http:
            return http.get(env.subscribe_url).status_code

    try:
        status = await asyncio.to_thread(get)
    except httpx.HTTPError as exc:
        log.warning("SNS subscription to %s not confirmed: %s", env.topic_arn, exc)
        raise HTTPException(
            502, "could not reach SubscribeURL; send the confirmation again"
        ) from None
    if status != 200:
        log.warning("SNS subscription to %s not confirmed: HTTP %s", env.topic_arn, status)
        raise HTTPException(502, f"SubscribeURL answered {status}")
    log.warning("OPERATOR: SNS subscription to %s confirmed", env.topic_arn)
    SNS_REQUESTS.labels(env.type, "confirmed").inc()
    return {"confirmed": True}


def _apply(engine: Any, settings: Settings, env: sns.Envelope, body: bytes) -> dict[str, int]:
    fb = sns.feedback(env.message, settings.keys)
    applied = feedback_store.apply(engine, settings, fb, body, "sns", utcnow())
    result = "applied" if applied.new else "duplicate"
    SNS_REQUESTS.labels(env.type, result).inc()
    if applied.tripped and applied.tenant_id is not None:
        announce(settings, applied.tenant_id)
    return {"applied": int(applied.new), "duplicate": int(not applied.new), "ignored": 0}
