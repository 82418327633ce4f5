"""Tenant isolation enforced by the database: tenant A's role cannot read, change or delete
tenant B's usage rows, whatever the query says; the portfolio role reads both."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from tests.usage.rows import make_rows
from usage.store import UsageStore


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[UsageStore]:
    store = await UsageStore.open(store_url, pool_max=2)
    await store.store_batch([*make_rows("alpha", 5), *make_rows("beta", 7, first=100)])
    yield store
    await store.close()


async def _scalar(store: UsageStore, tenant: str, query: str) -> object:
    async with store.as_tenant(tenant) as conn:
        row = await (await conn.execute(query)).fetchone()
    return None if row is None else row[0]


async def test_a_tenant_reads_only_its_own_rows(store: UsageStore) -> None:
    # The query asks for the sibling's rows by name; the database answers with none.
    assert await _scalar(store, "alpha", "SELECT count(*) FROM usage_records") == 5
    assert (
        await _scalar(store, "alpha", "SELECT count(*) FROM usage_records WHERE tenant = 'beta'")
        == 0
    )
    assert await _scalar(store, "beta", "SELECT count(*) FROM usage_records") == 7
    async with store.as_tenant("alpha") as conn:
        tenants = await (await conn.execute("SELECT DISTINCT tenant FROM usage_records")).fetchall()
    assert tenants == [("alpha",)]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE usage_records SET retail = 0 WHERE tenant = 'beta'",
        "DELETE FROM usage_records WHERE tenant = 'beta'",
        "INSERT INTO usage_records (tenant, vshard, entry_id, kind, ended_at)"
        " VALUES ('beta', 1, 'x', 'usage', now())",
        "SELECT count(*) FROM usage_records_default",  # a partition, by name: no way around RLS
        "SELECT count(*) FROM usage_records_202511",
        "INSERT INTO usage_records_202511 (tenant, vshard, entry_id, kind, ended_at)"
        " VALUES ('beta', 1, 'x', 'usage', '2025-11-20T00:00:00Z')",
        "SELECT count(*) FROM usage_tenants",
        "TRUNCATE usage_records",
    ],
)
async def test_a_tenant_cannot_write_or_walk_around_the_policy(
    store: UsageStore, statement: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with store.as_tenant("alpha") as conn:
            await conn.execute(statement)
    assert (await store.count_and_totals("beta")).count == 7


async def test_the_writer_inserts_but_never_updates_or_deletes(store: UsageStore) -> None:
    for statement in (
        "UPDATE usage_records SET retail = 0",
        "DELETE FROM usage_records",
        "SELECT count(*) FROM usage_records_202511",  # may COPY into a month, never read it
        "DELETE FROM usage_records_202511",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with store.as_writer() as conn:
                await conn.execute(statement)
    assert (await store.count_and_totals("alpha")).count == 5


async def test_the_portfolio_reads_every_tenant(store: UsageStore) -> None:
    async with store.as_portfolio() as conn:
        rows = await (
            await conn.execute(
                "SELECT tenant, count(*) FROM usage_records GROUP BY tenant ORDER BY tenant"
            )
        ).fetchall()
    assert rows == [("alpha", 5), ("beta", 7)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with store.as_portfolio() as conn:
            await conn.execute("DELETE FROM usage_records")


async def test_the_role_does_not_outlive_its_transaction(store: UsageStore) -> None:
    async with store.as_tenant("alpha") as conn:
        assert await (await conn.execute("SELECT current_user")).fetchone() == ("ocs_t_alpha",)
    async with store._pool.connection() as conn:
        assert await (await conn.execute("SELECT current_user")).fetchone() == ("ocs",)


async def test_a_tenant_export_holds_nothing_of_another_tenant(store: UsageStore) -> None:
    chunks = [chunk async for chunk in store.iter_export("alpha", chunk_rows=2)]
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert {row[0] for chunk in chunks for row in chunk} == {"alpha"}
