"""List import with a provenance declaration (DESIGN.md §1 rules 2 and 6).

``check_rows`` is pure: it reads CSV text against a declaration and returns the rows to
import and a report line for every row it will not import. ``run_import`` writes the
accepted rows (contact, list membership, a consent record carrying source and evidence)
and the ``list_import`` row with the report, in one transaction.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine, insert, select

from postgate.core.addresses import AddressError, clean_name, normalise_email, normalise_phone
from postgate.core.clock import add_months, aware
from postgate.core.params import Line, Text
from postgate.store import tables as t
from postgate.store.dialect import insert_ignore
from postgate.store.limits import contact_limit_reason, contact_room

FORBIDDEN = frozenset({"purchased", "rented", "other_company"})
HYGIENE_MONTHS = 6
MAX_ROWS = 200_000
FUTURE_SLACK = timedelta(days=1)  # clock skew and time zones, no more


class ImportRefused(ValueError):
    """The whole import is refused; nothing was written."""


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Line = Field(min_length=1, max_length=40)
    topic: Line = Field(min_length=1, max_length=100)
    collected_at: datetime
    evidence: Text = Field(min_length=1, max_length=500)
    purchase_date: datetime | None = None
    marketing_checkbox: bool | None = None

    @model_validator(mode="after")
    def _allowed(self) -> Provenance:
        if self.source in FORBIDDEN:
            raise ValueError(
                f"source {self.source!r} is refused: purchased, rented and other "
                "companies' lists never carry consent for this tenant"
            )
        if self.source not in ("signup_form", "written_consent", "purchase", "event"):
            raise ValueError(
                f"unknown source {self.source!r}; use signup_form, "
                "written_consent, purchase or event"
            )
        if self.source == "purchase" and (
            self.purchase_date is None or self.marketing_checkbox is None
        ):
            raise ValueError("a purchase needs purchase_date and marketing_checkbox")
        if self.source == "purchase" and not self.marketing_checkbox:
            raise ValueError("a purchase with the marketing checkbox unticked carries no consent")
        return self


@dataclass
class Checked:
    rows: list[dict[str, Any]] = field(default_factory=list)
    report: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


def _date(value: str) -> datetime:
    return aware(datetime.fromisoformat(value.strip()))


def hygiene(consented: datetime | None, active: datetime | None, now: datetime) -> str | None:
    """Why a contact may not come in (rule 6: consent or last activity older than
    ``HYGIENE_MONTHS``, or a consent dated in the future), or None. Every path that brings
    contacts with consent in (CSV imports, contact syncs) asks this."""
    horizon = add_months(aware(now), -HYGIENE_MONTHS)
    if consented is not None and aware(consented) > aware(now) + FUTURE_SLACK:
        return "consent date is in the future"
    if consented is not None and aware(consented) < horizon:
        return f"consent older than {HYGIENE_MONTHS} months"
    if active is not None and aware(active) < horizon:
        return f"last activity older than {HYGIENE_MONTHS} months"
    return None


def check_rows(text: str, decl: Provenance, now: datetime) -> Checked:
    out = Checked()
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    columns = set(reader.fieldnames or ())
    if not columns & {"email", "phone"}:
        raise ImportRefused("the CSV needs a header row with an email or phone column")
    base = aware(decl.purchase_date or decl.collected_at)
    seen: set[str] = set()
    try:
        for record in reader:
            out.total += 1
            if out.total > MAX_ROWS:
                raise ImportRefused(f"more than {MAX_ROWS} rows; split the file")
            line = reader.line_num

            def drop(reason: str, line: int = line) -> None:
                out.report.append({"line": line, "reason": reason})

            if None in record or any(v is None for v in record.values()):
                drop("wrong number of fields")
                continue
            try:
                email = normalise_email(record["email"]) if record.get("email") else None
                phone = normalise_phone(record["phone"]) if record.get("phone") else None
                name = clean_name(record.get("name") or "")
                consented = _date(record["consented_at"]) if record.get("consented_at") else base
                active = (
                    _date(record["last_activity_at"]) if record.get("last_activity_at") else None
                )
            except AddressError as exc:
                drop(str(exc))
                continue
            except ValueError as exc:
                drop(f"bad date: {exc}")
                continue
            if email is None and phone is None:
                drop("no email or phone")
                continue
            if refused := hygiene(consented, active, now):
                drop(refused)
                continue
            key = email or phone or ""
            if key in seen:
                drop("duplicate of an earlier row")
                continue
            seen.add(key)
            out.rows.append(
                {
                    "line": line,
                    "email": email,
                    "phone": phone,
                    "name": name,
                    "consented_at": consented,
                    "last_activity_at": active,
                }
            )
    except csv.Error as exc:
        out.report.append(
            {
                "line": reader.line_num,
                "reason": f"malformed CSV: {exc}; the rest of the file was not read",
            }
        )
    return out


def run_import(
    engine: Engine,
    tenant_id: int,
    list_id: int,
    decl: Provenance,
    text: str,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    with engine.connect() as conn:
        owner = conn.scalar(
            select(t.mailing_list.c.tenant_id).where(t.mailing_list.c.id == list_id)
        )
    if owner != tenant_id:
        raise LookupError("no such list")  # the same answer whether it exists or not
    checked = check_rows(text, decl, now)
    imported = 0
    with engine.begin() as conn:
        room = contact_room(conn, tenant_id)
        for row in checked.rows:
            found = _contact(conn, tenant_id, row, now, room is None or room > 0)
            if found is None:
                checked.report.append(
                    {"line": row["line"], "reason": contact_limit_reason(conn, tenant_id)}
                )
                continue
            contact_id, created = found
            if created and room is not None:
                room -= 1
            imported += 1
            insert_ignore(
                conn,
                t.list_member,
                [{"list_id": list_id, "contact_id": contact_id, "tenant_id": tenant_id}],
                ("list_id", "contact_id"),
            )
            for channel in ("email", "sms"):
                if row["email" if channel == "email" else "phone"] is None:
                    continue
                conn.execute(
                    insert(t.consent).values(
                        tenant_id=tenant_id,
                        contact_id=contact_id,
                        channel=channel,
                        topic=decl.topic,
                        source=decl.source,
                        status="confirmed",
                        consented_at=row["consented_at"],
                        created_at=now,
                        confirmed_at=row["consented_at"],
                        evidence_ref=decl.evidence,
                        marketing_checkbox=decl.marketing_checkbox,
                    )
                )
        import_id = conn.execute(
            insert(t.list_import)
            .values(
                tenant_id=tenant_id,
                list_id=list_id,
                source=decl.source,
                collected_at=decl.collected_at,
                evidence_ref=decl.evidence,
                actor=actor,
                rows_total=checked.total,
                rows_imported=imported,
                rows_dropped=len(checked.report),
                report=checked.report,
                created_at=now,
            )
            .returning(t.list_import.c.id)
        ).scalar_one()
    return {
        "import_id": import_id,
        "rows_total": checked.total,
        "rows_imported": imported,
        "rows_dropped": len(checked.report),
        "report": checked.report,
    }


def _contact(
    conn: Any, tenant_id: int, row: dict[str, Any], now: datetime, may_create: bool
) -> tuple[int, bool] | None:
    """The row's contact and whether it is new; None when a new one would pass the
    tenant's contact limit."""
    c = t.contact.c
    for column in ("email", "phone"):
        if row[column] is not None:
            found = conn.scalar(
                select(c.id).where(c.tenant_id == tenant_id, getattr(c, column) == row[column])
            )
            if found is not None:
                return int(found), False
    if not may_create:
        return None
    made = int(
        conn.execute(
            insert(t.contact)
            .values(
                tenant_id=tenant_id,
                email=row["email"],
                phone=row["phone"],
                name=row["name"],
                attributes={},
                created_at=now,
                last_activity_at=row["last_activity_at"],
            )
            .returning(c.id)
        ).scalar_one()
    )
    return made, True
