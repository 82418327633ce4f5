"""kill -9 of the dispatcher mid-delivery: every event still reaches the receiver, once per
idempotency key; another worker takes the dead one's entries over (XAUTOCLAIM)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from balance import keys
from balance.ledger import Ledger
from tests.events.receivers import SECRET, Server, WebhookReceiver

NOW = 1_700_000_000.0
EVENTS = 120


def start(dispatch_file: Path, redis_url: str, consumer: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ocs", "dispatch", "--plugins", str(dispatch_file),
         "--redis-url", redis_url, "--consumer", consumer],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def wait_for(condition: object, timeout_s: float = 90.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached within the bounded wait")


async def test_kill_9_mid_delivery_loses_nothing_and_duplicates_nothing_per_key(
    redis_url: str, tmp_path: Path
) -> None:
    client: Any = aioredis.Redis.from_url(redis_url)
    ledger = Ledger(client, "crash")
    subs = [f"49170990400{n:03d}" for n in range(EVENTS)]
    for s in subs:
        await ledger.provision_account(s, balance=1, now_s=NOW)
    expected = set()
    for shard in {keys.vshard(s) for s in subs}:
        stream = keys.event_key(keys.shard_prefix("crash", shard))
        expected |= {f"crash:{shard}:{e.decode()}" for e, _ in await client.xrange(stream)}
    assert len(expected) == EVENTS

    receiver = WebhookReceiver(delay_s=0.02)
    server = Server(receiver)
    dispatch_file = tmp_path / "dispatch.yaml"
    dispatch_file.write_text(
        "settings: {poll_s: 0.05, scan_every_s: 0.5, claim_idle_s: 1.0}\n"
        f"plugins:\n  - {{name: hook, kind: webhook, tenants: [crash],\n"
        f"      options: {{url: '{server.url}', secret: '{SECRET}'}}}}\n"
    )
    first = start(dispatch_file, redis_url, "worker-a")
    try:
        await wait_for(lambda: len(receiver.keys()) >= 10)
        os.kill(first.pid, signal.SIGKILL)  # mid-delivery: requests in flight, acks not sent
        first.wait(timeout=30)
        assert len(receiver.keys()) < EVENTS
        second = start(dispatch_file, redis_url, "worker-b")  # takes worker-a's entries over
        try:
            await wait_for(lambda: len(receiver.keys()) >= EVENTS)
            delivered = receiver.keys()
            assert set(delivered) == expected and len(delivered) == EVENTS

            # Every entry is acknowledged in the end (nothing left pending in the group).
            async def pending() -> int:
                total = 0
                for shard in {keys.vshard(s) for s in subs}:
                    stream = keys.event_key(keys.shard_prefix("crash", shard))
                    total += int((await client.xpending(stream, "dispatch:hook"))["pending"])
                return total

            for _ in range(300):
                if await pending() == 0:
                    break
                await asyncio.sleep(0.1)
            assert await pending() == 0
        finally:
            second.terminate()
            assert second.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()
        server.close()
        await client.aclose()
