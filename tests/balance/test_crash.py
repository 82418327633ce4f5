"""kill -9 of redis-server during a load of commits (appendfsync always): after a restart every
acknowledged operation is present exactly once and the money adds up."""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis

from balance import keys
from balance.errors import LedgerUnavailable
from balance.ledger import Ledger
from balance.streams import RecordReader
from ocs.embedded_redis import EmbeddedRedis
from tests.balance.scenarios import NOW, rg

INITIAL = 10_000_000
WORKERS = 16
KILL_AFTER_ACKS = 300


async def test_acknowledged_commits_survive_kill_9(private_redis: EmbeddedRedis) -> None:
    client = aioredis.Redis.from_url(private_redis.url, socket_timeout=2.0)
    ledger = Ledger(client, "acme", sessions_max=10_000)
    await ledger.provision_account("sub", balance=INITIAL, now_s=NOW)
    acked: dict[str, bytes] = {}
    killed = asyncio.Event()
    counter = iter(range(1_000_000))

    async def worker() -> None:
        while not killed.is_set():
            n = next(counter)
            item = rg(used=10 + n % 7, terminate=True)
            try:
                result = await ledger.credit_control("sub", f"s{n}", f"s{n}:0", [item], now_s=NOW)
            except LedgerUnavailable:
                return
            acked[f"s{n}:0"] = result.raw
            if len(acked) >= KILL_AFTER_ACKS and not killed.is_set():
                killed.set()
                private_redis.kill()

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    with contextlib.suppress(Exception):
        await client.aclose()

    private_redis.start()
    client = aioredis.Redis.from_url(private_redis.url)
    ledger = Ledger(client, "acme")
    try:
        reader = RecordReader(client, "acme", "audit", "c")
        records = []
        while batch := await reader.read(keys.vshard("sub"), count=10_000):
            records.extend(r.record for r in batch)
        usage = [r for r in records if r.kind == "usage"]
        op_ids = [r.op_id for r in usage]
        assert len(op_ids) == len(set(op_ids)), "an operation was applied twice"
        assert set(acked) <= set(op_ids), "an acknowledged operation was lost"
        account = await ledger.query("sub")
        assert account.balance + account.held_money == INITIAL - sum(r.retail for r in usage)
        # Replaying acknowledged operations returns their stored results and charges nothing.
        for op_id, raw in list(acked.items())[:50]:
            session = op_id.split(":")[0]
            n = int(session[1:])
            again = await ledger.credit_control(
                "sub", session, op_id, [rg(used=10 + n % 7, terminate=True)], now_s=NOW
            )
            assert again.replayed and again.raw == raw
        assert (await ledger.query("sub")).balance == account.balance
    finally:
        await client.aclose()
