"""Shared buckets on a real Redis: members of a group drawing at once never overdraw the pool
or their cap; a draw is retried safely and a lost grant is repaired."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from balance.errors import UnknownAccount
from balance.keys import group_prefix, members_key, pending_key, pool_key
from balance.ledger import _SCRIPTS, Ledger, content_digest
from balance.records import BucketUnit
from balance.shared import (
    Membership,
    draw_shared,
    fill_group,
    member_drawn,
    read_memberships,
    repair,
)
from tests.balance.test_account_cli import ACME_1, ACME_2, run, store

NOW = 1_790_000_000.0
A, B, C = "4915100000001", "4915100000002", "4915100000003"
KIND = "family.data"


@pytest.fixture
async def two_ledgers(redis_url: str) -> AsyncIterator[tuple[Ledger, Ledger]]:
    """Two clients (two connection pools): the members' draws really interleave in Redis."""
    first, second = aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)
    ledgers = Ledger(first, "fam"), Ledger(second, "fam")
    for subscriber in (A, B, C):
        await ledgers[0].provision_account(subscriber, balance=0, now_s=NOW)
    await fill_group(
        ledgers[0], "smith", period="2026-03", kind=KIND, unit=BucketUnit.BYTES,
        amount=10_000, member_cap=6_000, members=[A, B], expires_at_s=NOW + 86_400,
    )  # fmt: skip
    yield ledgers
    await first.aclose()
    await second.aclose()


async def bucket_units(ledger: Ledger, subscriber: str) -> int:
    account = await ledger.query(subscriber)
    return sum(b.remaining for b in account.buckets if b.kind == KIND)


async def test_two_members_drawing_at_once_never_overdraw(
    two_ledgers: tuple[Ledger, Ledger],
) -> None:
    first, second = two_ledgers

    async def draws(ledger: Ledger, member: str) -> list[int]:
        out = []
        for n in range(40):
            draw = await draw_shared(ledger, "smith", member, 300, now_s=NOW, op_id=f"{member}-{n}")
            out.append(draw.units)
        return out

    got_a, got_b = await asyncio.gather(draws(first, A), draws(second, B))
    # 10,000 shared, 6,000 at most each: every unit drawn once, none beyond the pool or a cap.
    assert sum(got_a) + sum(got_b) == 10_000
    assert sum(got_a) <= 6_000 and sum(got_b) <= 6_000
    assert await bucket_units(first, A) == sum(got_a) == await member_drawn(first, "smith", A)
    assert await bucket_units(first, B) == sum(got_b) == await member_drawn(first, "smith", B)
    assert await first.client.hlen(pending_key(group_prefix("fam", "smith"))) == 0
    assert all(units in (0, 100, 300) for units in got_a + got_b)  # the last draw: what is left


async def test_cap_retry_membership_and_fill(two_ledgers: tuple[Ledger, Ledger]) -> None:
    ledger, _ = two_ledgers
    draw = await draw_shared(ledger, "smith", A, 7_000, now_s=NOW, op_id="big")
    assert (draw.units, draw.member_left, draw.pool_left) == (6_000, 0, 4_000)  # capped
    again = await draw_shared(ledger, "smith", A, 7_000, now_s=NOW, op_id="big")
    assert again == draw and await bucket_units(ledger, A) == 6_000  # retried: once
    assert (await draw_shared(ledger, "smith", A, 1, now_s=NOW, op_id="more")).units == 0
    # min_units: less than that is not worth a bucket.
    small = await draw_shared(ledger, "smith", B, 5_000, now_s=NOW, op_id="b", min_units=4_500)
    assert small.units == 0
    with pytest.raises(UnknownAccount, match="not a member"):
        await draw_shared(ledger, "smith", C, 10, now_s=NOW, op_id="c")
    # The same period filled again (a retried fill) resets nothing; a new period does.
    refill = {
        "kind": KIND, "unit": BucketUnit.BYTES, "amount": 10_000, "member_cap": 6_000,
        "members": [A, B], "expires_at_s": NOW + 86_400,
    }  # fmt: skip
    assert not await fill_group(ledger, "smith", period="2026-03", **refill)  # type: ignore[arg-type]
    assert await member_drawn(ledger, "smith", A) == 6_000
    assert await fill_group(ledger, "smith", period="2026-04", **refill)  # type: ignore[arg-type]
    assert await member_drawn(ledger, "smith", A) == 0
    # After the pool's expiry nothing is drawn.
    late = await draw_shared(ledger, "smith", B, 10, now_s=NOW + 86_400, op_id="late")
    assert late.units == 0


async def test_a_lost_grant_is_repaired_once(two_ledgers: tuple[Ledger, Ledger]) -> None:
    ledger, _ = two_ledgers
    prefix = group_prefix("fam", "smith")
    # The first call alone, as if the caller died before granting the bucket.
    key_list = [f"{prefix}:op:lost", pool_key(prefix), members_key(prefix), pending_key(prefix)]
    digest = content_digest("shared_draw", "smith", B, 700, 0)
    payload = ["lost", digest, B, 700, 0, NOW, ledger.idempotency_ttl_s]
    await ledger._run(_SCRIPTS["shared_draw"], key_list, payload)
    assert await bucket_units(ledger, B) == 0 and await member_drawn(ledger, "smith", B) == 700
    assert await repair(ledger, "smith", now_s=NOW) == 1
    assert await bucket_units(ledger, B) == 700
    assert await repair(ledger, "smith", now_s=NOW) == 0
    # A caller retrying the lost draw after the repair: replayed, granted once in all.
    await draw_shared(ledger, "smith", B, 700, now_s=NOW, op_id="lost")
    assert await bucket_units(ledger, B) == 700


def test_group_command(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store(redis_url)
    base = ("--tenant", "acme", "--redis-url", redis_url)
    for member in (ACME_1, ACME_2):
        assert run(capsys, "account", "create", *base, member)[0] == 0
    fill = ("group", "fill", *base, "fam", "--period", "2026-03", "--bundle", "data_1g")
    sizes = ("--amount", "1000", "--member-cap", "600", "--member", ACME_1, "--member", ACME_2)
    code, out, _ = run(capsys, *fill, *sizes, "--json")
    assert code == 0 and json.loads(out)["pool"]["kind"] == "data_1g.data"
    code, out, _ = run(capsys, "group", "draw", *base, "fam", ACME_1, "900", "--op-id", "d1")
    assert code == 0 and out.startswith("drew 600 for the member (0 left of its cap)")
    code, out, _ = run(capsys, "group", "draw", *base, "fam", ACME_2, "900", "--json")
    assert code == 0 and json.loads(out)["units"] == 400  # what the pool had left
    code, out, _ = run(capsys, "group", "show", *base, "fam", "--json")
    assert json.loads(out)["pool"]["drawn"] == {ACME_1: 600, ACME_2: 400}
    assert run(capsys, "group", "repair", *base, "fam")[0] == 0
    code, _, err = run(capsys, *fill[:-1], "data_99g", *sizes)
    assert code == 1 and "no bundle 'data_99g'" in err
    code, _, err = run(capsys, "group", "draw", *base, "fam", ACME_1, "lots")
    assert code == 2 and "units 'lots'" in err
    code, _, err = run(capsys, "group", "show", *base, "nobody")
    assert code == 1 and "no group 'nobody'" in err


async def test_member_index_follows_the_fills(two_ledgers: tuple[Ledger, Ledger]) -> None:
    """The index servers load: a fill names its members; a later period's fill without a
    member drops it; a retried fill keeps the index as it is."""
    ledger, _ = two_ledgers
    found = await read_memberships(ledger.client, "fam")
    assert found == {A: Membership("smith", KIND), B: Membership("smith", KIND)}
    await fill_group(
        ledger, "smith", period="2026-04", kind=KIND, unit=BucketUnit.BYTES,
        amount=10_000, member_cap=6_000, members=[B, C], expires_at_s=NOW + 86_400,
    )  # fmt: skip
    again = await fill_group(
        ledger, "smith", period="2026-04", kind=KIND, unit=BucketUnit.BYTES,
        amount=10_000, member_cap=6_000, members=[B, C], expires_at_s=NOW + 86_400,
    )  # fmt: skip
    assert again is False
    found = await read_memberships(ledger.client, "fam")
    assert found == {B: Membership("smith", KIND), C: Membership("smith", KIND)}
