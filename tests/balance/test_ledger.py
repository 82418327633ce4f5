"""The ledger scenarios against a standalone redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from balance.errors import LedgerOverloaded, LedgerUnavailable
from balance.ledger import Ledger
from balance.records import BucketUnit
from ocs.embedded_redis import EmbeddedRedis
from tests.balance import scenarios


@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario(ledger: Ledger, scenario: scenarios.Scenario) -> None:
    await scenario(ledger)


async def test_script_cache_loss_fails_no_request(ledger: Ledger) -> None:
    await ledger.provision_account("sub", balance=1000, now_s=scenarios.NOW)
    await ledger.client.script_flush()
    one = await ledger.credit_control("sub", "s", "s:0", [scenarios.rg(requested=1)], now_s=0.0)
    assert one.items[0].granted_units == 1
    await ledger.client.script_flush()
    many = await asyncio.gather(
        *(
            ledger.credit_control("sub", f"c{n}", f"c{n}:0", [scenarios.rg(requested=1)], now_s=0)
            for n in range(20)
        )
    )
    assert all(result.items[0].granted_units == 1 for result in many)


async def test_redis_restart_fails_no_request(private_redis: EmbeddedRedis) -> None:
    client = aioredis.Redis.from_url(private_redis.url)
    ledger = Ledger(client, "acme")
    try:
        await ledger.provision_account("sub", balance=1000, now_s=scenarios.NOW)
        await ledger.topup("sub", 1, now_s=scenarios.NOW)
        private_redis.restart()  # the AOF is replayed; the script cache is empty
        result = await ledger.credit_control(
            "sub", "s", "s:0", [scenarios.rg(requested=1)], now_s=scenarios.NOW
        )
        assert result.items[0].granted_units == 1 and result.balance == 991
    finally:
        await client.aclose()


def test_ledger_on_uvloop(redis_url: str) -> None:
    """The server runs on uvloop: the lean connection must work on its transports too."""
    import uvloop

    async def run() -> int:
        client = aioredis.Redis.from_url(redis_url)
        ledger = Ledger(client, "acme")
        try:
            await ledger.provision_account("sub", balance=100, now_s=scenarios.NOW)
            results = await asyncio.gather(
                *(ledger.topup("sub", 1, now_s=scenarios.NOW) for _ in range(10))
            )
            return max(r.summary.balance for r in results)
        finally:
            await ledger.aclose()

    assert uvloop.run(run()) == 110


async def test_unanswered_calls_time_out_as_unavailable(redis_url: str) -> None:
    from balance.errors import LedgerUnavailable

    admin = aioredis.Redis.from_url(redis_url)
    client = aioredis.Redis.from_url(redis_url, socket_timeout=0.3)
    ledger = Ledger(client, "acme")
    try:
        await ledger.provision_account("sub", balance=100, now_s=scenarios.NOW)
        await admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        with pytest.raises(LedgerUnavailable, match="did not answer"):
            await ledger.topup("sub", 1, now_s=scenarios.NOW)
        await admin.execute_command("CLIENT", "UNPAUSE")
        # The timed-out line was dropped; the next call reconnects, and the top-up (applied or
        # not while paused) is never applied twice under its op id.
        assert (await ledger.topup("sub", 1, now_s=scenarios.NOW)).summary.balance in (101, 102)
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await ledger.aclose()
        await admin.aclose()


async def test_function_library_is_loaded_and_reloaded_after_loss(ledger: Ledger) -> None:
    """The lean connection calls the scripts as Functions; FUNCTION FLUSH fails no request."""
    await ledger.provision_account("sub", balance=1000, now_s=scenarios.NOW)
    libraries = await ledger.client.function_list()
    assert len(libraries) == 1
    await ledger.client.config_resetstat()
    one = await ledger.credit_control("sub", "s", "s:0", [scenarios.rg(requested=1)], now_s=0.0)
    assert one.items[0].granted_units == 1
    stats = await ledger.client.info("commandstats")
    assert stats["cmdstat_fcall"]["calls"] == 1 and "cmdstat_evalsha" not in stats
    await ledger.client.function_flush()
    many = await asyncio.gather(
        *(
            ledger.credit_control("sub", f"c{n}", f"c{n}:0", [scenarios.rg(requested=1)], now_s=0)
            for n in range(20)
        )
    )
    assert all(result.items[0].granted_units == 1 for result in many)
    assert len(await ledger.client.function_list()) == 1


async def test_hot_path_starts_the_call_without_a_task_and_waits_when_full(
    redis_url: str,
) -> None:
    """``credit_control`` writes the call at once on an open lean connection; calls
    beyond the in-flight limit wait for a slot, and every one is answered."""
    client = aioredis.Redis.from_url(redis_url)
    ledger = Ledger(client, "acme", in_flight_max=2)
    try:
        await ledger.provision_account("hot", balance=1000, now_s=scenarios.NOW)
        started = [
            ledger.credit_control(
                "hot", f"h{n}", f"h{n}:0", [scenarios.rg(requested=1)], now_s=scenarios.NOW
            )
            for n in range(5)
        ]
        # Two written at once (the slots are taken before any reply), three on the full path.
        assert ledger._in_flight.inside == 2 and ledger._in_flight.waits == 0
        assert not any(isinstance(f, asyncio.Task) for f in started)
        results = await asyncio.gather(*started)
        assert ledger._in_flight.waits == 3
        assert [r.items[0].granted_units for r in results] == [1] * 5
        hold = 1000 - results[0].balance
        assert hold > 0 and results[-1].balance == 1000 - 5 * hold == 1000 - results[-1].held_money
        assert ledger._in_flight.inside == 0
    finally:
        await ledger.aclose()


async def test_overload_is_refused_at_once_past_the_waiting_queue(redis_url: str) -> None:
    """With every slot taken and ``waiting_max`` calls queued, the next call fails at once with
    LedgerOverloaded (3004 for a CCR) and is not applied; the queued ones all are."""
    client = aioredis.Redis.from_url(redis_url)
    waiting = 4
    ledger = Ledger(client, "acme", in_flight_max=1, waiting_max=waiting)
    try:
        await ledger.provision_account("busy", balance=1000, now_s=scenarios.NOW)
        calls = 1 + waiting + 2  # one inside, `waiting` queued, two refused
        started = [
            ledger.credit_control(
                "busy", f"b{n}", f"b{n}:0", [scenarios.rg(requested=1)], now_s=scenarios.NOW
            )
            for n in range(calls)
        ]
        outcomes = await asyncio.gather(*started, return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, LedgerOverloaded)]
        granted = [o for o in outcomes if not isinstance(o, BaseException)]
        assert len(refused) == 2 and len(granted) == calls - 2
        assert isinstance(refused[0], LedgerUnavailable)  # answered like Redis trouble: 3004
        stored = await ledger.query("busy")
        assert len(stored.sessions) == len(granted)  # the refused ones opened nothing
    finally:
        await ledger.aclose()


async def test_rating_groups_of_one_ccr_draw_buckets_of_their_own_kinds(ledger: Ledger) -> None:
    """ccr.lua reuses one rating group's eligible buckets for the next when the kinds are the
    same: groups with the same, other and more kinds in one CCR still draw in kind, priority and
    expiry order, and see what the groups before them took."""
    now = scenarios.NOW
    await ledger.provision_account("sub", balance=0, now_s=now)
    for bucket_id, kind, expires in (
        ("a2", "a.data", now + 20),
        ("a1", "a.data", now + 10),
        ("b", "b.data", 0.0),
        ("late", "a.data", now - 1),
    ):
        await ledger.add_bucket(
            "sub", bucket_id=bucket_id, kind=kind, unit=BucketUnit.BYTES, amount=50,
            expires_at_s=expires, now_s=now - 100,
        )  # fmt: skip
    groups = [
        scenarios.rg(10, requested=60, kinds=("a.data",)),
        scenarios.rg(20, requested=30, kinds=("a.data",)),
        scenarios.rg(30, requested=20, kinds=("b.data",)),
        scenarios.rg(40, requested=50, kinds=("a.data", "b.data")),
        scenarios.rg(50, requested=5, kinds=("a.data", "b.data")),
    ]
    result = await ledger.credit_control("sub", "s", "s:0", groups, now_s=now)
    assert [i.granted_units for i in result.items] == [60, 30, 20, 40, 0]
    account = await ledger.query("sub")
    assert {b.id: (b.remaining, b.held) for b in account.buckets} == {
        "a1": (0, 50), "a2": (0, 50), "b": (0, 50), "late": (50, 0),
    }  # fmt: skip
