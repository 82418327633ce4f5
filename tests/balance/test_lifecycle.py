"""SIM swap, deletion, provisioning hold, bucket-percent and expiry-warning events: each
written by the same script call as its change (balance/lifecycle.py, balance/lua)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from balance import keys
from balance.errors import AccountBlocked, AccountExists, InvalidRequest, Outcome, UnknownAccount
from balance.ledger import Ledger
from balance.records import AccountState, BucketUnit, UsedLeg
from tests.balance.scenarios import NOW, PER_UNIT, SUB, rg
from tests.balance.test_events import events_of

DAY = 86_400


async def test_sim_swap_is_one_change_with_its_event_and_replays_nothing(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=100, now_s=NOW)
    before = await ledger.query(SUB)
    for _ in range(2):  # retransmitted API call: one event
        await ledger.sim_swap(SUB, "262019900000002", previous_imsi="262019900000001",
                              now_s=NOW, op_id="swap1")  # fmt: skip
    after = await ledger.query(SUB)
    assert after.version == before.version + 1 and after.state is AccountState.ACTIVE
    events = await events_of(ledger)
    assert [e.type for e in events] == ["created", "sim_swapped"]
    assert events[1].payload == {
        "imsi": "262019900000002", "previous_imsi": "262019900000001", "state": 0,
    }  # fmt: skip


async def test_sim_swap_of_an_unknown_subscriber_writes_nothing(ledger: Ledger) -> None:
    with pytest.raises(UnknownAccount):
        await ledger.sim_swap("4917099000404", "262019900000002", now_s=NOW)
    assert await events_of(ledger, "4917099000404") == []


async def test_delete_is_an_event_and_the_account_refuses_everything_after(
    ledger: Ledger,
) -> None:
    await ledger.provision_account(SUB, balance=100, now_s=NOW)
    await ledger.delete_account(SUB, now_s=NOW, reason="churn", op_id="del1")
    await ledger.delete_account(SUB, now_s=NOW, reason="churn", op_id="del1")  # replay
    account = await ledger.query(SUB)
    assert account.state is AccountState.DELETED and account.balance == 100
    with pytest.raises(UnknownAccount):
        await ledger.topup(SUB, 5, now_s=NOW)
    with pytest.raises(UnknownAccount):
        await ledger.delete_account(SUB, now_s=NOW, op_id="del2")
    ccr = await ledger.credit_control(SUB, "s", "s:0", [rg(requested=10)], now_s=NOW)
    assert ccr.items[0].outcome is Outcome.END_USER_SERVICE_DENIED
    events = await events_of(ledger)
    assert [e.type for e in events] == ["created", "deleted"]
    assert events[1].payload["reason"] == "churn" and events[1].payload["state"] == 3
    # The number may be created afresh.
    await ledger.provision_account(SUB, balance=7, now_s=NOW + 1)
    assert (await ledger.query(SUB)).state is AccountState.ACTIVE


async def test_an_existing_account_is_not_replaced(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1, now_s=NOW)
    with pytest.raises(AccountExists):
        await ledger.provision_account(SUB, balance=2, now_s=NOW)


async def test_a_held_account_grants_nothing_until_activated(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1_000, held=True, now_s=NOW)
    assert (await ledger.query(SUB)).state is AccountState.PROVISIONING
    refused = await ledger.credit_control(SUB, "s", "s:0", [rg(requested=10)], now_s=NOW)
    assert refused.items[0].outcome is Outcome.END_USER_SERVICE_DENIED
    assert refused.items[0].granted_units == 0
    with pytest.raises(AccountBlocked):
        await ledger.debit_event(SUB, "d1", service="sms", rating_group=1,
                                 legs=[UsedLeg("sms", 1, PER_UNIT)], now_s=NOW)  # fmt: skip
    for _ in range(2):  # a redelivered confirmation: one activation
        await ledger.activate(SUB, now_s=NOW, reason="hlr ok", op_id="act:1")
    await ledger.activate(SUB, now_s=NOW, reason="hlr ok again", op_id="act:2")  # not held
    granted = await ledger.credit_control(SUB, "t", "t:0", [rg(requested=10)], now_s=NOW + 1)
    assert granted.items[0].outcome is Outcome.OK and granted.items[0].granted_units == 10
    assert [e.type for e in await events_of(ledger)] == ["created", "activated"]


async def test_sim_swap_with_hold_holds_an_active_account_not_a_blocked_one(
    ledger: Ledger,
) -> None:
    await ledger.provision_account(SUB, balance=1_000, now_s=NOW)
    result = await ledger.sim_swap(SUB, "262019900000009", hold=True, now_s=NOW)
    assert result.summary.state is AccountState.PROVISIONING
    await ledger.block(SUB, now_s=NOW)
    blocked = await ledger.sim_swap(SUB, "262019900000010", hold=True, now_s=NOW)
    assert blocked.summary.state is AccountState.BLOCKED


def _buckets_ledger(ledger: Ledger, percents: list[int]) -> Ledger:
    levels = Ledger(ledger.client, "acme")
    levels.set_bucket_below(percents)
    return levels


async def test_bucket_below_percent_once_per_crossing_under_retransmissions(
    redis_url: str,
) -> None:
    """Two processes retransmit the commit that takes a 1000-unit bucket below 20 %: one
    event; later usage below the level none; a renewal's new bucket is armed again."""
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    a, b = (Ledger(c, "evb") for c in clients)
    for each in (a, b):
        each.set_bucket_below([50, 20])
    sub = "4917099000555"
    await a.provision_account(sub, balance=0, now_s=NOW)
    await a.add_bucket(sub, bucket_id="d1", kind="data", unit=BucketUnit.BYTES, amount=1000,
                       now_s=NOW)  # fmt: skip
    await a.credit_control(sub, "s", "s:0", [rg(requested=900, kinds=("data",))], now_s=NOW)
    held = await events_of(a, sub)
    assert [e.type for e in held] == ["created", "bundle_granted"]  # a hold is not usage
    commit = [rg(used=850, kinds=("data",), terminate=True)]
    await asyncio.gather(*(
        ledger.credit_control(sub, "s", "s:1", commit, now_s=NOW + 1)
        for _ in range(5) for ledger in (a, b)
    ))  # fmt: skip
    crossed = [e for e in await events_of(a, sub) if e.type == "bucket_below"]
    assert [(e.payload["percent"], e.payload["remaining"]) for e in crossed] == [
        (50, 150), (20, 150),
    ]  # fmt: skip
    assert crossed[0].payload["size"] == 1000 and crossed[0].payload["bucket"] == "d1"
    await a.credit_control(sub, "t", "t:0", [rg(used=100, kinds=("data",), terminate=True)],
                           now_s=NOW + 2)  # fmt: skip
    assert len([e for e in await events_of(a, sub) if e.type == "bucket_below"]) == 2
    await a.add_bucket(
        sub, bucket_id="d2", kind="data", unit=BucketUnit.BYTES, amount=100, now_s=NOW + 3
    )  # fmt: skip (d1 has 50 left, d2 100)
    await a.credit_control(sub, "u", "u:0", [rg(used=140, kinds=("data",), terminate=True)],
                           now_s=NOW + 4)  # fmt: skip
    crossed = [e for e in await events_of(a, sub) if e.type == "bucket_below"]
    assert [(e.payload["bucket"], e.payload["percent"]) for e in crossed[2:]] == [
        ("d2", 50), ("d2", 20),
    ]  # fmt: skip
    for client in clients:
        await client.aclose()


async def test_debit_crosses_a_bucket_level(ledger: Ledger) -> None:
    levels = _buckets_ledger(ledger, [10])
    await levels.provision_account(SUB, balance=0, now_s=NOW)
    await levels.add_bucket(SUB, bucket_id="s1", kind="sms", unit=BucketUnit.EVENTS, amount=10,
                            now_s=NOW)  # fmt: skip
    for n in range(10):
        await levels.debit_event(SUB, f"d{n}", service="sms", rating_group=1, kinds=("sms",),
                                 legs=[UsedLeg("sms", 1, PER_UNIT)], now_s=NOW)  # fmt: skip
    crossed = [e for e in await events_of(levels) if e.type == "bucket_below"]
    assert [(e.payload["percent"], e.payload["remaining"]) for e in crossed] == [(10, 0)]


def test_bucket_levels_are_checked() -> None:
    ledger = Ledger(aioredis.Redis(), "acme")
    for bad in ([0], [100], [1, 2, 3, 4, 5]):
        with pytest.raises(InvalidRequest, match="bucket_below"):
            ledger.set_bucket_below(bad)


async def _bucket(ledger: Ledger, sub: str, bucket_id: str, expires: float) -> None:
    await ledger.add_bucket(sub, bucket_id=bucket_id, kind="data", unit=BucketUnit.BYTES,
                            amount=10, expires_at_s=expires, now_s=NOW)  # fmt: skip


async def test_expiry_warning_fires_once_across_sweepers_and_after_downtime(
    redis_url: str,
) -> None:
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    a, b = (Ledger(c, "evx") for c in clients)
    sub = "4917099000666"
    await a.provision_account(sub, balance=0, now_s=NOW)
    await _bucket(a, sub, "soon", NOW + 2 * DAY)
    await _bucket(a, sub, "later", NOW + 10 * DAY)
    await _bucket(a, sub, "gone", NOW + DAY)
    shard = [keys.vshard(sub)]
    window = 3 * DAY
    # Down for a day and a half: "gone" expired meanwhile (no warning), "soon" is due.
    now = NOW + 1.5 * DAY
    sweeps = await asyncio.gather(
        *(ledger.warn_expiring(now, window, vshards=shard) for ledger in (a, b, a, b))
    )
    assert sum(s.warned for s in sweeps) == 1 and sum(s.dropped for s in sweeps) == 1
    warned = [e for e in await events_of(a, sub) if e.type == "bundle_expiring"]
    assert [(e.payload["bucket"], e.payload["expires_at"]) for e in warned] == [
        ("soon", NOW + 2 * DAY)
    ]
    assert (await a.warn_expiring(now, window, vshards=shard)).warned == 0
    # "later" comes into the window a week on, once.
    for _ in range(2):
        await b.warn_expiring(NOW + 8 * DAY, window, vshards=shard)
    names = [e.payload["bucket"] for e in await events_of(a, sub) if e.type == "bundle_expiring"]
    assert names == ["soon", "later"]
    for client in clients:
        await client.aclose()


async def test_no_window_drops_expired_members_without_events(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=0, now_s=NOW)
    await _bucket(ledger, SUB, "x", NOW + 5)
    index = keys.bucket_expiry_key(keys.subscriber_prefix("acme", SUB))
    assert await ledger.client.zcard(index) == 1
    sweep = await ledger.warn_expiring(NOW + 1, 0, vshards=[keys.vshard(SUB)])
    assert (sweep.warned, sweep.dropped) == (0, 0) and await ledger.client.zcard(index) == 1
    sweep = await ledger.warn_expiring(NOW + 6, 0, vshards=[keys.vshard(SUB)])
    assert (sweep.warned, sweep.dropped) == (0, 1) and await ledger.client.zcard(index) == 0
    assert "bundle_expiring" not in [e.type for e in await events_of(ledger)]


async def test_delete_stops_renewals(ledger: Ledger) -> None:
    from balance.products import due_key, enroll, state_key

    await ledger.provision_account(SUB, balance=100, now_s=NOW)
    await ledger.provision_account("4917099000002", balance=100, now_s=NOW)
    for sub in (SUB, "4917099000002"):
        await enroll(ledger, sub, "plan:m", int(NOW) + DAY, int(NOW))
    await ledger.delete_account(SUB, now_s=NOW)
    prefix = keys.subscriber_prefix("acme", SUB)
    assert await ledger.client.zscore(due_key(prefix), f"{SUB}|plan:m") is None
    assert await ledger.client.hget(state_key(prefix), f"{SUB}|plan:m") is None
    other = keys.subscriber_prefix("acme", "4917099000002")
    assert await ledger.client.zscore(due_key(other), "4917099000002|plan:m") is not None
