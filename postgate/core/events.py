"""``event.v1``: what the engine tells the CRM about every delivery outcome and every
feedback event of a tenant, as one versioned document.

An event's ``id`` is a UUID derived from what happened (the delivery, its attempt, the
feedback event's key), so the same fact written twice is one event, and a consumer that
sees an id again (delivery is at least once) can drop it. ``seq`` orders a tenant's
stream: a cursor for ``GET /v1/events?after=``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "event.v1"
NAMESPACE = uuid.UUID("5b0b8f6e-3f1c-4b8e-9a53-2f7a1c9d6e40")


class EventType(StrEnum):
    SENT = "delivery.sent"  # the receiving server (or SMS gateway) took it
    DEFERRED = "delivery.deferred"  # a temporary failure: tried again later
    FAILED = "delivery.failed"  # given up: a permanent refusal or out of time
    DELIVERED = "delivery.delivered"  # an SMS delivery report said delivered
    BOUNCE = "feedback.bounce"
    COMPLAINT = "feedback.complaint"
    UNSUBSCRIBE = "feedback.unsubscribe"
    STOP = "feedback.stop"  # an SMS opt-out reply
    START = "feedback.start"  # an SMS reply taking the opt-out back
    DELAY = "feedback.delay"  # a DSN saying the mail is still being tried
    AUTO_REPLY = "feedback.auto_reply"


def feedback_type(kind: str) -> EventType | None:
    """The event type of a feedback kind; None for what is never told (``unknown``)."""
    try:
        return EventType(f"feedback.{kind}")
    except ValueError:
        return None


def event_id(key: str) -> str:
    """The stable id of the fact ``key`` names (e.g. ``sent:<delivery>:<attempt>``)."""
    return str(uuid.uuid5(NAMESPACE, key))


def routing_key(tenant: str, type_: str) -> str:
    """The event exchange's routing key: bind ``acme.#`` for one tenant's events,
    ``*.feedback.complaint`` for one type of everyone's."""
    return f"{tenant}.{type_}"


def document(
    *,
    event_id: str,
    seq: int,
    type_: str,
    tenant: str,
    channel: str,
    occurred_at: datetime,
    campaign_id: int | None,
    campaign_external_id: str | None,
    delivery_id: int | None,
    recipient: str,
    detail: dict[str, Any],
) -> dict[str, Any]:
    """One event as it is published, posted and listed."""
    return {
        "schema": SCHEMA,
        "id": event_id,
        "seq": seq,
        "type": type_,
        "tenant": tenant,
        "channel": channel,
        "campaign_id": campaign_id,
        "campaign_external_id": campaign_external_id,
        "delivery_id": delivery_id,
        "recipient": recipient,
        "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
        "detail": detail,
    }


class EventV1(BaseModel):
    """``event.v1`` as a schema (``postgate schema event.v1``): what a consumer may rely on."""

    model_config = ConfigDict(extra="forbid", title="event.v1")
    schema_: Literal["event.v1"] = Field(alias="schema")
    id: str = Field(description="stable across repeats: drop an id seen before")
    seq: int = Field(ge=1, description="the tenant stream's order; the cursor of GET /v1/events")
    type: EventType
    tenant: str = Field(description="the tenant's slug")
    channel: Literal["email", "sms"]
    campaign_id: int | None = Field(description="postgate's id of the campaign")
    campaign_external_id: str | None = Field(description="the tenant's own campaign id")
    delivery_id: int | None = Field(description="one recipient of one campaign")
    recipient: str = Field(description="the address or E.164 number (a hash once erased)")
    occurred_at: str = Field(description="RFC 3339, UTC")
    detail: dict[str, Any] = Field(
        description="by type: code, error, reason (delivery.failed/deferred); hard, status, "
        "reason, source, suppressed (feedback.*); provider, segments (SMS)"
    )


def json_schema() -> dict[str, Any]:
    return EventV1.model_json_schema(by_alias=True)
