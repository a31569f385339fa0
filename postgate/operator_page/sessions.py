"""Browser sessions for the operator page.

An operator logs in with an operator api key; the browser gets a random 256-bit session
token in an HttpOnly, SameSite=Strict cookie, and only its SHA-256 is stored. A session
ends at its expiry, at logout, or as soon as its key is revoked. Tenant keys never get a
session.

Forms that change something carry a CSRF token derived from the session token with the
platform's secret (HMAC), compared in constant time, and their Origin must be this site.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from fastapi import Request
from sqlalchemy import Engine, insert, select, update

from postgate.http.auth import KEY_PREFIX, Principal, hash_key
from postgate.store import tables as t

COOKIE = "postgate_operator"
PATH = "/operator"
s, k = t.operator_session.c, t.api_key.c


class Refused(Exception):
    """A key that cannot open the operator page; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def start(engine: Engine, key: str, ttl: timedelta, now: datetime) -> str:
    """Open a session for a valid operator key and return its token."""
    key = key.strip()
    with engine.begin() as conn:
        row = None
        if key.startswith(KEY_PREFIX) and len(key) <= 200:
            row = conn.execute(
                select(k.id, k.role).where(k.key_hash == hash_key(key), k.revoked_at.is_(None))
            ).first()
        if row is None:
            raise Refused(401, "That key is not valid.")
        if row.role != "operator":
            raise Refused(403, "Only an operator key opens this page; tenant keys cannot.")
        token = secrets.token_urlsafe(32)
        conn.execute(
            insert(t.operator_session).values(
                api_key_id=row.id, token_hash=hash_key(token), created_at=now, expires_at=now + ttl
            )
        )
    return token


def principal(engine: Engine, token: str | None, now: datetime) -> Principal | None:
    """The operator behind a live session, or None."""
    if not token or len(token) > 200:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(k.role, k.name)
            .join(t.api_key, k.id == s.api_key_id)
            .where(
                s.token_hash == hash_key(token),
                s.ended_at.is_(None),
                s.expires_at > now,
                k.revoked_at.is_(None),
                k.role == "operator",
            )
        ).first()
    return Principal(row.role, row.name) if row else None


def end(engine: Engine, token: str | None, now: datetime) -> None:
    if token:
        with engine.begin() as conn:
            conn.execute(
                update(t.operator_session)
                .where(s.token_hash == hash_key(token), s.ended_at.is_(None))
                .values(ended_at=now)
            )


def csrf_token(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, token: str | None, given: str | None) -> bool:
    if not token or not given:
        return False
    return hmac.compare_digest(csrf_token(secret, token), given)


def same_origin(request: Request) -> bool:
    """A form post must come from this site: Origin (or, lacking it, Referer) names our
    host. Browsers send Origin on every POST; a request with neither is refused."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == request.headers.get("host", "")


def secure_cookie(request: Request, public_url: str) -> bool:
    return request.url.scheme == "https" or public_url.startswith("https://")
