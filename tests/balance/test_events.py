"""Events written by the ledger scripts, in the same call as the change (balance/events.py)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from balance import keys
from balance.events import Event, decode_event, parse_event_id
from balance.ledger import Ledger
from balance.records import BucketUnit, UsedLeg
from tests.balance.scenarios import NOW, PER_UNIT, SUB, rg


async def events_of(ledger: Ledger, subscriber: str = SUB) -> list[Event]:
    shard = keys.vshard(subscriber)
    stream = keys.event_key(keys.shard_prefix(ledger.tenant, shard))
    entries = await ledger.client.xrange(stream)
    got = [decode_event(ledger.tenant, shard, entry_id, fields) for entry_id, fields in entries]
    return [e for e in got if e.subscriber == subscriber]


async def test_account_changes_write_one_event_each_and_replays_none(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1000, now_s=NOW, op_id="p1")
    await ledger.provision_account(SUB, balance=1000, now_s=NOW, op_id="p1")  # replay
    await ledger.block(SUB, now_s=NOW, reason="fraud", op_id="b1")
    await ledger.unblock(SUB, now_s=NOW, op_id="u1")
    await ledger.topup(SUB, 500, now_s=NOW, op_id="t1")
    await ledger.topup(SUB, 500, now_s=NOW + 1, op_id="t1")  # retransmission
    await ledger.add_bucket(
        SUB, bucket_id="b20", kind="data", unit=BucketUnit.BYTES, amount=100, fee=200,
        expires_at_s=NOW + 10, now_s=NOW, op_id="k1",
    )  # fmt: skip
    await ledger.add_bucket(
        SUB,
        bucket_id="gift",
        kind="sms",
        unit=BucketUnit.EVENTS,
        amount=5,
        now_s=NOW + 20,
        op_id="k2",
    )  # fmt: skip (the first bucket has expired: dropped, with its event, in the same call)
    events = await events_of(ledger)
    assert [e.type for e in events] == [
        "created", "blocked", "unblocked", "topped_up", "bundle_bought", "bundle_expired",
        "bundle_granted",
    ]  # fmt: skip
    assert events[5].payload["bucket"] == "b20" and events[5].payload["remaining"] == 100
    assert events[1].payload["reason"] == "fraud" and events[1].payload["state"] == 1
    assert events[3].payload["amount"] == 500 and events[3].payload["balance"] == 1500
    assert events[4].payload["fee"] == 200 and events[4].op_id == "k1"
    assert len({e.id for e in events}) == len(events)
    assert parse_event_id(events[0].id) == (ledger.tenant, keys.vshard(SUB), events[0].entry_id)


async def test_bundle_expiry_is_an_event(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=0, now_s=NOW)
    await ledger.add_bucket(
        SUB, bucket_id="old", kind="data", unit=BucketUnit.BYTES, amount=0, expires_at_s=NOW + 5,
        now_s=NOW,
    )  # fmt: skip
    await ledger.add_bucket(
        SUB, bucket_id="new", kind="data", unit=BucketUnit.BYTES, amount=9, now_s=NOW + 10
    )
    types = [(e.type, e.payload.get("bucket")) for e in await events_of(ledger)]
    assert ("bundle_expired", "old") in types


async def test_a_crossing_notifies_once_under_retransmissions_and_top_up_rearms(
    redis_url: str,
) -> None:
    """Two ledgers (two server processes' view) send the same CCR and its retransmissions: the
    script applies it once, so one crossing event; a top-up re-arms the level."""
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    a, b = (Ledger(c, "evt", balance_below=[500]) for c in clients)
    sub = "4917099000777"
    await a.provision_account(sub, balance=1000, now_s=NOW)
    ccr = [rg(used=0, requested=400)]
    await a.credit_control(sub, "s", "s:0", ccr, now_s=NOW)
    # commit 600 (crosses 500), sent 10 times by each "process"
    commit = [rg(used=600, requested=0, terminate=True)]
    await asyncio.gather(
        *(
            ledger.credit_control(sub, "s", "s:1", commit, now_s=NOW + 1, request_kind=0)
            for _ in range(10)
            for ledger in (a, b)
        )
    )
    assert [e.type for e in await events_of(a, sub)][1:] == ["balance_below"]
    crossing = (await events_of(a, sub))[1]
    assert crossing.payload == {"balance": 400, "before": 1000, "level": 500}
    # More usage below the level: no new notification (edge, not level).
    await a.credit_control(sub, "t", "t:0", [rg(used=100, terminate=True)], now_s=NOW + 2)
    assert [e.type for e in await events_of(a, sub)][1:] == ["balance_below"]
    # A top-up lifts it above 500: re-armed, the next crossing notifies again.
    await a.topup(sub, 700, now_s=NOW + 3)
    await a.credit_control(sub, "u", "u:0", [rg(used=600, terminate=True)], now_s=NOW + 4)
    await a.credit_control(sub, "v", "v:0", [rg(used=400, terminate=True)], now_s=NOW + 5)
    assert [e.type for e in await events_of(a, sub)][1:] == [
        "balance_below", "topped_up", "balance_below", "depleted",
    ]  # fmt: skip
    for client in clients:
        await client.aclose()


async def test_debit_crosses_levels_and_goes_negative_on_postpaid(ledger: Ledger) -> None:
    levels = Ledger(ledger.client, "acme", balance_below=[50])
    await levels.provision_account(SUB, balance=100, credit_limit=1000, now_s=NOW)
    leg = [UsedLeg("sms", 200, PER_UNIT)]
    await levels.debit_event(SUB, "d1", service="sms", rating_group=1, legs=leg, now_s=NOW)
    assert [e.type for e in await events_of(levels)] == [
        "created", "depleted", "negative", "balance_below",
    ]  # fmt: skip


async def test_one_sms_to_several_recipients_notifies_once(ledger: Ledger) -> None:
    from balance.records import DebitItem, UsedLeg
    from tariffs.price import Price

    levels = Ledger(ledger.client, "acme", balance_below=[15])
    sub = "4917099000888"
    await levels.provision_account(sub, balance=25, now_s=NOW)
    sms = Price(10, 1, 1, 1)
    items = [DebitItem("sms", 1, (UsedLeg("home", 1, sms), UsedLeg("home", 1, sms)))]
    for _ in range(3):  # retransmitted: applied once
        await levels.debit_many(sub, "m:0", items, now_s=NOW, session_id="m")
    assert [e.type for e in await events_of(levels, sub)] == ["created", "balance_below"]


async def test_offline_usage_crosses_levels_once(ledger: Ledger) -> None:
    from balance.records import RecordContext, UsedLeg
    from tests.balance.scenarios import PER_UNIT

    levels = Ledger(ledger.client, "acme", balance_below=[50])
    sub = "4917099000999"
    await levels.provision_account(sub, balance=100, now_s=NOW)
    leg = [UsedLeg("data", 80, PER_UNIT)]
    for _ in range(2):  # the same xDR record imported twice: applied once
        await levels.offline_usage(
            sub, "x:1", service="data", rating_group=10, legs=leg,
            context=RecordContext(source="offline"), usage_at_s=NOW, now_s=NOW,
        )  # fmt: skip
    assert [e.type for e in await events_of(levels, sub)] == ["created", "balance_below"]


async def test_refund_of_an_event_debit_is_a_refunded_event(ledger: Ledger) -> None:
    # refund_debit.lua derives the event stream from its record stream, as every script does.
    await ledger.provision_account(SUB, balance=1_000, now_s=NOW, op_id="p1")
    debit = await ledger.debit_event(
        SUB, "d1", service="sms", rating_group=0, legs=(UsedLeg("sms", 3, PER_UNIT),),
        now_s=NOW, refund_ref="e1:0",
    )  # fmt: skip
    refunded = await ledger.refund_debit(SUB, "r1", debit_ref="e1:0", units=3, now_s=NOW)
    await ledger.refund_debit(SUB, "r1", debit_ref="e1:0", units=3, now_s=NOW)  # replay
    events = await events_of(ledger)
    assert [e.type for e in events] == ["created", "refunded"]
    assert events[1].op_id == "r1" and events[1].payload["units"] == 3
    assert events[1].payload["amount"] == refunded.money == debit.debit.retail > 0
    assert events[1].payload["balance"] == 1_000
