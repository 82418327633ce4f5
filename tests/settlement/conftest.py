"""Fixtures of the settlement store tests: the demo catalog, a store with usage of two tenants
on the demo host MNO, and helpers to build invoices and detail files from those rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from settlement.catalog import load_settlement_catalog
from settlement.model import SettlementCatalog
from tariffs.loader import load_catalog
from tariffs.model import Catalog
from usage.settle_store import SettlementStore
from usage.store import UsageStore

BERLIN = ZoneInfo("Europe/Berlin")


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0, month: int = 1) -> float:
    """Epoch seconds of 2026-<month>-<day> <hour>:<minute>:<second> Berlin time."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=BERLIN).timestamp()


@pytest.fixture(scope="session")
def tenants() -> Catalog:
    return load_catalog("examples/catalog")


@pytest.fixture(scope="session")
def wholesale(tenants: Catalog) -> SettlementCatalog:
    return load_settlement_catalog("examples/catalog", tenants)


@pytest.fixture
async def usage_store(store_url: str) -> AsyncIterator[UsageStore]:
    store = await UsageStore.open(store_url, pool_max=2)
    yield store
    await store.close()


@pytest.fixture
async def settle_store(store_url: str) -> AsyncIterator[SettlementStore]:
    store = await SettlementStore.open(store_url, statement_timeout_s=120)
    yield store
    await store.close()
