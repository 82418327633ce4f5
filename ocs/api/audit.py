"""The audit log: every write through the API, with its key, address, time, before and after.

Written as the store's owner (no product role may write it); read per tenant on the tenant's
own role, so row-level security shows a tenant only its own entries."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from ocs.api import sql as q
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
    async with state.store.as_owner() as conn:
        await conn.execute(
            q.INSERT_AUDIT,
            {
                "tenant": tenant,
                "actor": actor,
                "source": source,
                "action": action,
                "target": target,
                "status": status,
                "before": None if before is None else Jsonb(before),
                "after": None if after is None else Jsonb(after),
            },
        )


async def read(state: ApiState, tenant: str, before_id: int | None, limit: int) -> AuditPage:
    params = {"tenant": tenant, "before_id": before_id or BEFORE_MAX, "limit": limit}
    async with await state.tenant_store(tenant) as conn:
        rows = await (await conn.execute(q.READ_AUDIT, params)).fetchall()
    entries = [AuditEntry(*row) for row in rows]
    more = len(entries) == limit
    return AuditPage(entries, entries[-1].audit_id if more and entries else None)


async def record_many(state: ApiState, entries: list[dict[str, Any]]) -> None:
    """Several entries in one transaction (a batch of an import job); keys as ``record``'s."""
    if not entries:
        return
    params = [
        {
            **entry,
            "before": None if entry["before"] is None else Jsonb(entry["before"]),
            "after": None if entry["after"] is None else Jsonb(entry["after"]),
        }
        for entry in entries
    ]
    async with state.store.as_owner() as conn, conn.cursor() as cur:
        await cur.executemany(q.INSERT_AUDIT_ROW, params)
