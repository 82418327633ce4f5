"""1,000 concurrent reservations against an account funded for exactly N units: N granted."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from balance.errors import InsufficientCredit, Outcome
from balance.ledger import Ledger
from balance.records import UsedLeg
from tariffs.price import Price
from tests.balance.scenarios import NOW, rg

FUNDED_UNITS = 137
CONTENDERS = 1000
ONE_MICRO_PER_UNIT = Price(1, 1, 0, 1)


async def test_concurrent_reservations_grant_exactly_the_funded_units(redis_url: str) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=100)
    client = aioredis.Redis(connection_pool=pool)
    ledger = Ledger(client, "acme", sessions_max=CONTENDERS + 1)
    await ledger.provision_account("rich", balance=FUNDED_UNITS, now_s=NOW)

    async def reserve(n: int) -> int:
        item = rg(requested=1, price=ONE_MICRO_PER_UNIT)
        result = await ledger.credit_control("rich", f"s{n}", f"s{n}:0", [item], now_s=NOW)
        return result.items[0].granted_units

    grants = await asyncio.gather(*(reserve(n) for n in range(CONTENDERS)))
    assert sum(grants) == FUNDED_UNITS
    assert set(grants) == {0, 1}
    account = await ledger.query("rich")
    assert (account.balance, account.held_money) == (0, FUNDED_UNITS)
    refused = await ledger.credit_control(
        "rich", "late", "late:0", [rg(requested=1, price=ONE_MICRO_PER_UNIT)], now_s=NOW
    )
    assert refused.items[0].outcome is Outcome.CREDIT_LIMIT_REACHED
    await client.aclose()
    await pool.disconnect()


async def test_concurrent_event_debits_charge_exactly_the_funded_units(redis_url: str) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=100)
    client = aioredis.Redis(connection_pool=pool)
    ledger = Ledger(client, "acme")
    await ledger.provision_account("sms", balance=FUNDED_UNITS, now_s=NOW)

    async def debit(n: int) -> bool:
        try:
            await ledger.debit_event(
                "sms", f"e{n}", service="sms", rating_group=1,
                legs=[UsedLeg("sms", 1, ONE_MICRO_PER_UNIT)], now_s=NOW,
            )  # fmt: skip
        except InsufficientCredit:
            return False
        return True

    outcomes = await asyncio.gather(*(debit(n) for n in range(CONTENDERS)))
    assert sum(outcomes) == FUNDED_UNITS
    assert (await ledger.query("sms")).balance == 0
    await client.aclose()
    await pool.disconnect()
