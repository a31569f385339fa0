"""Sender domains (pure): who may send From which domain, and how that is proven.

A tenant claims a domain and gets a random token; it proves control of the domain by
publishing ``postgate-verification=<token>`` as a TXT record at ``_postgate.<domain>``.
A From address is allowed when its domain is a verified domain of the tenant or a
subdomain of one (the tenant's primary domain, set by the operator when the tenant
was created, counts as verified).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime

TXT_LABEL = "_postgate"
TXT_PREFIX = "postgate-verification="
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DomainError(ValueError):
    """A domain name that cannot be used; the text says why."""


def normalise(domain: str) -> str:
    """Lower-case ASCII (IDNA) form of ``domain``, or raise :class:`DomainError`."""
    name = domain.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise DomainError(f"{domain!r} is not a valid domain name") from None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise DomainError(f"{domain!r} is not a valid domain name")
    if labels[-1].isdigit():
        raise DomainError(f"{domain!r} is an address, not a domain name")
    return name


def new_token() -> str:
    return secrets.token_urlsafe(24)


def new_selector(now: datetime) -> str:
    return f"pg{now:%Y%m}"


def txt_name(domain: str) -> str:
    return f"{TXT_LABEL}.{domain}"


def txt_value(token: str) -> str:
    return TXT_PREFIX + token


def dkim_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def token_published(records: Iterable[str], token: str) -> bool:
    """Whether one of the TXT ``records`` carries ``token`` (compared in constant time)."""
    expected = txt_value(token).encode()
    return any(hmac.compare_digest(r.strip().encode(), expected) for r in records)


def dkim_published(records: Iterable[str], public_record: str) -> bool:
    """Whether the selector's TXT records publish our public key (tags compared, not text)."""

    def tags(text: str) -> dict[str, str]:
        pairs = (part.split("=", 1) for part in text.split(";") if "=" in part)
        return {k.strip(): "".join(v.split()) for k, v in pairs}

    want = tags(public_record)
    return any(tags(r).get("p") == want.get("p") for r in records)


def covering(from_domain: str, verified: Iterable[str]) -> str | None:
    """The verified domain that ``from_domain`` is, or is a subdomain of, if any."""
    name = from_domain.lower().rstrip(".")
    best = None
    for domain in verified:
        domain = domain.lower().rstrip(".")
        if (name == domain or name.endswith("." + domain)) and len(domain) > len(best or ""):
            best = domain
    return best
