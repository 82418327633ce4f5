"""What an ``appendfsync everysec`` crash may lose (docs/guarantees.md). Redis writes the AOF
before it replies, so a kill -9 of redis-server alone loses nothing (the kernel still has the
data); a machine crash may lose the last second or so of acknowledged operations, whole. What a
crash never does: apply an operation twice, or leave balances that disagree with the records
that survived; and an operation it lost is charged once when the gateway retransmits it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from balance import keys
from balance.errors import LedgerUnavailable
from balance.ledger import Ledger
from balance.records import RatingGroupRequest
from balance.streams import RecordReader
from ocs.embedded_redis import EmbeddedRedis
from tests.balance.scenarios import NOW, rg

INITIAL = 10_000_000
WORKERS = 16
KILL_AFTER_ACKS = 300


def _item(n: int) -> RatingGroupRequest:
    return rg(used=10 + n % 7, terminate=True)


@pytest.fixture
def everysec_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="everysec")
    server.start()
    yield server
    server.stop()


async def _usage(client: aioredis.Redis, group: str) -> list[object]:
    reader = RecordReader(client, "acme", group, "c")
    records = []
    while batch := await reader.read(keys.vshard("sub"), count=10_000):
        records.extend(r.record for r in batch)
    return [r for r in records if r.kind == "usage"]


async def test_an_everysec_crash_loses_only_whole_recent_operations(
    everysec_redis: EmbeddedRedis,
) -> None:
    client = aioredis.Redis.from_url(everysec_redis.url, socket_timeout=2.0)
    ledger = Ledger(client, "acme", sessions_max=10_000)
    await ledger.provision_account("sub", balance=INITIAL, now_s=NOW)
    acked: list[str] = []
    killed = asyncio.Event()
    counter = iter(range(1_000_000))

    async def worker() -> None:
        while not killed.is_set():
            n = next(counter)
            try:
                await ledger.credit_control("sub", f"s{n}", f"s{n}:0", [_item(n)], now_s=NOW)
            except LedgerUnavailable:
                return
            acked.append(f"s{n}:0")
            if len(acked) >= KILL_AFTER_ACKS and not killed.is_set():
                killed.set()
                everysec_redis.kill()

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    with contextlib.suppress(Exception):
        await client.aclose()
    # A machine crash loses what the kernel had not written to disk yet: cut the AOF's tail
    # (Redis loads a truncated AOF up to its last whole command, aof-load-truncated yes).
    (incr,) = (everysec_redis.data_dir / "appendonlydir").glob("*.incr.aof")
    with incr.open("r+b") as aof:
        aof.truncate(incr.stat().st_size * 2 // 3)
    everysec_redis.start()
    client = aioredis.Redis.from_url(everysec_redis.url)
    ledger = Ledger(client, "acme", sessions_max=10_000)
    try:
        usage = await _usage(client, "audit")
        op_ids = [r.op_id for r in usage]  # type: ignore[attr-defined]
        assert len(op_ids) == len(set(op_ids)), "an operation was applied twice"
        account = await ledger.query("sub")
        retail = sum(r.retail for r in usage)  # type: ignore[attr-defined]
        assert account.balance + account.held_money == INITIAL - retail
        lost = [op for op in acked if op not in set(op_ids)]
        print(f"\neverysec, AOF tail lost: {len(acked)} acknowledged, {len(lost)} lost")
        assert lost, "the cut AOF tail held acknowledged operations"
        # The gateway retransmits what it never saw settled: each lost one is charged once.
        for op_id in lost:
            n = int(op_id.split(":")[0][1:])
            for _ in range(2):
                await ledger.credit_control("sub", f"s{n}", op_id, [_item(n)], now_s=NOW)
        usage = await _usage(client, "audit-after")
        assert {r.op_id for r in usage} >= set(acked)  # type: ignore[attr-defined]
        assert len(usage) == len({r.op_id for r in usage})  # type: ignore[attr-defined]
    finally:
        await client.aclose()
