"""The ``campaign.v1`` queue message: the one way campaigns enter postgate.

A producer publishes JSON to the ``<prefix>.campaigns`` queue. Anything that is not
a valid ``campaign.v1`` document raises :class:`MessageError` with a reason an
operator can read; the runner moves the message to the dead-letter queue.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from postgate.core import send_window
from postgate.core.headers import validate
from postgate.core.params import Line, Text
from postgate.core.sms import quiet_hours
from postgate.core.sms.addressing import sender_id
from postgate.core.states import Channel, Kind

SCHEMA_VERSION = "campaign.v1"


class MessageError(ValueError):
    """A queue message that cannot be processed; the text says why."""


class Content(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: Text = Field(default="", max_length=998)  # line breaks are folded when rendered
    text: Text = Field(default="", max_length=500_000)
    html: Text = Field(default="", max_length=500_000)


class Sender(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    name: Text = Field(default="", max_length=200)


class SmsOptions(BaseModel):
    """SMS campaigns only: sender id, encoding policy and the most parts one SMS may take."""

    model_config = ConfigDict(extra="forbid")
    sender: str | None = Field(default=None, max_length=16)
    policy: Literal["unicode", "transliterate"] = "unicode"
    max_parts: int = Field(default=6, ge=1, le=10)

    @model_validator(mode="after")
    def _sender_is_valid(self) -> SmsOptions:
        if self.sender is not None:
            sender_id(self.sender)  # AddressError is a ValueError: a validation error
        return self


class SendWindowSpec(BaseModel):
    """Deliver only between ``hours`` in each recipient's local time (``core/send_window``);
    ``zone`` stands for recipients whose own zone is unknown."""

    model_config = ConfigDict(extra="forbid")
    hours: str = Field(max_length=20, description="HH:MM-HH:MM, e.g. 09:00-17:00")
    zone: str = Field(default="Europe/Budapest", max_length=64, description="an IANA zone")

    @model_validator(mode="after")
    def _readable(self) -> SendWindowSpec:
        send_window.SendWindow(quiet_hours.window(self.hours), send_window.check_zone(self.zone))
        return self  # WindowError is a ValueError: a validation error


class CampaignV1(BaseModel):
    """Schema of a campaign message. ``campaign_id`` is the idempotency key per tenant."""

    model_config = ConfigDict(extra="forbid")
    version: Literal["campaign.v1"]
    tenant: Line = Field(min_length=1, max_length=100)
    campaign_id: Line = Field(min_length=1, max_length=200)
    channel: Channel
    kind: Kind
    topic: Line = Field(min_length=1, max_length=100)
    audience: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(min_length=1, max_length=1000)
    content: Content
    sender: Sender | None = Field(default=None, alias="from")
    sms: SmsOptions | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    schedule_at: datetime | None = None
    send_window: SendWindowSpec | None = None

    @field_validator("headers")
    @classmethod
    def _headers_allowed(cls, value: dict[str, str]) -> dict[str, str]:
        return dict(validate(value))

    @model_validator(mode="after")
    def _content_fits_channel(self) -> CampaignV1:
        if self.channel is Channel.EMAIL:
            if not self.content.subject.strip():
                raise ValueError("email content needs a subject")
            if not (self.content.text.strip() or self.content.html.strip()):
                raise ValueError("email content needs text or html")
            if self.sms is not None:
                raise ValueError("'sms' options are for sms campaigns")
        elif not self.content.text.strip():
            raise ValueError("sms content needs text")
        if self.schedule_at is not None and self.schedule_at.tzinfo is None:
            raise ValueError("schedule_at needs a timezone offset")
        return self


def parse_campaign(body: bytes | str, max_bytes: int) -> CampaignV1:
    """Decode and validate a raw queue body, or raise :class:`MessageError`."""
    return parse_versioned(body, max_bytes, CampaignV1, SCHEMA_VERSION)


M = TypeVar("M", bound=BaseModel)


def parse_versioned(
    body: bytes | str, max_bytes: int, model: type[M], version: str, max_problems: int = 0
) -> M:
    """A versioned JSON queue message (``campaign.v1``, ``contacts.v1``...) decoded and
    validated, or :class:`MessageError` saying why (at most ``max_problems`` field errors
    when that is set)."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > max_bytes:
        raise MessageError(f"payload too large: {len(raw)} bytes > {max_bytes}")
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("message must be a JSON object")
    found = data.get("version")
    if found != version:
        raise MessageError(f"unknown version {found!r}; expected {version!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()[:max_problems] if max_problems else exc.errors()
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(message)'}: {err['msg']}" for err in errors
        )
        raise MessageError(f"invalid {version}: {problems}") from None


def json_schema() -> dict[str, Any]:
    return CampaignV1.model_json_schema(by_alias=True)
