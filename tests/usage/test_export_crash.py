"""kill -9 of an ``ocs export`` process mid-export, then a restart and a second exporter: the
store ends up equal to the ledger (counts and money per tenant), nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from balance.ledger import Ledger
from tests.support.export import install_catalog_texts, stream_lengths, wait_for
from tests.support.ledger_truth import ledger_totals, store_totals
from usage.store import UsageStore

TENANTS = ("acme", "globex")
CONFIG = """
[export]
listen_port = 0
batch_size = 250
block_ms = 200
linger_ms = 20
claim_idle_ms = 1000
tenants_refresh_s = 0.5
lag_interval_s = 0.5
retry_max_s = 0.5
"""


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _fill(ledger: Ledger, prefix: str, subscribers: int) -> None:
    """Each subscriber: a provision and three top-ups (4 records), 50 subscribers at a time."""

    async def one(index: int) -> None:
        subscriber = f"{prefix}{index:06d}"
        await ledger.provision_account(subscriber, balance=100, now_s=1_790_000_000.0)
        for step in range(3):
            await ledger.topup(subscriber, 1 + step, now_s=1_790_000_000.0 + step)

    for start in range(0, subscribers, 50):
        await asyncio.gather(*(one(i) for i in range(start, min(subscribers, start + 50))))


def _exporter(tmp_path: Path, redis_url: str, store_url: str, name: str) -> subprocess.Popen[bytes]:
    config = tmp_path / "export.toml"
    config.write_text(CONFIG, encoding="utf-8")
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable, "-m", "ocs", "export", "--config", str(config),
            "--redis-url", redis_url, "--redis-data-dir", str(tmp_path / "redis"),
            "--store-url", store_url, "--log-level", "warning",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


async def test_kill_9_mid_export_then_restart_and_a_second_exporter(
    tmp_path: Path, redis_url: str, store_url: str, admin: aioredis.Redis
) -> None:
    await install_catalog_texts(admin)
    await _fill(Ledger(admin, "acme"), "491709", 2500)
    await _fill(Ledger(admin, "globex"), "491719", 500)
    expected = {t: await ledger_totals(admin, t) for t in TENANTS}
    assert expected["acme"][0] == 10_000 and expected["globex"][0] == 2_000
    store = await UsageStore.open(store_url, pool_max=2)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        first = _exporter(tmp_path, redis_url, store_url, "first")
        processes.append(first)

        async def started() -> bool:
            return (await store_totals(store, "acme"))[0] > 0

        await wait_for(started, timeout_s=60, what="the first exporter stored something")
        os.kill(first.pid, signal.SIGKILL)  # mid-export: batches read, stored, acked or not
        first.wait(timeout=30)
        processes.append(_exporter(tmp_path, redis_url, store_url, "restarted"))
        processes.append(_exporter(tmp_path, redis_url, store_url, "second"))

        async def equal() -> bool:
            return all([await store_totals(store, t) == expected[t] for t in TENANTS])

        await wait_for(equal, timeout_s=120, what="store equals the ledger")
        for tenant in TENANTS:
            # Also what the killed exporter acknowledged but had not trimmed yet.
            await wait_for(lambda t=tenant: _empty(admin, t), what=f"{tenant} trimmed")  # type: ignore[misc]
        for process in processes[1:]:
            process.send_signal(signal.SIGTERM)
        for process in processes[1:]:
            assert process.wait(timeout=30) == 0
        # Nothing arrived twice or late: the figures are still exactly the ledger's.
        for tenant in TENANTS:
            assert await store_totals(store, tenant) == expected[tenant]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        await store.close()


async def _empty(admin: aioredis.Redis, tenant: str) -> bool:
    return await stream_lengths(admin, tenant) == 0
