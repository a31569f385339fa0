"""Which messages a tenant may send, given its active sending blocks (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from postgate.core.states import BlockReason, BlockSource, Kind, Scope

# the breaker's trip reasons (core.breaker.TripReason) that say receivers refuse the mail
REFUSAL_HOLDS = {
    "auth_failure_rate": BlockReason.AUTH_FAILING,
    "policy_block_rate": BlockReason.POLICY_BLOCKED,
}


def may_send(scopes: frozenset[str], channel: str, kind: str) -> bool:
    """May a tenant whose active sending blocks are ``scopes`` send a message of ``kind`` on
    ``channel`` now? The one answer: ``tenant.status`` is only a summary of the blocks.

    ``all`` stops everything; ``bulk_email``/``bulk_sms`` stop promotional messages on
    their channel only, so confirmations and receipts keep flowing (DESIGN §1.11).
    """
    if Scope.ALL in scopes:
        return False
    if kind == Kind.TRANSACTIONAL:
        return True
    return Scope.bulk(channel) not in scopes


def held_reason(blocks: Iterable[tuple[str, str, str]], channel: str, kind: str) -> BlockReason:
    """Why a message stopped by the active ``blocks`` (scope, source, trip reason) is held:
    ``auth_failing`` or ``policy_blocked`` when a breaker block for failed authentication
    or policy refusals stops it (authentication first: the tenant can fix it), else
    ``tenant_disabled``."""
    stopping = {
        reason
        for scope, source, reason in blocks
        if source == BlockSource.BREAKER and not may_send(frozenset({scope}), channel, kind)
    }
    for trip, held in REFUSAL_HOLDS.items():
        if trip in stopping:
            return held
    return BlockReason.TENANT_DISABLED
