"""Tenant isolation enforced by Redis ACLs: tenant A's connection cannot touch B's keys."""

from __future__ import annotations

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from balance import keys
from balance.ledger import Ledger
from balance.scripts import ScriptSet, run_script
from balance.tenants import provision_tenant, tenant_password
from tests.balance.scenarios import NOW, rg

SECRET = b"0123456789abcdef-test-secret"


async def test_tenant_connection_cannot_touch_another_tenants_keys(redis_url: str) -> None:
    admin = aioredis.Redis.from_url(redis_url)
    for tenant in ("acme", "beta"):
        await provision_tenant(admin, tenant, tenant_password(SECRET, tenant))
    acme = Ledger.for_tenant(redis_url, "acme", tenant_password(SECRET, "acme"))
    beta = Ledger.for_tenant(redis_url, "beta", tenant_password(SECRET, "beta"))
    try:
        # Each tenant's charging path works on its own connection.
        await acme.provision_account("sub", balance=100, now_s=NOW)
        await beta.provision_account("sub", balance=100, now_s=NOW)
        granted = await acme.credit_control("sub", "s", "s:0", [rg(requested=10)], now_s=NOW)
        assert granted.items[0].granted_units == 10

        beta_prefix = keys.subscriber_prefix("beta", "sub")
        beta_account = keys.account_key(beta_prefix, "sub")
        with pytest.raises(NoPermissionError):
            await acme.client.get(beta_account)
        with pytest.raises(NoPermissionError):
            await acme.client.set(beta_account, b"x")
        # A script run by tenant A and handed B's keys fails inside Redis, not in our code.
        script = ScriptSet.load()["topup"]
        with pytest.raises(NoPermissionError, match="no permissions"):
            await run_script(
                acme.client, script,
                [keys.op_key(beta_prefix, "x"), beta_account, keys.stream_key(beta_prefix)],
                [b"\x90"],
            )  # fmt: skip
        # Keys a script builds itself are checked too: the sweeper is handed tenant A's index
        # but tenant B's prefix, so its GET of B's account fails inside the script.
        acme_prefix = keys.subscriber_prefix("acme", "sub")
        await acme.client.zadd(keys.expiry_key(acme_prefix), {"sub": 1})
        sweeper = ScriptSet.load()["expire"]
        with pytest.raises(ResponseError, match=r"can.t access at least one of the keys"):
            await run_script(
                acme.client, sweeper,
                [keys.expiry_key(acme_prefix), keys.stream_key(acme_prefix)],
                [msgspec.msgpack.encode([beta_prefix, "acme", NOW, 10])],
            )  # fmt: skip
        with pytest.raises(NoPermissionError):
            await acme.client.flushall()
        assert (await beta.query("sub")).balance == 100
    finally:
        await acme.aclose()
        await beta.aclose()
        await admin.aclose()


async def test_wrong_password_is_refused(redis_url: str) -> None:
    admin = aioredis.Redis.from_url(redis_url)
    await provision_tenant(admin, "acme", tenant_password(SECRET, "acme"))
    intruder = Ledger.for_tenant(redis_url, "acme", tenant_password(b"another-secret-16b", "acme"))
    try:
        with pytest.raises(AuthenticationError):
            await intruder.client.ping()
    finally:
        await intruder.aclose()
        await admin.aclose()


def test_tenant_ids_cannot_widen_the_key_pattern() -> None:
    from balance.errors import InvalidRequest

    for bad in ("a*", "a:b", "a?", "", "x" * 65, "a[b]"):
        with pytest.raises(InvalidRequest):
            keys.acl_key_pattern(bad)
    assert keys.acl_key_pattern("acme") == "{t:acme:*"


async def test_tenant_user_falls_back_to_scripts_without_the_library(redis_url: str) -> None:
    """A tenant's user may call but not load Functions: with the library gone it runs EVALSHA."""
    admin = aioredis.Redis.from_url(redis_url)
    await provision_tenant(admin, "acme", tenant_password(SECRET, "acme"))
    await admin.function_flush()
    acme = Ledger.for_tenant(redis_url, "acme", tenant_password(SECRET, "acme"))
    try:
        await acme.provision_account("sub", balance=100, now_s=NOW)
        granted = await acme.credit_control("sub", "s", "s:0", [rg(requested=10)], now_s=NOW)
        assert granted.items[0].granted_units == 10
        assert await admin.function_list() == []
        stats = await admin.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] >= 1
    finally:
        await acme.aclose()
        await admin.aclose()
