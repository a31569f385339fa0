"""Which gateway carries an SMS. Pure: a number and the routes in, a provider name out.

Hungarian numbers (+36) go to the domestic SMPP gateway, everything else to the
international HTTP gateway. A tenant can override either side, e.g. send everything
through SMSAPI, with a route table ``{"36": "smsapi", "*": "smsapi"}``.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_ROUTES: dict[str, str] = {"36": "smpp", "*": "smsapi"}


def parse_routes(spec: str) -> dict[str, str]:
    """``"36=smpp,*=smsapi"`` -> ``{"36": "smpp", "*": "smsapi"}``; raises ValueError."""
    routes: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        prefix, sep, provider = item.partition("=")
        prefix, provider = prefix.strip().lstrip("+"), provider.strip()
        numeric = prefix.isascii() and prefix.isdigit()
        if not sep or not provider or not (prefix == "*" or numeric):
            raise ValueError(f"bad route {item!r}: use <calling code>=<provider> or *=<provider>")
        routes[prefix] = provider
    if "*" not in routes:
        raise ValueError("routes need a default: *=<provider>")
    return routes


def route(
    number: str,
    routes: Mapping[str, str] = DEFAULT_ROUTES,
    override: Mapping[str, str] | None = None,
) -> str:
    """The provider for the E.164 ``number``: the tenant's override first, then the
    platform's table; the longest matching prefix wins, ``*`` is the fallback."""
    table = {**routes, **(override or {})}
    digits = number.lstrip("+")
    candidates = [p for p in table if p != "*" and digits.startswith(p)]
    if candidates:
        return table[max(candidates, key=len)]
    return table["*"]
