"""Add-ons: fee and buckets in one ledger call (grant.lua), through ``ocs account buy``."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from balance.errors import InsufficientCredit
from balance.ledger import Ledger
from balance.products import BucketSpec, Carry, grant_product
from balance.records import Account, BucketUnit
from tests.balance.test_account_cli import ACME_1, ACME_2, run, store

NOW = 1_790_000_000.0


def query(url: str, tenant: str, subscriber: str) -> Account:
    async def go() -> Account:
        client = aioredis.Redis.from_url(url)
        try:
            return await Ledger(client, tenant).query(subscriber)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_buy_with_and_without_enough_balance(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store(redis_url)
    base = ("--tenant", "acme", "--redis-url", redis_url)
    assert run(capsys, "account", "create", *base, ACME_1, "--balance", "12.00")[0] == 0
    assert run(capsys, "account", "create", *base, ACME_2, "--balance", "9.00")[0] == 0
    for attempt in range(2):  # a retried purchase with its op id charges once
        code, out, err = run(
            capsys, "account", "buy", *base, ACME_1, "roam_world_500m", "--op-id", "B-1"
        )
        assert code == 0 and ("already applied" in out) == (attempt == 1), (out, err)
    account = query(redis_url, "acme", ACME_1)
    assert account.balance == 12_000_000 - 9_990_000
    (bucket,) = account.buckets
    assert (bucket.kind, bucket.remaining) == ("roam_world_500m.data", 524_288_000)
    # 9.00 does not pay 9.99: refused with 4012, nothing granted, nothing charged.
    code, _, err = run(capsys, "account", "buy", *base, ACME_2, "roam_world_500m")
    assert code == 1 and "(result code 4012)" in err
    account = query(redis_url, "acme", ACME_2)
    assert account.balance == 9_000_000 and account.buckets == ()
    code, _, err = run(capsys, "account", "buy", *base, ACME_2, "data_10g")
    assert (
        code == 1 and "offers no add-on 'data_10g' (add-ons: roam_world_500m, minutes_100)" in err
    )
    code, out, _ = run(capsys, "account", "buy", *base, ACME_2, "minutes_100", "--json")
    assert code == 0 and json.loads(out)["balance_micro"] == 5_000_000


def spec(tag: str, amount: int, carry: Carry = Carry.KEEP, cap: int = 0) -> BucketSpec:
    return BucketSpec(
        f"m.data#{tag}", "m.data", BucketUnit.BYTES, amount, 10, NOW + 1000, carry, cap
    )


async def test_grant_carry_rules(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    ledger = Ledger(client, "t")
    try:
        await ledger.provision_account("s1", balance=100, now_s=NOW)
        await grant_product(ledger, "s1", product="p", fee=10, buckets=[spec("a", 500)], now_s=NOW)
        # Rollover capped at 200 of the 500 left: the new bucket holds 1000 + 200.
        await grant_product(
            ledger,
            "s1",
            product="p",
            fee=10,
            buckets=[spec("b", 1000, Carry.ROLLOVER, 200)],
            now_s=NOW + 1,
        )
        account = await ledger.query("s1")
        assert [(b.id, b.remaining) for b in account.buckets] == [("m.data#b", 1200)]
        assert account.balance == 80
        # Expire: the old remainder is gone, the new bucket has exactly its amount.
        await grant_product(
            ledger, "s1", product="p", fee=0, buckets=[spec("c", 300, Carry.EXPIRE)], now_s=NOW + 2
        )
        account = await ledger.query("s1")
        assert [(b.id, b.remaining) for b in account.buckets] == [("m.data#c", 300)]
        with pytest.raises(InsufficientCredit):
            await grant_product(
                ledger,
                "s1",
                product="p",
                fee=81,
                buckets=[spec("d", 1, Carry.EXPIRE)],
                now_s=NOW + 3,
            )
        after = await ledger.query("s1")
        assert after == account  # refused: nothing changed, not even the old bucket
    finally:
        await client.aclose()


async def test_a_purchase_retried_seconds_later_replays(redis_url: str) -> None:
    """The retry computes its buckets' expiry from its own clock: still the same purchase."""
    client = aioredis.Redis.from_url(redis_url)
    ledger = Ledger(client, "t")
    try:
        await ledger.provision_account("s1", balance=100, now_s=NOW)
        first = await grant_product(
            ledger, "s1", product="p", fee=10, buckets=[spec("a", 500)], now_s=NOW, op_id="buy-1"
        )
        later = BucketSpec(
            "m.data#a", "m.data", BucketUnit.BYTES, 500, 10, NOW + 1007, Carry.KEEP, 0
        )
        retry = await grant_product(
            ledger, "s1", product="p", fee=10, buckets=[later], now_s=NOW + 7, op_id="buy-1"
        )
        assert not first.replayed and retry.replayed
        account = await ledger.query("s1")
        assert account.balance == 90 and len(account.buckets) == 1
    finally:
        await client.aclose()
