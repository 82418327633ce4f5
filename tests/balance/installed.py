"""A tenant's catalog installed on a test Redis, with its ledger and a renewal scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from balance.ledger import Ledger
from ocs.catalog_install import install_catalog
from ocs.renewal import Renewer
from tariffs.loader import load_texts
from tariffs.model import Catalog


@asynccontextmanager
async def installed_tenant(
    redis_url: str, tenant: str, catalog_text: str, now: float
) -> AsyncIterator[tuple[Catalog, Ledger, Renewer]]:
    """``catalog_text`` (one tenant file) installed at ``now``: the catalog, the tenant's ledger
    and a scheduler that renews on it; the connection closed afterwards."""
    client = aioredis.Redis.from_url(redis_url)
    catalog = load_texts([(f"{tenant}.yaml", catalog_text)])
    ledger = Ledger(client, tenant)

    async def ledger_for(_tenant: str) -> Ledger:
        return ledger

    try:
        await install_catalog(catalog, ledger_for, now=now)
        yield catalog, ledger, Renewer(ledger_for)
    finally:
        await client.aclose()
