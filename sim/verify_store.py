"""The end-of-run verification extended to the usage store (PostgreSQL).

With a store URL the run's records are read from the store instead of the streams (an
exporter trims the streams as it stores, so they are no longer the place to look): first wait,
bounded, until every stream the run wrote to holds nothing up to where the run left it (the
exporter stored and trimmed it all), then read the tenants' records of the run's time window
from the store. ``verify.compare`` then checks them exactly as it checks stream records: units
against the simulator, retail against the balances' fall, no operation charged twice — so the
store holding the ledger's records, once each, with the same money, is what PASS means.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from balance.records import LedgerRecord
from usage import sql as q
from usage.store import UnknownTenant, UsageStore

EXPORT_WAIT_S_DEFAULT = 60.0
POLL_S = 0.25
WINDOW_MARGIN_S = 5.0
_COLUMNS = {name: index for index, name in enumerate(q.EXPORT_COLUMNS)}


class StoreCheck(msgspec.Struct):
    waited_s: float
    trimmed: bool
    left_in_streams: int
    records: int
    problems: list[str]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def stream_ends(client: Any, streams: Iterable[str]) -> dict[str, str]:
    """Each stream's last entry id now (streams without entries left out)."""
    ends: dict[str, str] = {}
    for stream in streams:
        last: Any = await client.xrevrange(stream, count=1)
        if last:
            ends[stream] = _text(last[0][0])
    return ends


async def left_up_to(client: Any, ends: dict[str, str]) -> int:
    """How many streams still hold an entry at or below their recorded end."""
    left = 0
    for stream, end in ends.items():
        if await client.xrange(stream, min="-", max=end, count=1):
            left += 1
    return left


async def wait_until_exported(
    client: Any,
    streams: Iterable[str],
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, int, float]:
    """(trimmed, streams still holding run records, seconds waited)."""
    ends = await stream_ends(client, streams)
    started = clock()
    while True:
        left = await left_up_to(client, ends)
        waited = clock() - started
        if left == 0 or waited >= timeout_s:
            return left == 0, left, waited
        await asyncio.sleep(POLL_S)


def record_of(row: Sequence[Any]) -> LedgerRecord:
    """A stored row in the shape ``verify.compare`` reads (legs and buckets not needed)."""

    def get(name: str) -> Any:
        return row[_COLUMNS[name]]

    ended = get("ended_at")
    return LedgerRecord(
        kind=get("kind"), tenant=get("tenant"), subscriber=get("subscriber"),
        session_id=get("session_id"), op_id=get("op_id"), service=get("service"),
        rating_group=int(get("rating_group")), units=int(get("units")),
        retail=int(get("retail")), wholesale=int(get("wholesale")), buckets=(),
        leakage_units=int(get("leakage_units")), leakage_money=int(get("leakage_money")),
        legs=(), at_s=ended.timestamp() if ended is not None else 0.0,
        balance_after=int(get("balance_after")), reason=get("reason") or "",
        money_delta=int(get("money_delta")),
    )  # fmt: skip


async def store_records(
    url: str, tenants: Iterable[str], start_s: float, end_s: float
) -> list[LedgerRecord]:
    """The tenants' stored records with ``start_s <= ended_at < end_s`` (each as its own
    database role, like any tenant-scoped read)."""
    start = datetime.fromtimestamp(start_s - WINDOW_MARGIN_S, UTC)
    end = datetime.fromtimestamp(end_s + WINDOW_MARGIN_S, UTC)
    out: list[LedgerRecord] = []
    store = await UsageStore.open(url, pool_max=2, application_name="ocs-sim-verify")
    try:
        for tenant in sorted(set(tenants)):
            try:
                async for chunk in store.iter_export(tenant, start, end):
                    out.extend(record_of(row) for row in chunk)
            except UnknownTenant:
                continue  # nothing of this tenant was ever stored
    finally:
        await store.close()
    return out
