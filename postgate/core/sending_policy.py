"""Which messages a tenant may send, given its active sending blocks (pure)."""

from __future__ import annotations

from postgate.core.states import Kind, Scope


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
