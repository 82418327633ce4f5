"""The exporter against a real Redis, on the tenants' ACL users, with an idempotent in-process
sink standing in for the store (tests/usage/test_export_store.py runs it into PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from balance import keys
from balance.ledger import Ledger
from ocs.config import ExportConfig
from ocs.exporter import Exporter
from ocs.logging_setup import make_logger
from tests.support.export import (
    MemorySink,
    install_catalog_texts,
    stream_lengths,
    tenant_client_factory,
    wait_for,
    write_records,
)

CONFIG = ExportConfig(
    block_ms=100, linger_ms=20, claim_idle_ms=300, tenants_refresh_s=0.2, lag_interval_s=0.1,
    batch_size=50, read_count=16,
)  # fmt: skip


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _start(exporter: Exporter) -> asyncio.Task[None]:
    return asyncio.create_task(exporter.run())


async def _stop(exporter: Exporter, task: asyncio.Task[None]) -> None:
    exporter.stop_event.set()
    await asyncio.wait_for(task, 30)


def _exporter(redis_url: str, admin: Any, sink: MemorySink, **overrides: Any) -> Exporter:
    config = msgspec.structs.replace(CONFIG, **overrides)
    return Exporter(
        admin, tenant_client_factory(redis_url, admin), sink, config, make_logger("warning")
    )


async def test_every_record_is_stored_once_and_the_streams_are_trimmed(
    redis_url: str, admin: aioredis.Redis
) -> None:
    await install_catalog_texts(admin)
    sink = MemorySink()
    exporter = _exporter(redis_url, admin, sink)
    task = await _start(exporter)
    try:
        await wait_for(lambda: _true(len(exporter.workers) == 2), what="both tenants")
        ledger = Ledger(await exporter.tenant_client("acme"), "acme")
        written = await write_records(ledger, 60, topups=2)
        other = Ledger(await exporter.tenant_client("globex"), "globex")
        written_other = await write_records(other, 10)
        await wait_for(lambda: _true(len(sink.rows) == written + written_other), what="stored")
        client = await exporter.tenant_client("acme")
        await wait_for(lambda: _zero(stream_lengths(client, "acme")), what="acme trimmed")
        await exporter.measure_lag()
        health = await exporter.health()
        assert health["status"] == "ok" and health["lag_entries"]["acme"] == 0
    finally:
        await _stop(exporter, task)
    kinds = sorted({r.kind for r in sink.rows.values()})
    assert kinds == ["provision", "topup"]
    acme = [r for r in sink.rows.values() if r.tenant == "acme"]
    assert len(acme) == written and sum(r.money_delta for r in acme) == 60 * (1000 + 20)
    assert all(r.unit == "money" for r in acme)
    assert exporter.metrics.stored.labels("acme")._value.get() == written


async def test_store_down_keeps_everything_in_redis_then_catches_up(
    redis_url: str, admin: aioredis.Redis
) -> None:
    await install_catalog_texts(admin, only=["acme"])
    sink = MemorySink()
    sink.failing = True
    exporter = _exporter(redis_url, admin, sink, lag_degraded_s=0.0, retry_max_s=0.2)
    task = await _start(exporter)
    try:
        await wait_for(lambda: _true("acme" in exporter.workers), what="worker")
        ledger = Ledger(await exporter.tenant_client("acme"), "acme")
        written = await write_records(ledger, 40)
        client = await exporter.tenant_client("acme")
        await wait_for(lambda: _true(sink.calls >= 3), what="store retried")
        assert await stream_lengths(client, "acme") == written  # nothing trimmed
        await exporter.measure_lag()
        health = await exporter.health()
        assert health["status"] == "degraded" and health["store"] == "failing"
        assert health["lag_entries"]["acme"] == written and health["lagging"] == ["acme"]
        assert exporter.metrics.store_up._value.get() == 0
        sink.failing = False
        await wait_for(lambda: _true(len(sink.rows) == written), what="caught up")
        await wait_for(lambda: _zero(stream_lengths(client, "acme")), what="trimmed")
    finally:
        await _stop(exporter, task)
    assert len(sink.rows) == written


async def test_a_dead_consumers_pending_entries_are_claimed(
    redis_url: str, admin: aioredis.Redis
) -> None:
    await install_catalog_texts(admin, only=["acme"])
    factory = tenant_client_factory(redis_url, admin)
    client = await factory("acme")
    ledger = Ledger(client, "acme")
    written = await write_records(ledger, 30)
    # A "dead" exporter read every entry and never acknowledged them.
    first = Exporter(admin, factory, MemorySink(), CONFIG, make_logger("warning"), consumer="dead")
    await first.refresh_tenants()
    worker = first.workers["acme"]
    first.stop_event.set()
    await first.stop()
    await worker.ensure_groups()
    taken = []
    for _ in range(5):
        taken.extend(await worker.read())
    assert len(taken) == written
    sink = MemorySink()
    second = Exporter(admin, factory, sink, CONFIG, make_logger("warning"), consumer="alive")
    task = await _start(second)
    try:
        await wait_for(lambda: _true(len(sink.rows) == written), what="claimed and stored")
        await wait_for(lambda: _zero(stream_lengths(client, "acme")), what="trimmed")
    finally:
        await _stop(second, task)
    assert second.metrics.claimed.labels("acme")._value.get() == written


async def test_two_exporters_share_the_streams_exactly_once(
    redis_url: str, admin: aioredis.Redis
) -> None:
    await install_catalog_texts(admin, only=["acme"])
    sink = MemorySink()
    one = _exporter(redis_url, admin, sink)
    two = _exporter(redis_url, admin, sink)
    assert one.consumer != two.consumer
    tasks = [await _start(one), await _start(two)]
    try:
        await wait_for(lambda: _true("acme" in one.workers and "acme" in two.workers))
        ledger = Ledger(await one.tenant_client("acme"), "acme")
        written = await write_records(ledger, 80)
        await wait_for(lambda: _true(len(sink.rows) == written), what="stored")
    finally:
        await _stop(one, tasks[0])
        await _stop(two, tasks[1])
    stored = sum(e.metrics.stored.labels("acme")._value.get() for e in (one, two))
    assert stored == written


async def test_a_tenant_added_later_is_picked_up(redis_url: str, admin: aioredis.Redis) -> None:
    await install_catalog_texts(admin, only=["acme"])
    sink = MemorySink()
    exporter = _exporter(redis_url, admin, sink)
    task = await _start(exporter)
    try:
        await wait_for(lambda: _true(set(exporter.workers) == {"acme"}))
        await install_catalog_texts(admin)
        await wait_for(lambda: _true(set(exporter.workers) == {"acme", "globex"}), what="new")
        ledger = Ledger(await exporter.tenant_client("globex"), "globex")
        written = await write_records(ledger, 5)
        await wait_for(lambda: _true(len(sink.rows) == written), what="stored")
    finally:
        await _stop(exporter, task)
    assert {r.tenant for r in sink.rows.values()} == {"globex"}
    assert sink.tenants == {"acme", "globex"}


async def test_the_tenant_user_may_not_trim_another_tenants_stream(
    redis_url: str, admin: aioredis.Redis
) -> None:
    factory = tenant_client_factory(redis_url, admin)
    acme = await factory("acme")
    with pytest.raises(NoPermissionError):
        await acme.xtrim(keys.stream_key(keys.shard_prefix("globex", 1)), minid="0-1")
    assert await acme.xtrim(keys.stream_key(keys.shard_prefix("acme", 1)), minid="0-1") == 0


async def _true(value: bool) -> bool:
    return value


async def _zero(length: Any) -> bool:
    return bool(await length == 0)


async def test_a_stream_keeps_exactly_what_is_not_stored(
    redis_url: str, admin: aioredis.Redis
) -> None:
    """Trimming is exact: with one record not yet stored behind 150 stored ones in the same
    stream, the stream holds that one record (an approximate trim would keep its whole node)."""
    await install_catalog_texts(admin, only=["acme"])
    sink = MemorySink()
    exporter = _exporter(redis_url, admin, sink, retry_max_s=0.1)
    task = await _start(exporter)
    try:
        await wait_for(lambda: _true("acme" in exporter.workers), what="worker")
        client = await exporter.tenant_client("acme")
        ledger = Ledger(client, "acme")
        subscriber = "4917099000777"
        await ledger.provision_account(subscriber, balance=1000, now_s=1.0)
        for _ in range(149):
            await ledger.topup(subscriber, 1, now_s=1.0)
        await wait_for(lambda: _true(len(sink.rows) == 150), what="stored")
        sink.failing = True
        await ledger.topup(subscriber, 1, now_s=2.0)
        await wait_for(lambda: _true(sink.calls >= 3 + len(sink.rows) // 50), what="retrying")
        stream = keys.stream_key(keys.subscriber_prefix("acme", subscriber))
        await wait_for(lambda: _is(client.xlen(stream), 1), what="only the unstored record left")
        sink.failing = False
        await wait_for(lambda: _true(len(sink.rows) == 151), what="stored at last")
        await wait_for(lambda: _is(client.xlen(stream), 0), what="empty")
    finally:
        await _stop(exporter, task)


async def _is(value: Any, expected: int) -> bool:
    return bool(await value == expected)
