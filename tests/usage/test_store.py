"""The usage store against a real PostgreSQL: migrations, idempotent batches, partitions, reads."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from ocs.embedded_postgres import EmbeddedPostgres
from tests.usage.rows import DEC_02, MAR_05, NOV_15, make_row, make_rows
from usage import migrate
from usage import sql as q
from usage.row import UsageRow
from usage.store import StoreError, StoreUnavailable, UnknownTenant, UsageStore, tenant_role


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[UsageStore]:
    store = await UsageStore.open(store_url, pool_max=4)
    yield store
    await store.close()


def test_migrations_apply_on_empty_database_and_reapply_as_noop(
    postgres_server: EmbeddedPostgres,
) -> None:
    url = postgres_server.create_database("ocs_test_migrate_empty")
    try:
        steps = [
            "0001_roles",
            "0002_usage_records",
            "0003_isolation",
            "0004_writer_partitions",
            "0100_settlement",
            "0101_settlement_scale",
            "0201_api",  # ocs api: keys and audit log
            "0202_api_jobs",  # ocs api: asynchronous jobs (CSV import)
            "0203_api_proxy_keys",  # the proxy key role
        ]
        assert migrate.apply(url) == steps
        assert migrate.apply(url) == []
        assert all(applied for _, applied in migrate.status(url))
        # Every step rolls back cleanly and applies again.
        assert migrate.rollback(url, len(steps)) == steps[::-1]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('usage_records')").fetchone() == (None,)
        assert migrate.apply(url) == steps
    finally:
        postgres_server.drop_database("ocs_test_migrate_empty")


def test_batch_columns_are_the_usage_row_fields() -> None:
    renamed = {"started_at": "started_at_s", "ended_at": "ended_at_s"}
    names = tuple(renamed.get(name, name) for name, _ in q.BATCH_COLUMNS)
    assert names == UsageRow.__struct_fields__


async def test_store_batch_is_idempotent(store: UsageStore) -> None:
    rows = make_rows("alpha", 50)
    assert await store.store_batch(rows) == 50
    assert await store.store_batch(rows) == 0
    # Half already stored, half new: only the new half counts; a duplicate inside one batch too.
    more = make_rows("alpha", 50, first=25)
    assert await store.store_batch([*more, more[-1]]) == 25
    assert (await store.count_and_totals("alpha")).count == 75


async def test_a_batch_of_several_tenants_and_months(store: UsageStore, store_url: str) -> None:
    rows = [
        *make_rows("alpha", 10),
        *make_rows("beta", 5, ended_at_s=DEC_02),
        *make_rows("beta", 3, first=100),
    ]
    assert await store.store_batch(rows) == 18
    with psycopg.connect(store_url) as conn:  # the owner reads partitions directly
        parts = conn.execute("SELECT name FROM usage_partitions ORDER BY lo").fetchall()
        assert [p for (p,) in parts] == ["usage_records_202511", "usage_records_202512"]
        assert conn.execute("SELECT count(*) FROM usage_records_202512").fetchone() == (5,)
        assert conn.execute("SELECT count(*) FROM usage_records_default").fetchone() == (0,)
    assert (await store.count_and_totals("beta")).count == 8


async def test_rows_are_stored_as_given(store: UsageStore) -> None:
    row = make_row("alpha", 7, started_at_s=0.0, role_of_node=1, legs='[{"leg":"x"}]')
    await store.store_batch([row])
    async with store.as_tenant("alpha") as conn:
        got = await (
            await conn.execute(
                "SELECT started_at, ended_at, retail, role_of_node, legs, entry_id"
                " FROM usage_records"
            )
        ).fetchone()
    assert got is not None
    assert got[0] is None  # no start
    assert got[1] == datetime.fromtimestamp(row.ended_at_s, UTC)
    assert got[2:] == (row.retail, 1, '[{"leg":"x"}]', row.entry_id)


async def test_count_and_totals(store: UsageStore) -> None:
    rows = [*make_rows("alpha", 4), make_row("alpha", 9, kind="topup", ended_at_s=DEC_02)]
    await store.store_batch(rows)
    totals = await store.count_and_totals("alpha")
    assert totals.count == 5
    assert totals.retail == sum(r.retail for r in rows)
    assert totals.wholesale == sum(r.wholesale for r in rows)
    assert totals.leakage_money == sum(r.leakage_money for r in rows)
    assert totals.money_delta == sum(r.money_delta for r in rows)
    dec = datetime(2025, 12, 1, tzinfo=UTC)
    assert (await store.count_and_totals("alpha", end=dec)).count == 4
    assert (await store.count_and_totals("alpha", start=dec)).count == 1
    assert (await store.count_and_totals("alpha", kinds=["topup"])).retail == rows[-1].retail
    with pytest.raises(StoreError, match="time zone"):
        await store.count_and_totals("alpha", start=datetime(2025, 12, 1))


async def test_exists_op(store: UsageStore) -> None:
    await store.store_batch([make_row("alpha", 1, op_id="op-1")])
    assert await store.exists_op("alpha", "op-1")
    assert not await store.exists_op("alpha", "op-2")
    assert not await store.exists_op("beta", "op-1")


async def test_unknown_and_invalid_tenants(store: UsageStore) -> None:
    with pytest.raises(UnknownTenant):
        await store.count_and_totals("nobody")
    with pytest.raises(StoreError, match="tenant"):
        await store.ensure_tenant("Bad Tenant!")


async def test_ensure_tenant_is_idempotent(store: UsageStore) -> None:
    assert await store.ensure_tenant("alpha") == "ocs_t_alpha"
    assert await store.ensure_tenant("alpha") == "ocs_t_alpha"
    assert [t.tenant for t in await store.tenants()] == ["alpha"]
    long_id = "t" * 63
    role = tenant_role(long_id)
    assert len(role) == 63 and role != tenant_role("t" * 62 + "u")
    assert await store.ensure_tenant(long_id) == role


async def test_rows_of_a_month_without_partition_move_out_of_the_default(
    store: UsageStore, store_url: str
) -> None:
    await store.store_batch(make_rows("alpha", 2))
    # A row put in the default partition (a month nobody created yet: the safety net) ...
    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO usage_records_default (tenant, vshard, entry_id, kind, ended_at)"
            " VALUES ('alpha', 1, '1-1', 'usage', '2026-03-05T00:00:00Z')"
        )
    # ... is moved into the month's partition when that month is created.
    assert await store.store_batch([make_row("alpha", 3, ended_at_s=MAR_05)]) == 1
    with psycopg.connect(store_url) as conn:
        assert conn.execute("SELECT count(*) FROM usage_records_default").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM usage_records_202603").fetchone() == (2,)
    assert (await store.count_and_totals("alpha")).count == 4


async def test_a_rejected_batch_stores_nothing(store: UsageStore) -> None:
    good = make_rows("alpha", 3)
    # Out of range for the integer / smallint columns: refused, never wrapped around.
    for bad in (make_row("alpha", 99, vshard=2**31), make_row("alpha", 98, role_of_node=40_000)):
        with pytest.raises(StoreError, match="out of range"):
            await store.store_batch([*good, bad])
    assert (await store.count_and_totals("alpha", end=_AFTER_NOV)).count == 0
    assert await store.store_batch(good) == 3


_AFTER_NOV = datetime.fromtimestamp(NOV_15 + 86_400, UTC)


async def test_a_month_dropped_behind_the_stores_back(store: UsageStore, store_url: str) -> None:
    await store.store_batch(make_rows("alpha", 2))
    with psycopg.connect(store_url, autocommit=True) as conn:  # another process pruned it
        conn.execute("DROP TABLE usage_records_202511")
    # The store still believes the month exists: its rows go through the parent (default).
    assert await store.store_batch(make_rows("alpha", 3, first=10)) == 3
    with psycopg.connect(store_url) as conn:
        assert conn.execute("SELECT count(*) FROM usage_records_default").fetchone() == (3,)
    # The next batch creates the month again, and the default's rows move into it.
    assert await store.store_batch(make_rows("alpha", 1, first=20)) == 1
    with psycopg.connect(store_url) as conn:
        assert conn.execute("SELECT count(*) FROM usage_records_202511").fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM usage_records_default").fetchone() == (0,)


async def test_server_down_then_back() -> None:
    """PostgreSQL stopping under the store: StoreUnavailable (nothing half-written), and the
    same store works again once the server is back (dead pooled connections are replaced)."""
    base = tempfile.mkdtemp(prefix="ocs-test-pg-")
    os.chmod(base, 0o755)
    server = EmbeddedPostgres(Path(base) / "pg", fsync=False)
    try:
        migrate.apply(server.start())
        store = await UsageStore.open(server.url, pool_max=2, connect_timeout_s=2)
        try:
            assert await store.store_batch(make_rows("alpha", 3)) == 3
            server.stop()
            with pytest.raises(StoreUnavailable):
                await store.store_batch(make_rows("alpha", 3, first=10))
            server.start()  # same port, same password: the same store carries on
            assert await store.store_batch(make_rows("alpha", 6)) == 3
        finally:
            await store.close()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
