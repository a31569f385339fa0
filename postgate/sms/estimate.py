"""What an SMS campaign will cost before it is sent (pure).

The text is rendered once with empty personalisation (names add characters, so the
real count can only be higher for long names), gets the opt-out line when promotional,
and is encoded under the campaign's policy; each sendable recipient is routed by
calling code, and parts are priced per gateway from ``SMS_PRICE_PER_PART``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from postgate.core.rendering import TEXT_ENV
from postgate.core.sms.encoding import Policy, SmsTooLong, encode
from postgate.core.sms.routing import route
from postgate.core.states import Kind


def estimate(
    text: str,
    kind: str,
    opt_out: str,
    policy: str,
    max_parts: int,
    numbers: Iterable[str],
    routes: Mapping[str, str],
    override: Mapping[str, str] | None,
    prices: Mapping[str, float],
) -> dict[str, Any]:
    body = TEXT_ENV.from_string(text).render(name="", phone="", contact={})
    if kind == Kind.PROMOTIONAL and opt_out:
        body = f"{body.rstrip()}\n{opt_out}"
    by_provider = Counter(route(number, routes, override) for number in numbers)
    try:
        sms = encode(body, Policy(policy), max_parts)
    except SmsTooLong as exc:
        return {"error": str(exc), "messages_by_provider": dict(by_provider)}
    segments = {name: count * sms.segments for name, count in by_provider.items()}
    priced = all(name in prices for name in by_provider)
    cost = sum(n * prices[name] for name, n in segments.items()) if priced else None
    return {
        "encoding": sms.encoding.value,
        "segments_per_message": sms.segments,
        "messages_by_provider": dict(sorted(by_provider.items())),
        "segments": sum(segments.values()),
        "estimated_cost": round(cost, 4) if cost is not None else None,
        "note": "personalisation rendered empty; long names may add parts",
    }
