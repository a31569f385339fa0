"""A tenant's brand and its topics in words, as pages and mails show them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from postgate.store.schema import metadata

brand_table = metadata.tables["tenant_brand"]
label_table = metadata.tables["topic_label"]
tenant_table = metadata.tables["tenant"]

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_ACCENT = "#1f5fa8"


def safe_url(value: str, https_only: bool = False) -> str:
    """``value`` when it is an absolute http(s) URL, else ''."""
    parts = urlsplit(value.strip())
    schemes = ("https",) if https_only else ("https", "http")
    return value.strip() if parts.scheme in schemes and parts.netloc else ""


@dataclass(frozen=True, slots=True)
class Brand:
    tenant_id: int
    name: str
    logo_url: str = ""
    accent: str = DEFAULT_ACCENT
    website_url: str = ""
    privacy_url: str = ""
    locale: str = ""
    time_zone: str = ""
    allow_resubscribe: bool = True

    @property
    def accent_text(self) -> str:
        """Black or white, whichever reads better on the accent colour."""
        return (
            "#000000"
            if contrast(self.accent, "#000000") > contrast(self.accent, "#ffffff")
            else "#ffffff"
        )

    @property
    def link(self) -> str:
        """The accent for links on white when it is legible there (WCAG AA, 4.5:1)."""
        return self.accent if contrast(self.accent, "#ffffff") >= 4.5 else "#1b1f24"


def _luminance(colour: str) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def load(conn: Connection, tenant_id: int) -> Brand:
    b = brand_table.c
    row = conn.execute(
        select(
            tenant_table.c.name,
            b.display_name,
            b.logo_url,
            b.accent_color,
            b.website_url,
            b.privacy_url,
            b.locale,
            b.time_zone,
            b.allow_resubscribe,
        )
        .select_from(tenant_table)
        .outerjoin(brand_table, b.tenant_id == tenant_table.c.id)
        .where(tenant_table.c.id == tenant_id)
    ).one()
    return from_row(tenant_id, row)


def from_row(tenant_id: int, row: Any) -> Brand:
    accent = row.accent_color if row.accent_color and COLOUR.match(row.accent_color) else ""
    return Brand(
        tenant_id,
        (row.display_name or row.name or "").strip(),
        safe_url(row.logo_url or "", https_only=True),
        accent or DEFAULT_ACCENT,
        safe_url(row.website_url or ""),
        safe_url(row.privacy_url or ""),
        row.locale or "",
        row.time_zone or "",
        True if row.allow_resubscribe is None else bool(row.allow_resubscribe),
    )


@dataclass(frozen=True, slots=True)
class Topic:
    slug: str
    name: str
    description: str = ""


def topics(conn: Connection, tenant_id: int, slugs: list[str], locale: str) -> dict[str, Topic]:
    """Each topic in ``locale`` (else in any language it has, else its slug)."""
    lc = label_table.c
    found: dict[str, Topic] = {s: Topic(s, s) for s in slugs}
    rows = conn.execute(
        select(lc.topic, lc.locale, lc.name, lc.description)
        .where(lc.tenant_id == tenant_id, lc.topic.in_(slugs))
        .order_by(lc.locale)
    ).all()
    for row in sorted(rows, key=lambda r: r.locale == locale):  # the reader's language last
        found[row.topic] = Topic(row.topic, row.name, row.description)
    return found


def topic(conn: Connection, tenant_id: int, slug: str, locale: str) -> Topic:
    return topics(conn, tenant_id, [slug], locale)[slug]
