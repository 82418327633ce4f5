"""What exporter tests share: the demo catalog stored in Redis, tenant ACL clients, a ledger
writing records, and waiting (bounded) for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import msgspec
import redis.asyncio as aioredis

from balance import keys
from balance.ledger import Ledger, tenant_username
from balance.tenants import provision_tenant, tenant_password
from ocs.catalog_store import store_catalog
from tariffs.loader import load_catalog_sources
from tests.support.charging import DEMO_CATALOG
from usage.sql import RECORD_COLUMNS

SECRET = b"exporter-test-secret-0123456789"


def demo_sources(only: Sequence[str] = ()) -> list[tuple[str, str]]:
    _, sources = load_catalog_sources(DEMO_CATALOG)
    if only:
        sources = [(name, text) for name, text in sources if any(t in name for t in only)]
    return sources


async def install_catalog_texts(admin: Any, only: Sequence[str] = ()) -> None:
    await store_catalog(admin, demo_sources(only))


def tenant_client_factory(url: str, admin: Any) -> Callable[[str], Awaitable[aioredis.Redis]]:
    clients: dict[str, aioredis.Redis] = {}

    async def open_client(tenant: str) -> aioredis.Redis:
        if tenant not in clients:
            password = tenant_password(SECRET, tenant)
            await provision_tenant(admin, tenant, password)
            clients[tenant] = aioredis.Redis.from_url(
                url, username=tenant_username(tenant), password=password, socket_timeout=10.0
            )
        return clients[tenant]

    open_client.clients = clients  # type: ignore[attr-defined]
    return open_client


class StoredRow(msgspec.Struct, frozen=True):
    """The columns of a row MemorySink stored that the tests read."""

    tenant: str
    vshard: int
    entry_id: str
    kind: str
    money_delta: int
    unit: str


class MemorySink:
    """An in-process stand-in for the usage store with its one relevant property: idempotent
    on (tenant, vshard, entry_id). ``failing`` makes writes raise, like a store that is down."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int, str], StoredRow] = {}
        self.failing = False
        self.tenants: set[str] = set()
        self.calls = 0

    async def ensure_tenant(self, tenant: str) -> None:
        self.tenants.add(tenant)

    async def store_values(
        self, by_month: Mapping[date, Sequence[tuple[Any, ...]]], tenants: Iterable[str]
    ) -> int:
        self.calls += 1
        if self.failing:
            raise ConnectionError("the store is down")
        new = 0
        for values in (v for rows in by_month.values() for v in rows):
            column = dict(zip(RECORD_COLUMNS, values, strict=True))
            row = StoredRow(**{f: column[f] for f in StoredRow.__struct_fields__})
            key = (row.tenant, row.vshard, row.entry_id)
            if key not in self.rows:
                self.rows[key] = row
                new += 1
        return new


async def write_records(ledger: Ledger, subscribers: int, topups: int = 1) -> int:
    """Provision ``subscribers`` accounts and top each up ``topups`` times; records written."""
    now = time.time()
    for index in range(subscribers):
        subscriber = f"49170990{index:05d}"
        await ledger.provision_account(subscriber, balance=1000, now_s=now)
        for _ in range(topups):
            await ledger.topup(subscriber, 10, now_s=now)
    return subscribers * (1 + topups)


async def stream_lengths(client: Any, tenant: str) -> int:
    pipe = client.pipeline(transaction=False)
    for shard in range(keys.VSHARDS):
        pipe.xlen(keys.stream_key(keys.shard_prefix(tenant, shard)))
    return sum(await pipe.execute())


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {timeout_s} s: {what}")
