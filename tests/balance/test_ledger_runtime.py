"""Embedded vs external Redis for the ledger, settings checks, and the URL lookup order."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from balance.errors import LimitExceeded
from ocs.config import LedgerConfig, RedisConfig
from ocs.embedded_redis import EmbeddedRedis
from ocs.ledger_runtime import LedgerRuntime, RedisSetupError, resolve_redis_url
from tests.balance.scenarios import NOW, rg


def test_url_lookup_order(tmp_path: Path) -> None:
    env = {"OCS_REDIS_URL": "redis://env:1/0"}
    assert resolve_redis_url("redis://cli:1/0", data_dir=tmp_path, environ=env) == "redis://cli:1/0"
    assert resolve_redis_url(None, data_dir=tmp_path, environ=env) == "redis://env:1/0"
    (tmp_path / "redis.url").write_text("redis://file:1/0\n")
    assert resolve_redis_url(None, data_dir=tmp_path, environ={}) == "redis://file:1/0"
    with pytest.raises(RedisSetupError, match="--redis-url"):
        resolve_redis_url(None, data_dir=tmp_path / "none", environ={})


async def test_embedded_runtime_writes_its_url_and_serves_tenants(tmp_path: Path) -> None:
    runtime = LedgerRuntime(RedisConfig(data_dir=str(tmp_path / "redis"), appendfsync="always"))
    await runtime.start()
    try:
        url_file = tmp_path / "redis" / "redis.url"
        assert url_file.read_text().strip() == runtime.url
        assert resolve_redis_url(None, data_dir=tmp_path / "redis", environ={}) == runtime.url
        ledger = await runtime.ledger_for("acme")
        await ledger.provision_account("sub", balance=7, now_s=NOW)
        assert (await ledger.query("sub")).balance == 7
        assert runtime.warnings == []
        probe = redis.Redis.from_url(runtime.url)
        assert probe.config_get("appendfsync") == {"appendfsync": "always"}
        probe.close()
    finally:
        await runtime.stop()
    assert not (tmp_path / "redis" / "redis.url").exists()


async def test_external_redis_with_evicting_policy_is_refused(private_redis: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("maxmemory-policy", "allkeys-lru")
    admin.close()
    runtime = LedgerRuntime(RedisConfig(url=private_redis.url))
    with pytest.raises(RedisSetupError, match=r"maxmemory-policy allkeys-lru.*noeviction"):
        await runtime.start()


async def test_external_redis_without_aof_warns(private_redis: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("appendonly", "no")
    admin.close()
    runtime = LedgerRuntime(RedisConfig(url=private_redis.url))
    await runtime.start()
    try:
        assert any("without AOF" in w for w in runtime.warnings)
    finally:
        await runtime.stop()


async def test_unreachable_external_redis_is_a_clear_error() -> None:
    runtime = LedgerRuntime(RedisConfig(url="redis://127.0.0.1:1/0", timeout_s=0.5))
    with pytest.raises(RedisSetupError, match="cannot reach Redis"):
        await runtime.start()


async def test_ledger_settings_reach_the_tenants_ledgers(private_redis: EmbeddedRedis) -> None:
    """``[ledger]`` limits apply to every tenant ledger the runtime hands out."""
    runtime = LedgerRuntime(RedisConfig(url=private_redis.url), LedgerConfig(sessions_max=1))
    await runtime.start()
    try:
        ledger = await runtime.ledger_for("acme")
        await ledger.provision_account("limited", balance=1000, now_s=NOW)
        await ledger.credit_control("limited", "a", "a:0", [rg(requested=1)], now_s=NOW)
        with pytest.raises(LimitExceeded):
            await ledger.credit_control("limited", "b", "b:0", [rg(requested=1)], now_s=NOW)
    finally:
        await runtime.stop()


async def test_catalog_notification_levels_reach_the_tenant_ledgers(
    private_redis: EmbeddedRedis,
) -> None:
    """Levels set before and after a tenant's ledger exists both apply; the tenant's own ACL
    user writes the event (its key pattern covers the shard's event stream)."""
    from tests.balance.test_events import events_of

    runtime = LedgerRuntime(RedisConfig(url=private_redis.url))
    await runtime.start()
    try:
        runtime.set_notification_levels({"acme": (500,)})
        ledger = await runtime.ledger_for("acme")
        await ledger.provision_account("low", balance=1000, now_s=NOW)
        await ledger.credit_control("low", "a", "a:0", [rg(used=600, terminate=True)], now_s=NOW)
        runtime.set_notification_levels({"acme": (300,)})
        await ledger.credit_control("low", "b", "b:0", [rg(used=200, terminate=True)], now_s=NOW)
        got = [(e.type, e.payload.get("level")) for e in await events_of(ledger, "low")]
        assert got == [("created", None), ("balance_below", 500), ("balance_below", 300)]
    finally:
        await runtime.stop()
