"""Cross-origin posts to a signup form: a form lists the sites whose scripts may post to
it; a preflight from one of them is answered, every other origin is refused. A plain
HTML form (the embeddable snippet) needs no CORS and works from any site."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

MAX_AGE_S = 600


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, or '' when it is not one."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def allowed(form: Any, origin: str) -> bool:
    return bool(origin) and origin.lower() in {o.lower() for o in form.allowed_origins or []}


def is_script(request: Request) -> bool:
    """A cross-origin fetch from a script (not a form a person submitted)."""
    return request.headers.get("sec-fetch-mode", "").lower() == "cors"


def response_headers(form: Any, request: Request) -> dict[str, str]:
    origin = request.headers.get("origin", "")
    if not allowed(form, origin):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def preflight_headers(form: Any, request: Request) -> dict[str, str] | None:
    """The answer to an OPTIONS preflight, or None to refuse it."""
    origin = request.headers.get("origin", "")
    method = request.headers.get("access-control-request-method", "").upper()
    if not allowed(form, origin) or method != "POST":
        return None
    asked = request.headers.get("access-control-request-headers", "")
    wanted = {h.strip().lower() for h in asked.split(",") if h.strip()}
    if not wanted <= {"content-type", "accept", "accept-language"}:
        return None
    return {
        "Access-Control-Allow-Origin": origin,
        "Vary": "Origin",
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "Content-Type, Accept, Accept-Language",
        "Access-Control-Max-Age": str(MAX_AGE_S),
    }
