"""The ``contacts.v1`` message: the CRM's contacts, their list memberships and consents.

Published to the ``<prefix>.contacts`` queue or posted to ``POST /v1/contacts:bulk``.
A document that is not valid ``contacts.v1`` raises :class:`MessageError` (the runner
dead-letters it with the reason, the api answers 422). What the consent rules refuse
for one contact (a forbidden source, the 6-month hygiene, an address that is not one)
drops that contact only, and the sync report says why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postgate.core.message import parse_versioned
from postgate.core.params import Line, Text
from postgate.core.send_window import ZONE_ATTRIBUTE, known_zone

SCHEMA_VERSION = "contacts.v1"
MAX_CONTACTS = 1000
Scalar = str | int | float | bool | None


class ConsentIn(BaseModel):
    """A consent the CRM holds proof of. ``source`` and ``evidence`` are the provenance;
    the rules of list imports apply (``purchased``, ``rented``, ``other_company`` are
    refused; a ``purchase`` needs ``purchase_date`` and a ticked ``marketing_checkbox``)."""

    model_config = ConfigDict(extra="forbid")
    channel: Literal["email", "sms"]
    topic: Line = Field(min_length=1, max_length=100)
    source: Line = Field(
        min_length=1, max_length=40, description="signup_form | written_consent | purchase | event"
    )
    consented_at: datetime = Field(description="when the person agreed (with an offset)")
    evidence: Text = Field(min_length=1, max_length=500, description="where the proof is kept")
    purchase_date: datetime | None = None
    marketing_checkbox: bool | None = None

    @field_validator("consented_at", "purchase_date")
    @classmethod
    def _offset(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("a time needs a timezone offset")
        return value


class ContactIn(BaseModel):
    """One contact, keyed by the CRM's own id. Fields left out stay as they are; ``lists``
    (when given) is the whole set of the tenant's lists the contact is on afterwards."""

    model_config = ConfigDict(extra="forbid")
    external_id: Line = Field(min_length=1, max_length=200, description="the CRM's contact id")
    email: Line | None = Field(default=None, max_length=320)
    phone: Line | None = Field(default=None, max_length=40)
    name: Line | None = Field(default=None, max_length=200)
    attributes: dict[Annotated[str, Field(max_length=100)], Scalar] | None = Field(
        default=None, max_length=50, description="template values (contact.*), replaced whole"
    )
    last_activity_at: datetime | None = None
    lists: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        default=None, max_length=1000
    )
    consents: list[ConsentIn] = Field(default_factory=list, max_length=50)

    @field_validator("attributes")
    @classmethod
    def _values(cls, value: dict[str, Scalar] | None) -> dict[str, Scalar] | None:
        for key, item in (value or {}).items():
            if isinstance(item, str) and (len(item) > 1000 or "\x00" in item):
                raise ValueError(f"attribute {key!r}: at most 1000 characters, no NUL")
            if "\x00" in key:
                raise ValueError("attribute names may not contain NUL")
        zone = (value or {}).get(ZONE_ATTRIBUTE)
        if zone is not None and not (isinstance(zone, str) and known_zone(zone)):
            raise ValueError(f"attribute {ZONE_ATTRIBUTE!r}: an IANA zone such as Europe/Budapest")
        return value

    @field_validator("last_activity_at")
    @classmethod
    def _offset(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("a time needs a timezone offset")
        return value


class ContactsV1(BaseModel):
    """Schema of a contacts message: up to 1000 contacts of one tenant."""

    model_config = ConfigDict(extra="forbid")
    version: Literal["contacts.v1"]
    tenant: Line = Field(min_length=1, max_length=100)
    batch_id: Line = Field(
        default="",
        max_length=200,
        description="the producer's name for this document; its report "
        "is found by it (GET /v1/contacts/syncs?batch_id=)",
    )
    contacts: list[ContactIn] = Field(min_length=1, max_length=MAX_CONTACTS)


def parse_contacts(body: bytes | str, max_bytes: int) -> ContactsV1:
    """Decode and validate a raw body, or raise :class:`MessageError` saying why."""
    return parse_versioned(body, max_bytes, ContactsV1, SCHEMA_VERSION, max_problems=20)


def json_schema() -> dict[str, Any]:
    return ContactsV1.model_json_schema(by_alias=True)
