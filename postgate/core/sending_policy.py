"""Which messages a tenant may send in its current state (pure)."""

from __future__ import annotations

from postgate.core.states import Kind, TenantStatus


def may_send(status: str, kind: str) -> bool:
    """Bulk-disabled and suspended tenants still send transactional mail (confirmations);
    a killed tenant sends nothing."""
    if status == TenantStatus.ACTIVE:
        return True
    if status in (TenantStatus.BULK_DISABLED, TenantStatus.SUSPENDED):
        return kind == Kind.TRANSACTIONAL
    return False


def allows(scopes: frozenset[str], channel: str, kind: str) -> bool:
    """Whether the tenant's active sending blocks let this message out.

    ``all`` stops everything; ``bulk_email``/``bulk_sms`` stop promotional messages on
    their channel only, so confirmations and receipts keep flowing (DESIGN §1.11).
    """
    if "all" in scopes:
        return False
    if kind == Kind.TRANSACTIONAL:
        return True
    return f"bulk_{channel}" not in scopes
