"""Who is charged, and with which catalog: the tenant directory of one server process.

Tenant and subscriber are resolved at ingestion, from the request's identities, against the
catalog's subscriber ranges and entries, and carried on every ledger call and usage record
from then on. A catalog reload swaps one immutable snapshot, so a request in flight sees either
the old catalog or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from balance.ledger import Ledger
from diameter_apps.credit_control import CostInformation, SubscriptionId, currency_code
from ocs.subscriber_directory import DynamicDirectory
from tariffs.model import Catalog, Tenant
from tariffs.rating import Rater
from tariffs.subscribers import Resolver, SubscriberRef

LedgerFactory = Callable[[str], Awaitable[Ledger]]


# Resolutions remembered per snapshot: a session's CCR-I, -Us and -T name the same subscriber
# the same way, and resolving (normalising, range search) costs more than the lookup.
RESOLVED_ENTRIES_MAX = 200_000


class CatalogSnapshot:
    """One catalog compiled for ingestion (resolver) and rating (rater)."""

    def __init__(self, catalog: Catalog, dynamic: DynamicDirectory | None = None) -> None:
        self.catalog = catalog
        # Subscribers created at run time (ocs api); shared by every snapshot.
        self.dynamic = DynamicDirectory() if dynamic is None else dynamic
        self.resolver = Resolver(catalog)
        self.rater = Rater(catalog)
        self.tenants: dict[str, Tenant] = {t.id: t for t in catalog.tenants}
        self.currency_codes: dict[str, int] = {
            t.id: currency_code(t.currency) for t in catalog.tenants
        }
        # Only this snapshot's answers: a reload starts a new snapshot with an empty memo.
        self._resolved: dict[tuple[SubscriptionId, ...], SubscriberRef | None] = {}
        self._resolved_version = self.dynamic.version

    def plan_of(self, tenant: str, subscriber: str) -> str:
        """The catalog plan of a subscriber (by its canonical MSISDN); "" when none."""
        ref = self.dynamic.with_plan(self.resolver.by_msisdn(subscriber))
        return ref.plan if ref is not None and ref.tenant == tenant else ""

    def resolve_ids(self, ids: tuple[SubscriptionId, ...]) -> SubscriberRef | None:
        """The subscriber a request's Subscription-Ids name (the first known one), remembered
        until the dynamic directory changes."""
        if self._resolved_version != self.dynamic.version:
            self._resolved.clear()
            self._resolved_version = self.dynamic.version
        try:
            return self._resolved[ids]
        except KeyError:
            pass
        pairs = [(int(s.type), s.data) for s in ids]
        ref = self.dynamic.with_plan(
            self.resolver.resolve_any(pairs) or self.dynamic.resolve_any(pairs)
        )
        if len(self._resolved) >= RESOLVED_ENTRIES_MAX:
            self._resolved.clear()
        self._resolved[ids] = ref
        return ref

    def by_msisdn(self, number: str) -> SubscriberRef | None:
        """A caller's number: the catalog's answer, else the dynamic directory's."""
        return self.dynamic.with_plan(
            self.resolver.by_msisdn(number) or self.dynamic.by_msisdn(number)
        )


class TenantDirectory:
    """The current catalog snapshot plus each tenant's ledger (on that tenant's ACL user)."""

    def __init__(
        self,
        catalog: Catalog,
        ledger_factory: LedgerFactory,
        dynamic: DynamicDirectory | None = None,
    ) -> None:
        self.dynamic = DynamicDirectory() if dynamic is None else dynamic
        self.snapshot = CatalogSnapshot(catalog, self.dynamic)
        self._ledger_factory = ledger_factory
        self._ledgers: dict[str, Ledger] = {}

    def replace_catalog(self, catalog: Catalog) -> None:
        self.snapshot = CatalogSnapshot(catalog, self.dynamic)
        for tenant, ledger in self._ledgers.items():
            self._apply_settings(tenant, ledger)

    async def ledger(self, tenant: str) -> Ledger:
        """The tenant's ledger; the first call per tenant provisions its ACL user."""
        ledger = self._ledgers.get(tenant)
        if ledger is None:
            ledger = await self._ledger_factory(tenant)
            self._apply_settings(tenant, ledger)
            self._ledgers[tenant] = ledger
        return ledger

    def _apply_settings(self, tenant: str, ledger: Ledger) -> None:
        """The catalog's per-tenant ledger settings (today the idempotency window)."""
        profile = self.snapshot.tenants.get(tenant)
        ledger.use_idempotency_window(profile.idempotency_ttl_s if profile else None)

    def cost(self, tenant: str, micros: int) -> CostInformation:
        return CostInformation(
            money_micros=micros, currency_code=self.snapshot.currency_codes[tenant]
        )

    @property
    def tenant_ids(self) -> list[str]:
        return sorted(self.snapshot.tenants)
