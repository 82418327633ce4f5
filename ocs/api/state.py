"""What the API process holds open: the usage store, the ledger's Redis (an admin connection
for the catalog and notices, and one connection per tenant on that tenant's own ACL user), the
catalog (refreshed when it changes) and a short cache of key lookups."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from balance.ledger import Ledger
from ocs.api.audit_writer import AuditWriter
from ocs.api.keys import ApiKey, find_key
from ocs.catalog_store import CATALOG_KEY, read_stored
from ocs.config import Config
from ocs.key_format import key_hash
from ocs.ledger_runtime import LedgerRuntime
from tariffs.errors import CatalogError
from tariffs.model import Catalog
from tariffs.subscribers import Resolver
from usage.store import UnknownTenant, UsageStore

CATALOG_REFRESH_S = 2.0
KEY_CACHE_MAX = 10_000


class ApiState:
    """Shared by every request of one ``ocs api`` process."""

    def __init__(
        self,
        config: Config,
        store: UsageStore,
        ledgers: LedgerRuntime,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.ledgers = ledgers
        self.clock = clock
        self._catalog: Catalog | None = None
        self.resolver: Resolver | None = None  # built once per catalog, not per request
        self._catalog_raw: dict[bytes, bytes] | None = None
        self._catalog_at = -1e18
        self._catalog_lock = asyncio.Lock()
        self._keys: dict[bytes, tuple[float, ApiKey | None]] = {}
        self._store_tenants: set[str] = set()
        self.audit = AuditWriter(store, sync=config.api.audit_sync_commit)
        # Starts the import worker at once on a new upload (set by the process that runs it).
        self.wake_imports: Callable[[], None] = lambda: None

    @property
    def admin(self) -> Any:
        assert self.ledgers.admin is not None
        return self.ledgers.admin

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def key(self, presented: str) -> ApiKey | None:
        """The usable key ``presented`` stands for, or None (unknown, revoked or expired)."""
        digest = key_hash(presented)
        now = self.clock()
        cached = self._keys.get(digest)
        if cached is None or now - cached[0] > self.config.api.key_cache_s:
            if len(self._keys) >= KEY_CACHE_MAX:
                self._keys.clear()
            cached = (now, await find_key(self.store, presented))
            self._keys[digest] = cached
        found = cached[1]
        return found if found is not None and found.usable(self.now()) else None

    def forget_keys(self) -> None:
        self._keys.clear()

    async def catalog(self) -> Catalog | None:
        """The stored catalog; re-read when it changed (checked at most every 2 s)."""
        if self.clock() - self._catalog_at < CATALOG_REFRESH_S:
            return self._catalog
        async with self._catalog_lock:
            if self.clock() - self._catalog_at < CATALOG_REFRESH_S:
                return self._catalog
            raw: dict[bytes, bytes] = await self.admin.hgetall(CATALOG_KEY)
            if raw != self._catalog_raw:
                try:
                    stored = await read_stored(self.admin)
                except CatalogError:
                    stored = None  # `ocs catalog load` says why; serve nothing meanwhile
                self._catalog = None if stored is None else stored.catalog
                self.resolver = None if self._catalog is None else Resolver(self._catalog)
                self._catalog_raw = raw
            self._catalog_at = self.clock()
        return self._catalog

    def refresh_catalog(self) -> None:
        self._catalog_at = -1e18

    async def ledger(self, tenant: str) -> Ledger:
        """The tenant's ledger on the tenant's own Redis ACL user."""
        return await self.ledgers.ledger_for(tenant)

    async def tenant_store(self, tenant: str) -> Any:
        """A transaction as the tenant's own store role (created for a catalog tenant that has
        no usage yet, so its reads answer empty rather than "unknown")."""
        if tenant not in self._store_tenants:
            try:
                async with self.store.as_tenant(tenant):
                    pass
            except UnknownTenant:
                await self.store.ensure_tenant(tenant)
            self._store_tenants.add(tenant)
        return self.store.as_tenant(tenant)


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)
