"""offline_many.lua: several offline records of one shard in one call commit exactly what
one offline.lua call per record commits (results, balances, refusals, replays)."""

from __future__ import annotations

import pytest

from balance import keys
from balance.errors import InvalidRequest, OperationConflict, UnknownAccount
from balance.ledger import Ledger
from balance.records import OfflineItem, OfflineResult, OnExhaust, RecordContext, UsedLeg
from tests.balance.scenarios import NOW, PER_UNIT


def same_shard_subscribers(count: int) -> list[str]:
    first = 4917099000100
    shard = keys.vshard(str(first))
    found = [str(n) for n in range(first, first + 200_000) if keys.vshard(str(n)) == shard]
    return found[:count]


def item(subscriber: str, op_id: str, units: int) -> OfflineItem:
    return OfflineItem(
        subscriber, op_id, "data", 10, (UsedLeg("data", units, PER_UNIT),), (), OnExhaust.PAYG,
        (), RecordContext(source="offline", msisdn=subscriber), NOW,
    )  # fmt: skip


def outcome(result: OfflineResult | Exception) -> object:
    return type(result).__name__ if isinstance(result, Exception) else result


async def one_at_a_time(ledger: Ledger, items: list[OfflineItem]) -> list[object]:
    out: list[OfflineResult | Exception] = []
    for i in items:
        try:
            out.append(
                await ledger.offline_usage(
                    i.subscriber,
                    i.op_id,
                    service=i.service,
                    rating_group=i.rating_group,
                    legs=i.legs,
                    kinds=i.kinds,
                    on_exhaust=i.on_exhaust,
                    block_kinds=i.block_kinds,
                    context=i.context,
                    usage_at_s=i.usage_at_s,
                    now_s=NOW,
                )
            )
        except (UnknownAccount, OperationConflict) as exc:
            out.append(exc)
    return [outcome(o) for o in out]


async def test_many_in_one_call_commit_what_one_call_each_commits(ledger: Ledger) -> None:
    a, b, unknown = same_shard_subscribers(3)
    items = [
        item(a, "x:1", 30), item(b, "x:2", 500), item(a, "x:3", 90),  # a runs out: leakage
        item(unknown, "x:4", 10),  # no account: refused alone
        item(a, "x:1", 30),  # the same record again: a replay
        item(a, "x:3", 10),  # the same op id with other content: refused alone
        item(b, "x:5", 0),
    ]  # fmt: skip
    single = Ledger(ledger.client, "globex")
    for target in (ledger, single):
        await target.provision_account(a, balance=100, now_s=NOW)
        await target.provision_account(b, balance=1_000, now_s=NOW)
    many = await ledger.offline_usage_many(items, now_s=NOW)
    want = await one_at_a_time(single, items)
    assert [outcome(o) for o in many] == want
    assert want[3] == "UnknownAccount" and want[5] == "OperationConflict"
    assert isinstance(many[4], OfflineResult) and many[4].replayed
    for subscriber in (a, b):
        assert (await ledger.query(subscriber)).balance == (await single.query(subscriber)).balance
    again = await ledger.offline_usage_many(items, now_s=NOW)  # the whole call again
    assert [o.replayed for o in again if isinstance(o, OfflineResult)] == [True] * 5
    assert (await ledger.query(a)).balance == (await single.query(a)).balance


async def test_many_refuses_records_of_two_shards_and_too_many(ledger: Ledger) -> None:
    a = same_shard_subscribers(1)[0]
    other = next(
        str(n) for n in range(4917099000100, 4917099001100)
        if keys.vshard(str(n)) != keys.vshard(a)
    )  # fmt: skip
    with pytest.raises(InvalidRequest, match="one shard"):
        ledger.offline_usage_many([item(a, "y:1", 1), item(other, "y:2", 1)], now_s=NOW)
    with pytest.raises(InvalidRequest, match="1-64"):
        ledger.offline_usage_many([item(a, f"y:{n}", 1) for n in range(65)], now_s=NOW)
    with pytest.raises(InvalidRequest, match="1-64"):
        ledger.offline_usage_many([], now_s=NOW)
