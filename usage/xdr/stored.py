"""Which op ids of a batch the usage store already holds: the import's idempotency beyond the
ledger's TTL (the ledger forgets an op id after ``idempotency_ttl_s``; the store keeps usage
for the tenant's retention). One indexed query per tenant and batch (``usage_records_op``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from usage.store import UsageStore, check_tenant

OPS_PER_QUERY_MAX = 10_000
STORED_OPS: Final = "SELECT DISTINCT op_id FROM usage_records WHERE tenant = %s AND op_id = ANY(%s)"


class StoredOps:
    """``await StoredOps(store)(tenant, op_ids)`` → the op ids the store has for the tenant."""

    def __init__(self, store: UsageStore) -> None:
        self.store = store

    async def __call__(self, tenant: str, op_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(op_ids), OPS_PER_QUERY_MAX):
            chunk = list(op_ids[start : start + OPS_PER_QUERY_MAX])
            async with self.store.as_writer() as conn:
                cursor = await conn.execute(STORED_OPS, (check_tenant(tenant), chunk))
                found.update(str(row[0]) for row in await cursor.fetchall())
        return found
