"""Which messages a tenant may send in its current state (pure)."""

from __future__ import annotations

from postgate.delivery.states import Kind, TenantStatus


def may_send(status: str, kind: str) -> bool:
    """Bulk-disabled and suspended tenants still send transactional mail (confirmations);
    a killed tenant sends nothing."""
    if status == TenantStatus.ACTIVE:
        return True
    if status in (TenantStatus.BULK_DISABLED, TenantStatus.SUSPENDED):
        return kind == Kind.TRANSACTIONAL
    return False
