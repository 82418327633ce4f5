"""What the ledger wrote, read straight from the shard streams (before an exporter trims them),
and what the store holds, in the same shape: per tenant, record count and money sums."""

from __future__ import annotations

from typing import Any

import msgspec

from balance import keys
from balance.records import LedgerRecord
from usage.store import UnknownTenant, UsageStore

_DECODE = msgspec.msgpack.Decoder(LedgerRecord)

Totals = tuple[int, int, int, int]  # count, retail, wholesale, money_delta


async def stream_records(client: Any, tenant: str) -> list[LedgerRecord]:
    pipe = client.pipeline(transaction=False)
    for shard in range(keys.VSHARDS):
        pipe.xrange(keys.stream_key(keys.shard_prefix(tenant, shard)))
    out: list[LedgerRecord] = []
    for entries in await pipe.execute():
        out.extend(_DECODE.decode(fields[b"r"]) for _, fields in entries)
    return out


def totals_of(records: list[LedgerRecord]) -> Totals:
    return (
        len(records),
        sum(r.retail for r in records),
        sum(r.wholesale for r in records),
        sum(r.money_delta for r in records),
    )


async def ledger_totals(client: Any, tenant: str) -> Totals:
    return totals_of(await stream_records(client, tenant))


async def store_totals(store: UsageStore, tenant: str) -> Totals:
    try:
        found = await store.count_and_totals(tenant)
    except UnknownTenant:
        return (0, 0, 0, 0)  # nothing stored for it yet
    return (found.count, found.retail, found.wholesale, found.money_delta)
