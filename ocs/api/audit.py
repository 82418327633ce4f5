"""The audit log: every write through the API, with its key, address, time, before and after.

Written as the store's owner (no product role may write it); read per tenant on the tenant's
own role, so row-level security shows a tenant only its own entries."""

from __future__ import annotations

from typing import Any

from ocs.api import sql as q
from ocs.api.audit_writer import insert_rows
from ocs.api.models import AuditEntry, AuditPage
from ocs.api.state import ApiState

BEFORE_MAX = 2**62


async def record(
    state: ApiState,
    *,
    tenant: str,
    actor: str,
    source: str,
    action: str,
    target: str,
    status: int,
    before: Any = None,
    after: Any = None,
) -> None:
    """One entry, committed (in a group with concurrent ones) before this returns."""
    await state.audit.write(
        {"tenant": tenant, "actor": actor, "source": source, "action": action,
         "target": target, "status": status, "before": before, "after": after}
    )  # fmt: skip


async def read(state: ApiState, tenant: str, before_id: int | None, limit: int) -> AuditPage:
    params = {"tenant": tenant, "before_id": before_id or BEFORE_MAX, "limit": limit}
    async with await state.tenant_store(tenant) as conn:
        rows = await (await conn.execute(q.READ_AUDIT, params)).fetchall()
    entries = [AuditEntry(*row) for row in rows]
    more = len(entries) == limit
    return AuditPage(entries, entries[-1].audit_id if more and entries else None)


async def record_many(state: ApiState, entries: list[dict[str, Any]]) -> None:
    """Several entries in one transaction (a batch of an import job); keys as ``record``'s."""
    if entries:
        await insert_rows(state.store, entries, sync=state.config.api.audit_sync_commit)
