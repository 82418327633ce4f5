"""Ledger behaviour scenarios, each an async function of a fresh ``Ledger``: run against a
standalone Redis (test_ledger.py) and against a 3-master Redis Cluster (test_cluster.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from balance import keys
from balance.errors import (
    AccountBlocked,
    AccountExists,
    InsufficientCredit,
    InvalidRequest,
    OperationConflict,
    Outcome,
    UnknownAccount,
)
from balance.ledger import Ledger
from balance.records import (
    BucketUnit,
    DebitItem,
    LedgerRecord,
    OnExhaust,
    RatingGroupRequest,
    UsedLeg,
)
from balance.streams import RecordReader
from tariffs.price import Price, retail

NOW = 1_700_000_000.0
# 1 micro-unit per unit, wholesale half; increments of 10 units.
PER_UNIT = Price(1, 1, 1, 2, step_units=10)
VOICE = Price(1500, 1, 200, 1, first_units=60, step_units=1, connect_fee=1000)
SUB = "4917099000001"

Scenario = Callable[[Ledger], Awaitable[None]]


def rg(
    rating_group: int = 10,
    *,
    used: int | None = None,
    requested: int = 0,
    kinds: tuple[str, ...] = (),
    price: Price = PER_UNIT,
    payg: bool = True,
    valid_s: float = 60.0,
    terminate: bool = False,
    now: float = NOW,
) -> RatingGroupRequest:
    return RatingGroupRequest(
        rating_group=rating_group,
        service="data",
        kinds=kinds,
        used=() if used is None else (UsedLeg("data:home", used, price),),
        requested_units=requested,
        on_exhaust=OnExhaust.PAYG if payg else OnExhaust.BLOCK,
        reserve_leg_key="data:home",
        reserve_price=price,
        valid_until_s=now + valid_s,
        terminate=terminate,
    )


async def records_of(ledger: Ledger, subscriber: str = SUB) -> list[LedgerRecord]:
    reader = RecordReader(ledger.client, ledger.tenant, "test", "c1")
    got = await reader.read(keys.vshard(subscriber), count=10_000)
    return [r.record for r in got]


async def replay_is_byte_identical_and_conflict_is_distinct(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1000, now_s=NOW)
    first = await ledger.credit_control(SUB, "s", "s:0", [rg(requested=300)], now_s=NOW)
    again = await ledger.credit_control(SUB, "s", "s:0", [rg(requested=300)], now_s=NOW + 5)
    assert not first.replayed and again.replayed
    assert again.raw == first.raw
    assert (await ledger.query(SUB)).held_money == 300
    with pytest.raises(OperationConflict):
        await ledger.credit_control(SUB, "s", "s:0", [rg(requested=301)], now_s=NOW)


async def unknown_account(ledger: Ledger) -> None:
    result = await ledger.credit_control("nobody", "s", "s:0", [rg(requested=5)], now_s=NOW)
    assert [i.outcome for i in result.items] == [Outcome.UNKNOWN_ACCOUNT]
    assert result.items[0].outcome.result_code == 5030
    with pytest.raises(UnknownAccount) as caught:
        await ledger.topup("nobody", 5, now_s=NOW)
    assert caught.value.result_code == 5030
    with pytest.raises(UnknownAccount):
        await ledger.query("nobody")
    await ledger.provision_account(SUB, now_s=NOW)
    with pytest.raises(AccountExists):
        await ledger.provision_account(SUB, now_s=NOW)


async def buckets_pay_in_kind_order_and_expired_never_pay(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1000, now_s=NOW)
    for bucket_id, kind, amount, expires in (
        ("old", "promo.data", 500, NOW - 1),  # already expired
        ("p", "promo.data", 100, NOW + 10),
        ("b", "s20.data", 200, 0.0),
    ):
        await ledger.add_bucket(
            SUB, bucket_id=bucket_id, kind=kind, unit=BucketUnit.BYTES, amount=amount,
            expires_at_s=expires, now_s=NOW - 100,
        )  # fmt: skip
    kinds = ("promo.data", "s20.data")
    grant = await ledger.credit_control(
        SUB, "s", "s:0", [rg(requested=400, kinds=kinds)], now_s=NOW
    )
    assert grant.items[0].granted_units == 400
    assert grant.held_money == 100  # 100 promo + 200 bundle + 100 at 1 micro each
    done = await ledger.credit_control(
        SUB, "s", "s:1", [rg(used=350, kinds=kinds, terminate=True)], now_s=NOW + 1
    )
    item = done.items[0]
    assert (item.used_units, item.bucket_units, item.retail) == (350, 300, 50)
    account = await ledger.query(SUB)
    assert {b.id: b.remaining for b in account.buckets} == {"old": 500, "p": 0, "b": 0}
    assert account.balance == 950 and account.held_money == 0 and account.sessions == ()
    usage = [r for r in await records_of(ledger) if r.kind == "usage"]
    assert len(usage) == 1
    assert [(d.bucket_id, d.units) for d in usage[0].buckets] == [("p", 100), ("b", 200)]


async def split_reports_cost_what_one_report_costs(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=10_000_000, now_s=NOW)
    await ledger.provision_account("other", balance=10_000_000, now_s=NOW)
    reports = [7, 1, 59, 3, 61]
    for n, used in enumerate(reports):
        item = rg(used=used, requested=60, price=VOICE)
        await ledger.credit_control(SUB, "call", f"call:{n}", [item], now_s=NOW + n)
    await ledger.credit_control(
        SUB, "call", "call:end", [rg(used=0, price=VOICE, terminate=True)], now_s=NOW + 9
    )
    await ledger.credit_control(
        "other", "c", "c:0", [rg(used=sum(reports), price=VOICE, terminate=True)], now_s=NOW
    )
    split = await ledger.query(SUB)
    single = await ledger.query("other")
    assert split.balance == single.balance == 10_000_000 - retail(VOICE, sum(reports))


async def usage_above_reservation_is_leakage_never_below_zero(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=100, now_s=NOW)
    grant = await ledger.credit_control(SUB, "s", "s:0", [rg(requested=1000)], now_s=NOW)
    assert grant.items[0].granted_units == 100 and grant.items[0].final
    result = await ledger.credit_control(SUB, "s", "s:1", [rg(used=250, requested=10)], now_s=NOW)
    item = result.items[0]
    assert (item.retail, item.leakage_units, item.leakage_money) == (100, 150, 150)
    assert item.outcome is Outcome.CREDIT_LIMIT_REACHED and item.granted_units == 0
    assert result.items[0].outcome.result_code == 4012
    assert (await ledger.query(SUB)).balance == 0
    usage = [r for r in await records_of(ledger) if r.kind == "usage"]
    assert usage[-1].leakage_units == 150 and usage[-1].balance_after == 0


async def postpaid_goes_down_to_the_credit_limit(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=0, credit_limit=500, now_s=NOW)
    grant = await ledger.credit_control(SUB, "s", "s:0", [rg(requested=800)], now_s=NOW)
    assert grant.items[0].granted_units == 500
    done = await ledger.credit_control(SUB, "s", "s:1", [rg(used=900, terminate=True)], now_s=NOW)
    assert done.items[0].leakage_units == 400
    assert (await ledger.query(SUB)).balance == -500


async def blocked_account_is_denied_but_usage_is_committed(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1000, now_s=NOW)
    await ledger.credit_control(SUB, "s", "s:0", [rg(requested=100)], now_s=NOW)
    await ledger.block(SUB, reason="fraud", now_s=NOW)
    result = await ledger.credit_control(SUB, "s", "s:1", [rg(used=50, requested=100)], now_s=NOW)
    item = result.items[0]
    assert item.outcome is Outcome.END_USER_SERVICE_DENIED and item.outcome.result_code == 4010
    assert item.retail == 50 and item.granted_units == 0
    with pytest.raises(AccountBlocked):
        await ledger.debit_event(
            SUB, "e1", service="sms", rating_group=1,
            legs=[UsedLeg("sms", 1, PER_UNIT)], now_s=NOW,
        )  # fmt: skip
    await ledger.unblock(SUB, now_s=NOW)
    again = await ledger.credit_control(SUB, "s", "s:2", [rg(requested=100)], now_s=NOW)
    assert again.items[0].outcome is Outcome.OK


async def several_rating_groups_and_terminate(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1000, now_s=NOW)
    both = [rg(10, requested=200), rg(20, requested=300)]
    result = await ledger.credit_control(SUB, "s", "s:0", both, now_s=NOW)
    assert [i.granted_units for i in result.items] == [200, 300]
    assert result.held_money == 500 and result.balance == 500
    await ledger.credit_control(SUB, "s", "s:1", [rg(10, used=100, terminate=True)], now_s=NOW)
    account = await ledger.query(SUB)
    assert account.held_money == 0 and account.balance == 900 and account.sessions == ()


async def final_grant_flag(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=100, now_s=NOW)
    exact = await ledger.credit_control(SUB, "s", "s:0", [rg(requested=100)], now_s=NOW)
    assert exact.items[0].granted_units == 100 and exact.items[0].final
    await ledger.topup(SUB, 1000, now_s=NOW)
    roomy = await ledger.credit_control(SUB, "s", "s:1", [rg(used=0, requested=100)], now_s=NOW)
    assert not roomy.items[0].final


async def event_debit_is_all_or_nothing_and_refund(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=15, now_s=NOW)
    await ledger.add_bucket(
        SUB, bucket_id="sms", kind="s20.sms", unit=BucketUnit.EVENTS, amount=1, now_s=NOW
    )
    sms = Price(10, 1, 1, 1)
    debit = await ledger.debit_event(
        SUB, "e1", service="sms", rating_group=1, legs=[UsedLeg("sms", 2, sms)],
        kinds=("s20.sms",), now_s=NOW,
    )  # fmt: skip
    assert (debit.debit.bucket_units, debit.debit.retail, debit.debit.balance) == (1, 10, 5)
    with pytest.raises(InsufficientCredit) as caught:
        await ledger.debit_event(
            SUB, "e2", service="sms", rating_group=1, legs=[UsedLeg("sms", 1, sms)], now_s=NOW
        )
    assert caught.value.result_code == 4012
    replay = await ledger.debit_event(
        SUB, "e1", service="sms", rating_group=1, legs=[UsedLeg("sms", 2, sms)],
        kinds=("s20.sms",), now_s=NOW + 1,
    )  # fmt: skip
    assert replay.replayed and replay.debit == debit.debit
    refund = await ledger.refund(SUB, "r1", amount=10, bucket_id="sms", units=1, now_s=NOW)
    assert refund.summary.balance == 15
    kinds = [r.kind for r in await records_of(ledger)]
    assert kinds.count("debit") == 1 and kinds.count("refund") == 1


async def money_bucket_pays_before_the_balance(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1000, now_s=NOW)
    await ledger.add_bucket(
        SUB, bucket_id="roam", kind="roam.money", unit=BucketUnit.MONEY, amount=300, now_s=NOW
    )
    grant = await ledger.credit_control(
        SUB, "s", "s:0", [rg(requested=500, kinds=("roam.money",))], now_s=NOW
    )
    assert grant.items[0].granted_units == 500 and grant.balance == 800
    done = await ledger.credit_control(
        SUB, "s", "s:1", [rg(used=400, kinds=("roam.money",), terminate=True)], now_s=NOW
    )
    assert done.items[0].retail == 400
    account = await ledger.query(SUB)
    assert account.balance == 900 and account.buckets[0].remaining == 0


async def sweeper_expires_each_reservation_once(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1000, now_s=NOW)
    await ledger.credit_control(
        SUB, "s", "s:0", [rg(10, requested=100, valid_s=30), rg(20, requested=200, valid_s=90)],
        now_s=NOW,
    )  # fmt: skip
    shard = [keys.vshard(SUB)]
    assert await ledger.expire_due(NOW + 29, vshards=shard) == []
    first = await ledger.expire_due(NOW + 31, vshards=shard)
    assert [(e.rating_group, e.money_released) for e in first] == [(10, 100)]
    assert await ledger.expire_due(NOW + 31, vshards=shard) == []
    second = await ledger.expire_due(NOW + 100, vshards=shard)
    assert [(e.rating_group, e.money_released) for e in second] == [(20, 200)]
    account = await ledger.query(SUB)
    assert account.balance == 1000 and account.held_money == 0
    expiry = [r for r in await records_of(ledger) if r.kind == "expiry"]
    assert [(r.rating_group, r.money_delta) for r in expiry] == [(10, 100), (20, 200)]
    # A late report for an expired reservation is charged from what is there.
    late = await ledger.credit_control(SUB, "s", "s:1", [rg(10, used=50)], now_s=NOW + 101)
    assert late.items[0].retail == 50


async def record_reader_acks_and_redelivers_pending(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1000, now_s=NOW)
    await ledger.topup(SUB, 5, now_s=NOW)
    reader = RecordReader(ledger.client, ledger.tenant, "export", "x1")
    shard = keys.vshard(SUB)
    first = await reader.read(shard)
    assert [r.record.kind for r in first] == ["provision", "topup"]
    assert await reader.read(shard) == []
    pending = await reader.read(shard, pending=True)
    assert [r.entry_id for r in pending] == [r.entry_id for r in first]
    assert await reader.ack(first) == 2
    assert await reader.read(shard, pending=True) == []


async def bad_input_gets_specific_errors(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=1000, now_s=NOW)
    with pytest.raises(InvalidRequest):
        await ledger.credit_control(SUB, "s", "s:0", [rg(used=-1)], now_s=NOW)
    bad_price = RatingGroupRequest(1, "data", requested_units=5, reserve_price=Price(1, 0, 1, 1))
    with pytest.raises(InvalidRequest, match="denominators"):
        await ledger.credit_control(SUB, "s", "s:0", [bad_price], now_s=NOW)
    no_price = RatingGroupRequest(1, "data", requested_units=5)
    with pytest.raises(InvalidRequest, match="payg"):
        await ledger.credit_control(SUB, "s", "s:0", [no_price], now_s=NOW)
    with pytest.raises(InvalidRequest):
        await ledger.topup(SUB, 0, now_s=NOW)
    with pytest.raises(InsufficientCredit):
        await ledger.adjust(SUB, -1001, reason="correction", now_s=NOW)
    with pytest.raises(InvalidRequest):
        await ledger.add_bucket(
            SUB, bucket_id="x", kind="k", unit=BucketUnit.BYTES, amount=-1, now_s=NOW
        )
    adjusted = await ledger.adjust(SUB, -1000, reason="correction", credit_limit=50, now_s=NOW)
    assert adjusted.summary.balance == 0 and adjusted.summary.credit_limit == 50


ALL: tuple[Scenario, ...] = (
    replay_is_byte_identical_and_conflict_is_distinct,
    unknown_account,
    buckets_pay_in_kind_order_and_expired_never_pay,
    split_reports_cost_what_one_report_costs,
    usage_above_reservation_is_leakage_never_below_zero,
    postpaid_goes_down_to_the_credit_limit,
    blocked_account_is_denied_but_usage_is_committed,
    several_rating_groups_and_terminate,
    final_grant_flag,
    event_debit_is_all_or_nothing_and_refund,
    money_bucket_pays_before_the_balance,
    sweeper_expires_each_reservation_once,
    record_reader_acks_and_redelivers_pending,
    bad_input_gets_specific_errors,
)


async def ledger_level_record_reading(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=10, now_s=NOW)
    shard = [keys.vshard(SUB)]
    got = await ledger.read_usage_records("billing", "b1", vshards=shard)
    assert [r.record.kind for r in got] == ["provision"]
    assert await ledger.ack("billing", got) == 1
    assert await ledger.read_usage_records("billing", "b1", vshards=shard, pending=True) == []


ALL = (*ALL, ledger_level_record_reading)


async def a_blocking_bundle_stops_money_only_for_its_holders(ledger: Ledger) -> None:
    """Rating says BLOCK when a blocking bundle is in scope; money still pays for a subscriber
    who does not hold that bundle, and stops (even with the bundle used up) for one who does."""
    other = "4917099000002"
    for subscriber in (SUB, other):
        await ledger.provision_account(subscriber, balance=1000, now_s=NOW)
    await ledger.add_bucket(
        SUB, bucket_id="cap", kind="capped.data", unit=BucketUnit.BYTES, amount=50,
        expires_at_s=NOW + 3600, now_s=NOW - 10,
    )  # fmt: skip
    item = RatingGroupRequest(
        rating_group=10,
        service="data",
        kinds=("capped.data",),
        requested_units=200,
        on_exhaust=OnExhaust.BLOCK,
        block_kinds=("capped.data",),
        reserve_leg_key="data:home",
        reserve_price=PER_UNIT,
        valid_until_s=NOW + 60,
    )
    holder = await ledger.credit_control(SUB, "h", "h:0", [item], now_s=NOW)
    assert (holder.items[0].granted_units, holder.items[0].final) == (50, True)
    assert holder.held_money == 0  # the bundle's 50 units only: money is blocked
    free = await ledger.credit_control(other, "f", "f:0", [item], now_s=NOW)
    assert free.items[0].granted_units == 200 and free.held_money == 200  # pays as it goes
    debit = await ledger.debit_event(
        other, "e:0", service="data", rating_group=10,
        legs=(UsedLeg("data:home", 10, PER_UNIT),), kinds=("capped.data",),
        on_exhaust=OnExhaust.BLOCK, block_kinds=("capped.data",), now_s=NOW,
    )  # fmt: skip
    assert debit.debit.retail == 10
    with pytest.raises(InsufficientCredit):
        await ledger.debit_event(
            SUB, "e:1", service="data", rating_group=10,
            legs=(UsedLeg("data:home", 100, PER_UNIT),), kinds=("capped.data",),
            on_exhaust=OnExhaust.BLOCK, block_kinds=("capped.data",), now_s=NOW,
        )  # fmt: skip


ALL = (*ALL, a_blocking_bundle_stops_money_only_for_its_holders)


async def debit_many_items_each_all_or_nothing_in_one_call(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=25, now_s=NOW)
    await ledger.add_bucket(
        SUB, bucket_id="sms", kind="s20.sms", unit=BucketUnit.EVENTS, amount=1, now_s=NOW
    )
    sms, dear = Price(10, 1, 1, 1), Price(20, 1, 5, 1)
    items = [
        # Two recipients: the bucket pays the first, money (10) the second.
        DebitItem("sms", 1, (UsedLeg("home", 1, sms), UsedLeg("home", 1, sms)), ("s20.sms",)),
        # 20 more would leave -5: refused whole, nothing of it taken (not even a partial leg).
        DebitItem("sms", 2, (UsedLeg("home", 1, sms), UsedLeg("intl", 1, dear))),
        DebitItem("sms", 3, (UsedLeg("home", 1, sms),)),  # still paid after the refusal
    ]
    result = await ledger.debit_many(SUB, "ev:0", items, now_s=NOW, session_id="ev")
    assert [(i.status, i.units, i.bucket_units, i.retail) for i in result.debit.items] == [
        (0, 2, 1, 10),
        (1, 0, 0, 0),
        (0, 1, 0, 10),
    ]
    assert (result.debit.balance, result.replayed) == (5, False)
    replay = await ledger.debit_many(SUB, "ev:0", items, now_s=NOW + 5, session_id="ev")
    assert replay.replayed and replay.debit == result.debit
    with pytest.raises(OperationConflict):
        await ledger.debit_many(SUB, "ev:0", items[:1], now_s=NOW, session_id="ev")
    debits = [r for r in await records_of(ledger) if r.kind == "debit"]
    # One record per debited item, op id "<op>:<item index>", the balance after that item.
    assert [(r.op_id, r.rating_group, r.retail, r.balance_after) for r in debits] == [
        ("ev:0:0", 1, 10, 15),
        ("ev:0:2", 3, 10, 5),
    ]
    account = await ledger.query(SUB)
    assert account.balance == 5 and account.held_money == 0
    await ledger.block(SUB, reason="fraud", now_s=NOW)
    with pytest.raises(AccountBlocked):
        await ledger.debit_many(SUB, "ev:1", items[2:], now_s=NOW, session_id="ev")


ALL = (*ALL, debit_many_items_each_all_or_nothing_in_one_call)
