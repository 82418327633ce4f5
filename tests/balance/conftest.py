"""Ledger fixtures: an admin-connection ledger on the shared test Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from balance.ledger import Ledger


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[Ledger]:
    client = aioredis.Redis.from_url(redis_url)
    yield Ledger(client, "acme")
    await client.aclose()
