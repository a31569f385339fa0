"""Provisioning: the operator creates, changes, suspends and closes tenants and manages
their lists. Every change writes an audit record in the same transaction.

Closure is the platform's termination path (terms §10): sending stops for good (an
``all`` block of source ``closure``), the tenant's keys are revoked, its data stays
exportable (``delivery.export``) until the retention job erases it
``CLOSED_TENANT_DAYS`` after closure (``tenants.erasure``, run by ``workers.retention``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from postgate.core.breaker import ALL, BULK_EMAIL, BULK_SMS
from postgate.core.clock import aware
from postgate.core.params import Line
from postgate.core.sender_domains import DomainError, covering, normalise
from postgate.core.sms import quiet_hours
from postgate.core.states import BlockSource, CampaignState
from postgate.settings import Settings
from postgate.store import tables as t
from postgate.store.schema import metadata
from postgate.tenants import domains as domain_store
from postgate.tenants import sending as sending_blocks
from postgate.tenants.erasure import CLOSED_TENANT_DAYS

profile = metadata.tables["tenant_profile"]
tn, pc, ml = t.tenant.c, profile.c, t.mailing_list.c
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
LOCALE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
OPEN_CAMPAIGN = (
    CampaignState.SCHEDULED,
    CampaignState.PLANNING,
    CampaignState.SENDING,
    CampaignState.PAUSED,
)


class ProvisioningError(ValueError):
    """A request that cannot be carried out as asked; the text says why."""


class Conflict(ProvisioningError):
    """The request collides with what exists (a taken slug, a list still in use)."""


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_lists: int | None = Field(
        default=None, ge=0, le=1_000_000, description="lists the tenant may have; null: no limit"
    )
    max_contacts: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000_000,
        description="contacts a contact sync may bring the tenant to; null: no limit",
    )


class DefaultFrom(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    name: Line = Field(default="", max_length=200)


def send_windows(value: dict[str, str]) -> dict[str, str]:
    """SMS send windows as stored: regions upper-cased, each window checked."""
    try:
        return {region: str(w) for region, w in quiet_hours.windows(value).items()}
    except quiet_hours.WindowError as exc:
        raise ValueError(str(exc)) from None


class TenantSpec(BaseModel):
    """A new tenant. The slug names it in queue messages, api paths and the CLI."""

    model_config = ConfigDict(extra="forbid")
    slug: Line = Field(min_length=1, max_length=63, description="lower-case letters, digits, -")
    legal_name: Line = Field(min_length=1, max_length=200)
    domain: Line = Field(
        min_length=3, max_length=253, description="the primary sending domain (counts as verified)"
    )
    locale: Line = Field(default="en", max_length=35, description="e.g. hu-HU")
    default_from: DefaultFrom | None = None
    limits: Limits = Field(default_factory=Limits)
    sms_send_window: dict[str, str] = Field(
        default_factory=dict,
        description="promotional SMS send windows in the recipient's local time, ISO region "
        'or "*" -> "HH:MM-HH:MM" (empty: the platform\'s, 08:00-20:00 by default)',
    )

    @field_validator("sms_send_window")
    @classmethod
    def _window(cls, value: dict[str, str]) -> dict[str, str]:
        return send_windows(value)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("a slug is 1-63 lower-case letters, digits and inner hyphens")
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        try:
            return normalise(value)
        except DomainError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if not LOCALE.match(value):
            raise ValueError("a locale is a language tag such as 'hu' or 'hu-HU'")
        return value


class TenantPatch(BaseModel):
    """A change to a tenant; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")
    legal_name: Line | None = Field(default=None, min_length=1, max_length=200)
    domain: Line | None = Field(default=None, min_length=3, max_length=253)
    locale: Line | None = Field(default=None, max_length=35)
    default_from: DefaultFrom | None = None
    limits: Limits | None = None
    sms_send_window: dict[str, str] | None = None

    @field_validator("sms_send_window")
    @classmethod
    def _window(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else send_windows(value)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return None if value is None else TenantSpec._domain(value)

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        return None if value is None else TenantSpec._locale(value)


def audit(
    conn: Connection,
    tenant_id: int | None,
    actor: str,
    action: str,
    detail: dict[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        insert(t.audit_log).values(
            tenant_id=tenant_id, actor=actor, action=action, detail=detail, created_at=now
        )
    )


def tenant_id_of(conn: Connection, slug: str) -> int:
    tenant_id = conn.scalar(select(tn.id).where(tn.slug == slug))
    if tenant_id is None:
        raise LookupError(f"no tenant {slug!r}")
    return int(tenant_id)


def _check_from(
    conn: Connection, tenant_id: int | None, domain: str, sender: DefaultFrom | None
) -> None:
    if sender is None:
        return
    from postgate.tenants import domains as domain_store

    verified = domain_store.verified(conn, tenant_id) if tenant_id is not None else []
    sender_domain = str(sender.email).rsplit("@", 1)[1].lower()
    if covering(sender_domain, [domain, *verified]) is None:
        raise ProvisioningError(
            f"default From {sender.email} is not in the tenant's domain "
            f"{domain!r} or a verified one"
        )


def describe(conn: Connection, tenant_id: int) -> dict[str, Any]:
    """A tenant as the operator sees it."""
    row = conn.execute(
        select(
            tn.id,
            tn.slug,
            tn.name,
            tn.domain,
            tn.status,
            tn.status_reason,
            tn.created_at,
            tn.closed_at,
            pc.locale,
            pc.default_from_email,
            pc.default_from_name,
            pc.limits,
            pc.sms_send_window,
        )
        .outerjoin(profile, pc.tenant_id == tn.id)
        .where(tn.id == tenant_id)
    ).one()
    lists = conn.scalar(
        select(func.count()).select_from(t.mailing_list).where(ml.tenant_id == tenant_id)
    )
    closed = aware(row.closed_at) if row.closed_at else None
    return {
        "id": row.id,
        "slug": row.slug,
        "legal_name": row.name,
        "name": row.name,
        "domain": row.domain,
        "status": row.status,
        "status_reason": row.status_reason,
        "locale": row.locale or "en",
        "default_from": (
            {"email": row.default_from_email, "name": row.default_from_name}
            if row.default_from_email
            else None
        ),
        "limits": Limits.model_validate(row.limits or {}).model_dump(),
        "sms_send_window": row.sms_send_window or {},
        "lists": int(lists or 0),
        "created_at": aware(row.created_at).isoformat(),
        "closed_at": closed.isoformat() if closed else None,
        "purge_after": (closed + timedelta(days=CLOSED_TENANT_DAYS)).isoformat()
        if closed
        else None,
    }


def listing(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        ids = list(conn.scalars(select(tn.id).order_by(tn.slug)))
        return [describe(conn, tenant_id) for tenant_id in ids]


def show(engine: Engine, slug: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return describe(conn, tenant_id_of(conn, slug))


def create_tenant(
    engine: Engine, spec: TenantSpec, actor: str, now: datetime, settings: Settings
) -> dict[str, Any]:
    """Create the tenant with its profile, and its primary domain as a sender domain the
    operator vouches for (``tenants.domains.vouch``): its mail is DKIM-signed and its bulk
    waits for a passing authentication preflight. The answer's ``sender_domain`` lists the
    DKIM record(s) to publish."""
    try:
        with engine.begin() as conn:
            if conn.scalar(select(tn.id).where(tn.slug == spec.slug)) is not None:
                raise Conflict(f"tenant {spec.slug!r} exists already")
            _check_from(conn, None, spec.domain, spec.default_from)
            tenant_id = int(
                conn.execute(
                    insert(t.tenant)
                    .values(
                        slug=spec.slug,
                        name=spec.legal_name,
                        domain=spec.domain,
                        status="active",
                        status_reason="",
                        created_at=now,
                    )
                    .returning(tn.id)
                ).scalar_one()
            )
            conn.execute(
                insert(profile).values(
                    tenant_id=tenant_id,
                    locale=spec.locale,
                    default_from_email=str(spec.default_from.email) if spec.default_from else "",
                    default_from_name=spec.default_from.name if spec.default_from else "",
                    limits=spec.limits.model_dump(),
                    sms_send_window=spec.sms_send_window,
                    updated_at=now,
                )
            )
            audit(conn, tenant_id, actor, "tenant.create", spec.model_dump(mode="json"), now)
            primary = domain_store.vouch(conn, settings, tenant_id, spec.domain, now)
            return describe(conn, tenant_id) | {"sender_domain": domain_store.describe(primary)}
    except IntegrityError:  # created concurrently under the same slug
        raise Conflict(f"tenant {spec.slug!r} exists already") from None


def update_tenant(
    engine: Engine, slug: str, patch: TenantPatch, actor: str, now: datetime, settings: Settings
) -> dict[str, Any]:
    changes = patch.model_dump(mode="json", exclude_unset=True)
    with engine.begin() as conn:
        tenant_id = tenant_id_of(conn, slug)
        before = describe(conn, tenant_id)
        if before["closed_at"]:
            raise Conflict(f"tenant {slug!r} is closed")
        domain = patch.domain or before["domain"]
        sender = (
            patch.default_from
            if "default_from" in patch.model_fields_set
            else (
                DefaultFrom.model_validate(before["default_from"])
                if before["default_from"]
                else None
            )
        )
        _check_from(conn, tenant_id, domain, sender)
        values: dict[str, Any] = {}
        if patch.legal_name is not None:
            values["name"] = patch.legal_name
        if patch.domain is not None:
            values["domain"] = patch.domain
            domain_store.vouch(conn, settings, tenant_id, patch.domain, now)
        if values:
            conn.execute(update(t.tenant).where(tn.id == tenant_id).values(**values))
        row = {
            "locale": patch.locale or before["locale"],
            "default_from_email": str(sender.email) if sender else "",
            "default_from_name": sender.name if sender else "",
            "limits": (patch.limits or Limits.model_validate(before["limits"])).model_dump(),
            "sms_send_window": (
                before["sms_send_window"]
                if patch.sms_send_window is None
                else patch.sms_send_window
            ),
            "updated_at": now,
        }
        if (
            conn.execute(update(profile).where(pc.tenant_id == tenant_id).values(**row)).rowcount
            == 0
        ):
            conn.execute(insert(profile).values(tenant_id=tenant_id, **row))
        audit(
            conn,
            tenant_id,
            actor,
            "tenant.update",
            {"changes": changes, "before": {k: before[k] for k in changes if k in before}},
            now,
        )
        return describe(conn, tenant_id)


def suspend(engine: Engine, slug: str, reason: str, actor: str, now: datetime) -> dict[str, Any]:
    """Stop the tenant's bulk email and bulk SMS (transactional mail such as signup
    confirmations still goes out, terms §1.11). Callers announce the change."""
    with engine.begin() as conn:
        tenant_id = tenant_id_of(conn, slug)
        if describe(conn, tenant_id)["closed_at"]:
            raise Conflict(f"tenant {slug!r} is closed")
        for scope in (BULK_EMAIL, BULK_SMS):
            sending_blocks.add_block(
                conn, tenant_id, scope, "operator", reason, actor, {"by": "suspend"}, now
            )
        audit(conn, tenant_id, actor, "tenant.suspend", {"reason": reason}, now)
        return describe(conn, tenant_id)


def reinstate(engine: Engine, slug: str, reason: str, actor: str, now: datetime) -> dict[str, Any]:
    """Clear the tenant's bulk blocks (the operator's and the breaker's); an ``all`` block
    set with the kill switch stays. Callers announce and resume held rows."""
    with engine.connect() as conn:
        tenant_id = tenant_id_of(conn, slug)
        if describe(conn, tenant_id)["closed_at"]:
            raise Conflict(f"tenant {slug!r} is closed")
    cleared = [
        block
        for scope in (BULK_EMAIL, BULK_SMS)
        for block in sending_blocks.clear_blocks(engine, tenant_id, scope, actor, reason, now)
    ]
    with engine.begin() as conn:
        audit(
            conn, tenant_id, actor, "tenant.reinstate", {"reason": reason, "blocks": cleared}, now
        )
        return describe(conn, tenant_id)


def close(
    engine: Engine,
    slug: str,
    reason: str,
    actor: str,
    now: datetime,
    export: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Close a tenant: nothing is sent any more, its keys stop working, its data is
    erased by the retention job ``CLOSED_TENANT_DAYS`` later. ``export`` describes the
    export taken just before (file, bytes, sha256), for the audit record."""
    with engine.begin() as conn:
        tenant_id = tenant_id_of(conn, slug)
        if describe(conn, tenant_id)["closed_at"]:
            raise Conflict(f"tenant {slug!r} is closed already")
        sending_blocks.add_block(conn, tenant_id, ALL, BlockSource.CLOSURE, reason, actor, {}, now)
        conn.execute(
            update(t.tenant)
            .where(tn.id == tenant_id)
            .values(closed_at=now, status_reason=f"tenant closed: {reason}")  # status: the block's
        )
        keys = conn.execute(
            update(t.api_key)
            .where(t.api_key.c.tenant_id == tenant_id, t.api_key.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        audit(
            conn,
            tenant_id,
            actor,
            "tenant.close",
            {
                "reason": reason,
                "keys_revoked": keys,
                "export": export,
                "purge_after": (now + timedelta(days=CLOSED_TENANT_DAYS)).isoformat(),
            },
            now,
        )
        return describe(conn, tenant_id)


# lists ---------------------------------------------------------------------------------


def _list_out(conn: Connection, row: Any) -> dict[str, Any]:
    members = conn.scalar(
        select(func.count()).select_from(t.list_member).where(t.list_member.c.list_id == row.id)
    )
    return {
        "id": row.id,
        "name": row.name,
        "members": int(members or 0),
        "created_at": aware(row.created_at).isoformat(),
    }


def lists(engine: Engine, tenant_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(ml.id, ml.name, ml.created_at).where(ml.tenant_id == tenant_id).order_by(ml.id)
        ).all()
        return [_list_out(conn, row) for row in rows]


def _own_list(conn: Connection, tenant_id: int, list_id: int) -> Any:
    row = conn.execute(
        select(ml.id, ml.name, ml.created_at).where(ml.id == list_id, ml.tenant_id == tenant_id)
    ).first()
    if row is None:
        raise LookupError("no such list")  # the same answer whether it exists or not
    return row


def _limits(conn: Connection, tenant_id: int) -> Limits:
    return Limits.model_validate(
        conn.scalar(select(pc.limits).where(pc.tenant_id == tenant_id)) or {}
    )


def _open(conn: Connection, tenant_id: int) -> bool:
    return conn.scalar(select(tn.closed_at).where(tn.id == tenant_id)) is None


def create_list(
    engine: Engine, tenant_id: int, name: str, actor: str, now: datetime
) -> dict[str, Any]:
    with engine.begin() as conn:
        if not _open(conn, tenant_id):
            raise Conflict("the tenant is closed")
        limit = _limits(conn, tenant_id).max_lists
        count = (
            conn.scalar(
                select(func.count()).select_from(t.mailing_list).where(ml.tenant_id == tenant_id)
            )
            or 0
        )
        if limit is not None and count >= limit:
            raise Conflict(f"the tenant's limit of {limit} lists is reached")
        list_id = conn.execute(
            insert(t.mailing_list)
            .values(tenant_id=tenant_id, name=name, created_at=now)
            .returning(ml.id)
        ).scalar_one()
        audit(conn, tenant_id, actor, "list.create", {"list": list_id, "name": name}, now)
        return _list_out(conn, _own_list(conn, tenant_id, list_id))


def rename_list(
    engine: Engine, tenant_id: int, list_id: int, name: str, actor: str, now: datetime
) -> dict[str, Any]:
    with engine.begin() as conn:
        before = _own_list(conn, tenant_id, list_id)
        conn.execute(update(t.mailing_list).where(ml.id == list_id).values(name=name))
        audit(
            conn,
            tenant_id,
            actor,
            "list.rename",
            {"list": list_id, "name": name, "before": before.name},
            now,
        )
        return _list_out(conn, _own_list(conn, tenant_id, list_id))


def delete_list(
    engine: Engine, tenant_id: int, list_id: int, actor: str, now: datetime
) -> dict[str, Any]:
    """Delete a list and its memberships (the contacts and their consents stay). Refused
    while a signup form adds to it or an unfinished campaign's audience names it."""
    c = t.campaign.c
    with engine.begin() as conn:
        row = _own_list(conn, tenant_id, list_id)
        forms = list(
            conn.scalars(
                select(t.signup_form.c.public_id).where(
                    t.signup_form.c.tenant_id == tenant_id, t.signup_form.c.list_id == list_id
                )
            )
        )
        if forms:
            raise Conflict(
                f"signup forms add to list {list_id} ({', '.join(forms)}); a form "
                "keeps pointing at its list, so the list stays"
            )
        busy = [
            ext
            for ext, ids in conn.execute(
                select(c.external_id, c.list_ids).where(
                    c.tenant_id == tenant_id, c.state.in_(OPEN_CAMPAIGN)
                )
            )
            if list_id in (ids or [])
        ]
        if busy:
            raise Conflict(
                f"list {list_id} is in the audience of unfinished campaigns: " + ", ".join(busy)
            )
        members = conn.execute(
            delete(t.list_member).where(t.list_member.c.list_id == list_id)
        ).rowcount
        li = t.list_import.c
        imported = [
            dict(r._mapping)
            | {
                "created_at": aware(r.created_at).isoformat(),
                "collected_at": aware(r.collected_at).isoformat(),
            }
            for r in conn.execute(
                select(
                    li.id,
                    li.source,
                    li.collected_at,
                    li.evidence_ref,
                    li.rows_imported,
                    li.created_at,
                ).where(li.list_id == list_id)
            )
        ]
        conn.execute(delete(t.list_import).where(li.list_id == list_id))
        conn.execute(delete(t.mailing_list).where(ml.id == list_id))
        audit(
            conn,
            tenant_id,
            actor,
            "list.delete",
            {"list": list_id, "name": row.name, "members": members, "imports": imported},
            now,
        )
    return {"deleted": list_id, "name": row.name, "members": members}
