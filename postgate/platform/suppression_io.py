"""A tenant's suppression list in and out, as CSV or JSON.

Export lists every entry; an erased person's entry is only the SHA-256 of the address
(``sha256:…``, ``"hashed": true``) and stays so. Import takes the same shape back
(columns ``channel``, ``address``, ``reason``, ``detail``): addresses are normalised
(email-validator, E.164), hashed entries are kept as they are (they need their
``channel``), rows that are not usable are reported as ``{line, reason}`` and the rest
are written; an entry that exists already is left as it is.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from postgate.core.addresses import AddressError, has_tricks, normalise_email, normalise_phone
from postgate.core.clock import aware
from postgate.core.states import SuppressionReason
from postgate.feedback import ledger
from postgate.store import tables as t
from postgate.tenants.erasure import HASH_PREFIX

REASONS = tuple(
    r.value
    for r in (
        SuppressionReason.UNSUBSCRIBE,
        SuppressionReason.COMPLAINT,
        SuppressionReason.HARD_BOUNCE,
        SuppressionReason.STOP,
        SuppressionReason.MANUAL,
        SuppressionReason.ERASURE,
    )
)
COLUMNS = ("channel", "address", "reason", "detail", "created_at")
HASHED = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_ROWS = 200_000
PAGE = 5000
s = t.suppression.c


class SuppressionImportRefused(ValueError):
    """The whole file is unusable (no address column, not JSON...); nothing was written."""


def entries(engine: Engine, tenant_id: int, channel: str | None = None) -> Iterator[dict[str, Any]]:
    """Every entry of the tenant, keyset-paginated by id."""
    after = 0
    while True:
        query = (
            select(s.id, s.channel, s.address, s.reason, s.detail, s.created_at)
            .where(s.tenant_id == tenant_id, s.id > after)
            .order_by(s.id)
            .limit(PAGE)
        )
        if channel:
            query = query.where(s.channel == channel)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        for row in rows:
            yield {
                "channel": row.channel,
                "address": row.address,
                "hashed": row.address.startswith(HASH_PREFIX),
                "reason": row.reason,
                "detail": row.detail,
                "created_at": aware(row.created_at).isoformat(),
            }
        after = rows[-1].id


def as_csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([row[k] for k in COLUMNS])
        if out.tell() > 64 * 1024:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _clean(record: dict[str, Any]) -> dict[str, str]:
    """One entry to write, or AddressError/ValueError saying why not."""
    address = str(record.get("address") or "").strip()
    channel = str(record.get("channel") or "").strip().lower()
    reason = str(record.get("reason") or "manual").strip().lower()
    detail = str(record.get("detail") or "").strip()
    if not address:
        raise ValueError("no address")
    if channel and channel not in ("email", "sms"):
        raise ValueError(f"channel must be email or sms, not {channel!r}")
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    if len(detail) > 500 or has_tricks(detail):
        raise ValueError("detail: at most 500 characters of one line")
    if address.startswith(HASH_PREFIX):
        if not HASHED.match(address):
            raise ValueError("a hashed address is sha256: and 64 lower-case hex digits")
        if not channel:
            raise ValueError("a hashed address needs its channel")
        return {"channel": channel, "address": address, "reason": reason, "detail": detail}
    if channel == "email" or (not channel and "@" in address):
        return {
            "channel": "email",
            "address": normalise_email(address),
            "reason": reason,
            "detail": detail,
        }
    return {
        "channel": "sms",
        "address": normalise_phone(address),
        "reason": reason,
        "detail": detail,
    }


def read_csv(text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]], int]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or ()
    except csv.Error as exc:  # e.g. an unterminated quote in the header row
        raise SuppressionImportRefused(f"malformed CSV header: {exc}") from None
    if "address" not in header:
        raise SuppressionImportRefused("the CSV needs a header row with an address column")
    rows: list[tuple[int, dict[str, Any]]] = []
    report: list[dict[str, Any]] = []
    total = 0
    try:
        for record in reader:
            total += 1
            if None in record or any(v is None for v in record.values()):
                report.append({"line": reader.line_num, "reason": "wrong number of fields"})
                continue
            rows.append((reader.line_num, record))
    except csv.Error as exc:
        report.append(
            {
                "line": reader.line_num,
                "reason": f"malformed CSV: {exc}; the rest of the file was not read",
            }
        )
    return rows, report, total


def read_json(text: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuppressionImportRefused(f"not JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("suppressions")
    if not isinstance(data, list):
        raise SuppressionImportRefused('JSON must be a list of entries or {"suppressions": [...]}')
    return [
        (index, item if isinstance(item, dict) else {"address": None})
        for index, item in enumerate(data)
    ]


def run_import(
    engine: Engine, tenant_id: int, text: str, fmt: str, actor: str, now: datetime
) -> dict[str, Any]:
    key = "line" if fmt == "csv" else "index"
    if fmt == "csv":
        rows, report, total = read_csv(text)
    else:
        rows, report = read_json(text), []
        total = len(rows)
    if len(rows) > MAX_ROWS:
        raise SuppressionImportRefused(f"more than {MAX_ROWS} entries; split the file")
    clean: dict[tuple[str, str], dict[str, Any]] = {}
    for where, record in rows:
        try:
            entry = _clean(record)
        except (AddressError, ValueError) as exc:
            report.append({key: where, "reason": str(exc)})
            continue
        if (entry["channel"], entry["address"]) in clean:
            report.append({key: where, "reason": "duplicate of an earlier entry"})
            continue
        clean[entry["channel"], entry["address"]] = entry
    imported = 0
    with engine.begin() as conn:
        imported = ledger.suppress_counted(
            conn,
            [
                (
                    tenant_id,
                    e["channel"],
                    e["address"],
                    SuppressionReason(e["reason"]),
                    e["detail"],
                    now,
                )
                for e in clean.values()
            ],
        )
        result = {
            "rows_total": total,
            "imported": imported,
            "already_suppressed": len(clean) - imported,
            "dropped": len(report),
            "report": sorted(report, key=lambda r: r[key]),
        }
        conn.execute(
            insert(t.audit_log).values(
                tenant_id=tenant_id,
                actor=actor,
                action="suppression.import",
                created_at=now,
                detail={k: v for k, v in result.items() if k != "report"} | {"format": fmt},
            )
        )
    return result
