"""Normalised SMS errors and delivery-report statuses, and what each one means. Pure.

Every gateway's codes map onto these closed enums in the gateway's own module; what
to do about each kind (retry, fail the row, pause the tenant, halt the provider) is
decided here once for all gateways.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from postgate.core.outcome import Outcome


class SmsError(StrEnum):
    INVALID_NUMBER = "invalid_number"  # the number itself is wrong: fail, suppress
    REJECTED = "rejected"  # this message refused (content, sender id): fail
    NO_CREDIT = "no_credit"  # the account is empty: pause and alert
    THROTTLED = "throttled"  # too fast: back off and retry
    TEMPORARY = "temporary"  # 5xx, queue full, gateway hiccup: retry
    AUTH = "auth"  # credentials refused: halt the provider and alert
    UNKNOWN = "unknown"  # a code we do not know: retry later, never drop


class Action(StrEnum):
    NONE = "none"
    PAUSE_TENANT = "pause_tenant"
    HALT_PROVIDER = "halt_provider"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    retry_now: bool  # worth another try within this send (after a backoff)
    action: Action = Action.NONE


DECISIONS: dict[SmsError, Decision] = {
    SmsError.INVALID_NUMBER: Decision(Outcome.FAILED, False),
    SmsError.REJECTED: Decision(Outcome.FAILED, False),
    SmsError.NO_CREDIT: Decision(Outcome.DEFERRED, False, Action.PAUSE_TENANT),
    SmsError.THROTTLED: Decision(Outcome.DEFERRED, True),
    SmsError.TEMPORARY: Decision(Outcome.DEFERRED, True),
    SmsError.AUTH: Decision(Outcome.DEFERRED, False, Action.HALT_PROVIDER),
    SmsError.UNKNOWN: Decision(Outcome.DEFERRED, False),
}


def decide(error: SmsError) -> Decision:
    return DECISIONS[error]


class DlrStatus(StrEnum):
    ACCEPTED = "accepted"  # still on its way (intermediate)
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


FINAL_FAILURES = frozenset({DlrStatus.UNDELIVERED, DlrStatus.EXPIRED, DlrStatus.REJECTED})


def overall(statuses: list[str | None], parts: int) -> DlrStatus | None:
    """A delivery's status from its parts' reports: any final failure fails it, all
    parts delivered delivers it, otherwise it is not settled yet (None)."""
    known = [DlrStatus(s) for s in statuses if s is not None]
    failed = [s for s in known if s in FINAL_FAILURES]
    if failed:
        return failed[0]
    if sum(1 for s in known if s is DlrStatus.DELIVERED) >= parts:
        return DlrStatus.DELIVERED
    return None
