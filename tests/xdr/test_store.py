"""Beyond the ledger's idempotency TTL: the usage store (real PostgreSQL) says which records
were imported, so an overlapping file weeks later charges only what is new."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from balance import keys
from ocs.cli import main
from tests.support.charging import DEMO_CATALOG
from tests.xdr.conftest import _DECODER, ACME_1, OPENING, Xdr, line
from usage.row import UsageRow
from usage.store import UsageStore
from usage.xdr.stored import StoredOps


async def export_to_store(xdr: Xdr, store: UsageStore, tenant: str) -> int:
    """What ``ocs export`` does for these records: stream entries → stored rows."""
    rows = []
    for shard in range(keys.VSHARDS):
        entries: Any = await xdr.client.xrange(keys.stream_key(keys.shard_prefix(tenant, shard)))
        for entry_id, fields in entries:
            record = _DECODER.decode(fields[b"r"])
            if record.kind != "usage" or record.context is None:
                continue
            rows.append(
                UsageRow(
                    tenant=tenant, vshard=shard, entry_id=entry_id.decode(), kind=record.kind,
                    source=record.context.source, op_id=record.op_id,
                    subscriber=record.subscriber, started_at_s=record.context.started_at_s,
                    ended_at_s=record.at_s, units=record.units, retail=record.retail,
                    wholesale=record.wholesale, source_ref=record.context.source_ref,
                )
            )  # fmt: skip
    return await store.store_batch(rows)


@pytest.mark.slow
async def test_store_recognises_records_the_ledger_forgot(
    xdr: Xdr, redis_url: str, store_url: str
) -> None:
    day = "2026-11-17"
    first = xdr.write(
        "a.csv", *(line(f"s{i}", "SMS-MO", f"{day} 10:0{i}:00", "1") for i in range(4))
    )
    await xdr.run(first)
    store = await UsageStore.open(store_url)
    try:
        assert await export_to_store(xdr, store, "acme") == 4
        assert await StoredOps(store)("acme", ["xdr:telco_de:s1", "xdr:telco_de:s9"]) == {
            "xdr:telco_de:s1"
        }
        assert await StoredOps(store)("globex", ["xdr:telco_de:s1"]) == set()
    finally:
        await store.close()
    # Weeks later: the ledger's idempotency entries have expired.
    for key in await xdr.client.keys("*:op:xdr:*"):
        await xdr.client.delete(key)
    overlap = xdr.write(
        "b.csv", *(line(f"s{i}", "SMS-MO", f"{day} 10:0{i}:00", "1") for i in range(2, 6))
    )
    args = [
        "xdr", "import", "--mno", "telco_de", "--catalog", str(DEMO_CATALOG), "--redis-url",
        redis_url, "--store-url", store_url, "--state-dir", str(xdr.tmp / "state"), "--json",
        str(overlap),
    ]  # fmt: skip
    assert await asyncio.to_thread(main, args) == 0
    account = await xdr.account("acme", ACME_1)
    assert account.balance == OPENING - 6 * 90_000  # s0..s5 once each
    op_ids = sorted(r.op_id for r in await xdr.usage("acme"))
    assert op_ids == [f"xdr:telco_de:s{i}" for i in range(6)]
