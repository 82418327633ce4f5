"""The record context: every record-writing script copies it onto its records untouched (field
19), without it records decode as before (context None), and it never takes part in the
idempotency digest (a retransmission with another context is still a replay)."""

from __future__ import annotations

import msgspec
import pytest
import redis.asyncio as aioredis

from balance import keys
from balance.errors import InvalidRequest
from balance.ledger import Ledger, encode_context
from balance.records import BucketUnit, LedgerRecord, RatingGroupRequest, RecordContext, UsedLeg
from tariffs.price import Price

NOW = 1_700_000_000.0
PRICE = Price(1, 1, 1, 2, step_units=10)
SUB = "4917099000001"
CTX = RecordContext(
    source="gy",
    host_mno="hostnet",
    msisdn=SUB,
    imsi="262019990000001",
    started_at_s=NOW - 5,
    visited_plmn="26201",
    apn="internet",
    charging_id="abc123",
    rate_card_version="v1",
    currency="EUR",
)
_DECODE = msgspec.msgpack.Decoder(LedgerRecord)


async def _records(client: aioredis.Redis, subscriber: str = SUB) -> list[LedgerRecord]:
    stream = keys.stream_key(keys.subscriber_prefix("acme", subscriber))
    return [_DECODE.decode(fields[b"r"]) for _, fields in await client.xrange(stream)]


def _usage(used: int, requested: int = 100) -> RatingGroupRequest:
    return RatingGroupRequest(
        rating_group=10,
        service="data",
        used=(UsedLeg("acme:v1:data", used, PRICE),) if used else (),
        requested_units=requested,
        reserve_leg_key="acme:v1:data",
        reserve_price=PRICE,
        valid_until_s=NOW + 60,
    )


async def test_every_script_carries_the_context(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    ledger = Ledger(client, "acme")
    admin = RecordContext(source="admin", source_ref="cli")
    try:
        await ledger.provision_account(SUB, balance=10_000, now_s=NOW, context=admin)
        await ledger.topup(SUB, 500, now_s=NOW, context=admin)
        await ledger.adjust(SUB, -5, reason="fix", now_s=NOW, context=admin)
        await ledger.add_bucket(
            SUB, bucket_id="b1", kind="data", unit=BucketUnit.BYTES, amount=10, now_s=NOW,
            context=admin,
        )  # fmt: skip
        session = encode_context(CTX)
        await ledger.credit_control(SUB, "s1", "s1:0", [_usage(0)], now_s=NOW, context=session)
        await ledger.credit_control(SUB, "s1", "s1:1", [_usage(50)], now_s=NOW, context=session)
        await ledger.debit_event(
            SUB, "e1", service="sms", rating_group=0, legs=(UsedLeg("acme:v1:sms", 1, PRICE),),
            now_s=NOW, context=RecordContext(source="sms", msisdn=SUB, called="447700900001"),
        )  # fmt: skip
        await ledger.refund(SUB, "r1", amount=1, now_s=NOW, context=admin)
        await ledger.block(SUB, now_s=NOW, context=admin)
        sweep = RecordContext(source="sweep")
        expired = await ledger.expire_due(NOW + 3600, vshards=[keys.vshard(SUB)], context=sweep)
        assert len(expired) == 1
        records = await _records(client)
        by_kind = {r.kind: r for r in records}
        assert [r.kind for r in records] == [
            "provision", "topup", "adjust", "bucket", "usage", "debit", "refund", "block",
            "expiry",
        ]  # fmt: skip
        for kind in ("provision", "topup", "adjust", "bucket", "refund", "block"):
            assert by_kind[kind].context == admin
        assert by_kind["usage"].context == CTX
        assert by_kind["usage"].units == 50
        assert by_kind["debit"].context is not None
        assert by_kind["debit"].context.called == "447700900001"
        assert by_kind["expiry"].context == sweep
    finally:
        await client.aclose()


async def test_without_context_records_are_unchanged(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=10_000, now_s=NOW)
    await ledger.credit_control(SUB, "s1", "s1:0", [_usage(0)], now_s=NOW)
    await ledger.credit_control(SUB, "s1", "s1:1", [_usage(30)], now_s=NOW)
    records = await _records(ledger.client)  # type: ignore[arg-type]
    assert [r.kind for r in records] == ["provision", "usage"]
    assert all(r.context is None for r in records)


async def test_context_is_not_part_of_the_digest(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=10_000, now_s=NOW)
    await ledger.credit_control(SUB, "s1", "s1:0", [_usage(0)], now_s=NOW)
    first = await ledger.credit_control(
        SUB, "s1", "s1:1", [_usage(30)], now_s=NOW, context=encode_context(CTX)
    )
    # The same request retransmitted by another process that built its context later.
    other = msgspec.structs.replace(CTX, started_at_s=NOW + 1)
    again = await ledger.credit_control(
        SUB, "s1", "s1:1", [_usage(30)], now_s=NOW + 2, context=other
    )
    assert not first.replayed and again.replayed and again.raw == first.raw
    records = await _records(ledger.client)  # type: ignore[arg-type]
    assert [r.kind for r in records].count("usage") == 1


async def test_a_context_that_is_not_an_array_is_refused(ledger: Ledger) -> None:
    await ledger.provision_account(SUB, balance=10_000, now_s=NOW)
    with pytest.raises(InvalidRequest, match="record context"):
        await ledger.topup(SUB, 5, now_s=NOW, context=b"\xa3abc")
    with pytest.raises(InvalidRequest, match="record context"):
        await ledger.credit_control(SUB, "s1", "s1:0", [_usage(0)], now_s=NOW, context=b"\x01")
    assert [r.kind for r in await _records(ledger.client)] == ["provision"]  # type: ignore[arg-type]


async def test_product_grants_carry_the_context(ledger: Ledger) -> None:
    """grant.lua (add-on purchase, renewal): every record it writes, the expired remainder of a
    carried bucket included, ends with the caller's context, byte for byte."""
    from balance.products import BucketSpec, Carry, grant_product

    def spec(tag: str, carry: Carry) -> BucketSpec:
        return BucketSpec(f"d#{tag}", "d", BucketUnit.BYTES, 100, 10, NOW + 900, carry, 30)

    shop = RecordContext(source="admin", msisdn=SUB, source_ref="shop-1", plan="data10")
    await ledger.provision_account(SUB, balance=10_000, now_s=NOW)
    await grant_product(
        ledger, SUB, product="addon:x", fee=5, buckets=[spec("a", Carry.KEEP)], now_s=NOW,
        context=shop,
    )  # fmt: skip
    renew = RecordContext(source="admin", source_ref="renew", plan="data10")
    await grant_product(
        ledger, SUB, product="plan:data10", fee=7, buckets=[spec("b", Carry.ROLLOVER)],
        now_s=NOW + 1, context=encode_context(renew),
    )  # fmt: skip
    await grant_product(
        ledger, SUB, product="addon:x", fee=0, buckets=[spec("c", Carry.KEEP)], now_s=NOW + 2
    )
    records = await _records(ledger.client)  # type: ignore[arg-type]
    assert [r.kind for r in records] == ["provision", "bucket", "expired", "bucket", "bucket"]
    assert records[1].context == shop and records[1].retail == 5
    assert records[2].kind == "expired" and records[2].units == 70  # 100 left, 30 carried
    assert records[2].context == renew and records[3].context == renew
    assert records[3].units == 130 and records[3].retail == 7
    assert records[4].context is None  # without a context: as before
