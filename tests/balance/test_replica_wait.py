"""``redis.wait_replicas``: each pipelined batch of ledger calls ends with WAIT, and its answers
leave only after the WAIT's reply; fewer replicas than asked still answers as charged, counted.
Against a real primary and replica on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import redis
import redis.asyncio as aioredis

from balance import keys
from balance.ledger import Ledger
from balance.records import Account
from balance.replica_wait import ReplicaWait, supports_waitaof, version_tuple
from ocs.config import ConfigError, RedisConfig, load_config
from ocs.embedded_redis import EmbeddedRedis
from ocs.ledger_runtime import LedgerRuntime
from tests.balance import scenarios

SYNC_TIMEOUT_S = 60.0  # a safety net for the replica's first sync on a loaded box


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedRedis, EmbeddedRedis]]:
    base = tmp_path_factory.mktemp("pair")
    primary = EmbeddedRedis(Path(base) / "primary")
    primary.start()
    replica = EmbeddedRedis(
        Path(base) / "replica", extra_args=("--replicaof", primary.host, str(primary.port))
    )
    try:
        replica.start()
        _wait_synced(replica)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def _wait_synced(replica: EmbeddedRedis) -> None:
    client = redis.Redis(host=replica.host, port=replica.port)
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    try:
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
    finally:
        client.close()


async def _charge(ledger: Ledger, subscribers: list[str], tag: str) -> None:
    item = scenarios.rg(requested=10)
    results = await asyncio.gather(
        *(ledger.credit_control(s, f"{tag}-{s}", f"{tag}-{s}:0", [item], now_s=0.0)
          for s in subscribers)
    )  # fmt: skip
    assert all(r.items[0].granted_units == 10 for r in results)


def test_version_detection() -> None:
    assert version_tuple("7.0.15") == (7, 0, 15) and version_tuple("7.2-rc1") == (7,)
    assert not supports_waitaof("7.0.15") and supports_waitaof("7.2.0")
    assert supports_waitaof("8.0.1") and not supports_waitaof("6.2.14")


def test_the_wait_timeout_must_fit_in_the_call_timeout() -> None:
    with pytest.raises(ConfigError, match=r"redis\.wait_timeout_ms"):
        load_config(overrides={"redis": {"wait_timeout_ms": 1000, "timeout_s": 1.0}}, environ={})
    with pytest.raises(ConfigError, match=r"redis\.wait_replicas"):
        load_config(overrides={"redis": {"wait_replicas": -1}}, environ={})


async def test_answers_wait_for_the_replica_and_a_missing_one_is_counted(
    pair: tuple[EmbeddedRedis, EmbeddedRedis],
) -> None:
    primary, replica = pair
    shorts: list[tuple[int, int]] = []
    wait = ReplicaWait(1, 500, on_short=lambda acked, calls: shorts.append((acked, calls)))
    client = aioredis.Redis.from_url(primary.url)
    await client.flushall()
    ledger = Ledger(client, "acme", replica_wait=wait)
    subscribers = [f"4917093{n:05d}" for n in range(20)]
    try:
        for subscriber in subscribers:
            await ledger.provision_account(subscriber, balance=10**6, now_s=scenarios.NOW)
        await _charge(ledger, subscribers, "warm")  # connects the lean connection
        batches = wait.batches
        await _charge(ledger, subscribers, "acked")
        assert wait.batches > batches and wait.short_batches == 0 and not shorts
        # Every answered charge was on the replica when its answer came.
        replica_client = aioredis.Redis(host=replica.host, port=replica.port)
        try:
            for subscriber in subscribers:
                key = keys.account_key(keys.subscriber_prefix("acme", subscriber), subscriber)
                raw = await replica_client.get(key)
                assert isinstance(raw, bytes)
                on_replica = msgspec.msgpack.decode(raw, type=Account)
                assert len(on_replica.sessions) == 2  # warm, acked
        finally:
            await replica_client.aclose()

        # No replica (its link cut): answers still come, as charged, after the timeout, counted.
        replica_admin = redis.Redis(host=replica.host, port=replica.port)
        replica_admin.execute_command("REPLICAOF", "NO", "ONE")  # type: ignore[no-untyped-call]
        try:
            await _charge(ledger, subscribers, "unacked")
            assert wait.short_batches > 0 and wait.short_calls >= 1
            assert all(acked < 1 for acked, _ in shorts)
            account = await ledger.query(subscribers[1])
            assert len(account.sessions) == 3  # warm, acked, unacked: all charged
        finally:
            replica_admin.execute_command(  # type: ignore[no-untyped-call]
                "REPLICAOF", primary.host, str(primary.port)
            )
            replica_admin.close()
            _wait_synced(replica)
    finally:
        await ledger.aclose()


async def test_runtime_waits_with_the_tenant_user_and_falls_back_from_waitaof(
    pair: tuple[EmbeddedRedis, EmbeddedRedis], tmp_path: Path
) -> None:
    primary, _ = pair
    config = RedisConfig(
        url=primary.url, data_dir=str(tmp_path), wait_replicas=1, wait_timeout_ms=500,
        wait_aof=True,
    )  # fmt: skip
    runtime = LedgerRuntime(config)
    await runtime.start()
    try:
        wait = runtime.replica_wait
        assert wait is not None and not wait.aof  # Redis 7.0 here: WAIT, and a warning
        assert any("WAITAOF" in warning for warning in runtime.warnings)
        ledger = await runtime.ledger_for("acme")
        await ledger.provision_account("4917094000001", balance=10**6, now_s=scenarios.NOW)
        for tag in ("a", "b", "c"):  # the first may go before the lean connection is open
            await _charge(ledger, ["4917094000001"], tag)
        assert runtime.replica_wait_stats()[0] > 0 and runtime.replica_wait_stats()[1] == 0
    finally:
        await runtime.stop()
