"""Finding 1 of issue #11, below the server: every path that talks to Redis as a tenant gets the
tenant's user back when Redis forgot it (restart without an ACL file, ACL DELUSER), and the
embedded Redis keeps the users in its ACL file across a kill -9."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from balance.errors import LedgerUnavailable
from balance.ledger import Ledger
from balance.tenants import provision_tenant, tenant_password, tenant_username
from ocs.embedded_redis import EmbeddedRedis
from ocs.sip_charging.store import CallStore
from tests.balance.scenarios import NOW, rg

SECRET = b"0123456789abcdef-test-secret"
PASSWORD = tenant_password(SECRET, "acme")


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    await provision_tenant(client, "acme", PASSWORD)
    yield client
    await client.aclose()


def _ledger(redis_url: str, admin: aioredis.Redis) -> Ledger:
    async def repair() -> None:
        await provision_tenant(admin, "acme", PASSWORD)

    return Ledger.for_tenant(redis_url, "acme", PASSWORD, repair=repair)


async def _forget_user(admin: aioredis.Redis) -> None:
    # What a restarted Redis without an ACL file looks like to the tenant: the user is gone
    # and its open connections are closed.
    await admin.execute_command("ACL", "DELUSER", tenant_username("acme"))


async def test_every_tenant_path_repairs_a_forgotten_user(
    redis_url: str, admin: aioredis.Redis
) -> None:
    ledger = _ledger(redis_url, admin)
    try:
        await ledger.provision_account("sub", balance=1_000, now_s=NOW)
        await ledger.credit_control("sub", "s", "s:0", [rg(requested=10)], now_s=NOW)

        await _forget_user(admin)  # the Diameter path (one script call per CCR)
        result = await ledger.credit_control("sub", "s2", "s2:0", [rg(requested=5)], now_s=NOW)
        assert result.items[0].granted_units == 5

        await _forget_user(admin)  # the Tcc sweeper
        assert await ledger.expire_shard(0, NOW) == []

        await _forget_user(admin)  # account queries
        account = await ledger.query("sub")
        assert account.balance + account.held_money == 1_000

        await _forget_user(admin)  # the SIP call store (authorizer and auto-end sweep)
        store = CallStore(ledger.client, "acme", record_ttl_s=60, guard=ledger.access)
        assert await store.due(NOW) == []

        await _forget_user(admin)  # record stream readers
        assert await ledger.read_usage_records("g", "c", vshards=[0]) == []
        assert ledger.access.repairs == 5
    finally:
        await ledger.aclose()


async def test_a_lost_functions_library_is_reloaded_on_the_admin_connection(
    redis_url: str, admin: aioredis.Redis
) -> None:
    ledger = _ledger(redis_url, admin)
    try:
        await ledger.provision_account("sub", balance=1_000, now_s=NOW)
        await ledger.credit_control("sub", "s", "s:0", [rg(requested=10)], now_s=NOW)
        await admin.execute_command("FUNCTION", "FLUSH")
        await ledger.credit_control("sub", "s2", "s2:0", [rg(requested=5)], now_s=NOW)
        assert await admin.execute_command("FUNCTION", "LIST"), "library loaded again"
        assert ledger._scripts._functions, "still on FCALL, not fallen back to EVALSHA"
    finally:
        await ledger.aclose()


async def test_without_repair_a_forgotten_user_stays_refused(
    redis_url: str, admin: aioredis.Redis
) -> None:
    ledger = Ledger.for_tenant(redis_url, "acme", PASSWORD)
    try:
        await ledger.provision_account("sub", balance=1_000, now_s=NOW)
        await _forget_user(admin)
        with pytest.raises(LedgerUnavailable):
            await ledger.provision_account("sub2", balance=1, now_s=NOW)
    finally:
        await ledger.aclose()


async def test_embedded_redis_keeps_tenant_users_across_kill_9(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="always", aclfile=True)
    server.start()
    try:
        admin = aioredis.Redis.from_url(server.url)
        await provision_tenant(admin, "acme", PASSWORD)
        await admin.aclose()
        server.kill()
        server.start()
        tenant = redis.Redis.from_url(
            server.url, username=tenant_username("acme"), password=PASSWORD
        )
        assert tenant.ping()
        tenant.close()
    finally:
        server.stop()
