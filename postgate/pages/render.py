"""Rendering a visitor page: one Jinja2 environment per language (the i18n extension with
that language's catalogue installed), the tenant's brand around every page, and the
headers every page is sent with (no caching, no referrer, a strict Content-Security-Policy
whose only inline style is the brand's accent colour, allowed by its hash)."""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from postgate.core import i18n
from postgate.tenants.brand import Brand

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@cache
def environment(locale: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["sentence"] = i18n.sentence
    env.globals["locale"] = locale
    return env


def _brand_style(brand: Brand) -> str:
    return f":root{{--accent:{brand.accent};--on-accent:{brand.accent_text};--link:{brand.link}}}"


def headers(style: str) -> dict[str, str]:
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": (
            "default-src 'none'; img-src 'self' https:; "
            f"style-src 'self' 'sha256-{digest}'; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'"
        ),
    }


def page(
    locale: str, template: str, brand: Brand, title: str, status: int = 200, **context: Any
) -> HTMLResponse:
    style = _brand_style(brand)
    body = (
        environment(locale)
        .get_template(template)
        .render(brand=brand, title=title, brand_style=Markup(style), **context)
    )
    response = HTMLResponse(body, status_code=status, headers=headers(style))
    response.headers["Content-Language"] = locale
    return response


def words(locale: str) -> i18n.Words:
    return i18n.Words(locale)


def wants_html(request: Request) -> bool:
    """A browser navigating (``Accept: text/html``), not a script or an API client."""
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


def locale_for(request: Request, *preferred: str | None) -> str:
    return i18n.choose(*preferred, accept_language=request.headers.get("accept-language"))
