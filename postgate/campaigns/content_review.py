"""Reviewing a campaign's content when it is accepted, and recording the verdict.

The templates are compiled and rendered once with sample values in the same limited
sandbox the sender uses, so a template that cannot render is refused at the door
(dead-lettered with the reason) instead of failing at send time; then the content
policy reads both the templates and that rendering.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import Connection, insert

from postgate.core import content_policy, lexicon
from postgate.core.content_policy import Verdict
from postgate.core.message import CampaignV1, MessageError
from postgate.core.rendering import HTML_ENV, TEXT_ENV
from postgate.observability.metrics import CONTENT_CHECK_SECONDS, CONTENT_MATCHES, CONTENT_VERDICTS
from postgate.store import tables as t

log = logging.getLogger("postgate.content")
ACTOR = "content_policy"
SAMPLE: dict[str, Any] = {"name": "", "email": "", "contact": {}, "unsubscribe_url": ""}


def sample_render(subject: str, text: str, html: str) -> list[str]:
    """Each template rendered with empty personalisation, or MessageError saying why not."""
    out = []
    for part, env, source in (
        ("subject", TEXT_ENV, subject),
        ("text", TEXT_ENV, text),
        ("html", HTML_ENV, html),
    ):
        try:
            out.append(env.from_string(source).render(SAMPLE) if source else "")
        except MessageError as exc:
            raise MessageError(f"content.{part}: {exc}") from None
        except TemplateError as exc:
            raise MessageError(f"content.{part}: template error: {exc}") from None
        except Exception as exc:  # a template that raises at render (1/0, bad filter args)
            raise MessageError(f"content.{part}: template fails to render: {exc!r}") from None
    return out


def review(msg: CampaignV1, lexicon_dir: str = "") -> Verdict:
    started = time.perf_counter()
    c = msg.content
    rendered = sample_render(c.subject, c.text, c.html)
    verdict = content_policy.check(lexicon.load(lexicon_dir), c.subject, c.text, c.html, rendered)
    CONTENT_CHECK_SECONDS.observe(time.perf_counter() - started)
    return verdict


def record(
    conn: Connection, tenant_id: int, msg: CampaignV1, campaign_id: int, verdict: Verdict
) -> None:
    """Count the verdict and, when it is not a plain allow, write it to the audit log."""
    CONTENT_VERDICTS.labels(msg.tenant, msg.channel.value, verdict.action).inc()
    for category in verdict.matches:
        CONTENT_MATCHES.labels(msg.tenant, category).inc()
    if verdict.action == content_policy.ALLOW:
        return
    action = "campaign_blocked" if verdict.blocked else "campaign_flagged"
    conn.execute(
        insert(t.audit_log).values(
            tenant_id=tenant_id,
            actor=ACTOR,
            action=action,
            detail={
                "campaign_id": campaign_id,
                "external_id": msg.campaign_id,
                **verdict.as_json(),
            },
        )
    )
    log.warning(
        "tenant=%s campaign=%s %s by content policy: %s",
        msg.tenant,
        msg.campaign_id,
        "blocked" if verdict.blocked else "flagged",
        verdict.summary(),
    )
