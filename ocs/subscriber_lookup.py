"""Which account a command-line subscriber argument names, checked against the stored catalog.

The ledger keys an account by (tenant, canonical MSISDN). An operator types an MSISDN, an IMSI
or ``+49…``, with or without ``--tenant``; this module turns that into the ledger's key the way
Diameter and SIP ingestion would (``tariffs.subscribers.Resolver``), and refuses what could never
work: an unknown tenant, a number owned by another tenant, or (for ``create``) a number no
catalog range or entry covers, whose account no request could ever reach.
"""

from __future__ import annotations

import msgspec

from tariffs.model import Catalog, Tenant
from tariffs.subscribers import Resolver, SubscriberRef


class LookupRefused(ValueError):
    """The subscriber argument cannot name a usable account; the message says why."""


class Target(msgspec.Struct, frozen=True):
    tenant: str
    subscriber: str  # the ledger's key: canonical MSISDN when the catalog knows the number
    tenant_info: Tenant | None  # None: the tenant is not (or no longer) in the catalog
    imsi: str | None = None
    in_catalog: bool = False  # a catalog range or entry covers the number

    @property
    def held(self) -> bool:
        """Created or SIM-swapped, it waits for the host MNO (catalog ``provisioning_hold``)."""
        return self.tenant_info is not None and self.tenant_info.provisioning_hold


def _known(catalog: Catalog) -> str:
    return ", ".join(sorted(t.id for t in catalog.tenants)) or "none"


def resolve(catalog: Catalog | None, number: str) -> SubscriberRef | None:
    """The subscriber an MSISDN, ``+…`` number or IMSI names in ``catalog``, or None."""
    if catalog is None:
        return None
    resolver = Resolver(catalog)
    return resolver.by_msisdn(number) or resolver.by_imsi(number)


def find_target(
    catalog: Catalog | None,
    tenant: str | None,
    number: str,
    *,
    require_tenant: bool = False,
    require_number: bool = False,
) -> Target:
    """``require_tenant``: the tenant must be in the catalog (creating or crediting an account
    of a tenant nobody serves is refused); ``require_number``: a catalog range or entry of the
    tenant must cover the number (``create``)."""
    if catalog is None and (tenant is None or require_tenant or require_number):
        raise LookupRefused(
            "no catalog is stored in Redis: run `ocs catalog load PATH` first"
            + ("" if tenant is not None else " (or give --tenant)")
        )
    ref = resolve(catalog, number)
    if tenant is None:
        if ref is None:
            raise LookupRefused(
                f"{number!r} is in no tenant's subscriber ranges or entries; give --tenant"
            )
        tenant = ref.tenant
    info = catalog.tenant(tenant) if catalog is not None else None
    if info is None and require_tenant:
        assert catalog is not None
        raise LookupRefused(f"unknown tenant {tenant!r} (the catalog has: {_known(catalog)})")
    if ref is not None and ref.tenant != tenant:
        raise LookupRefused(f"{number!r} belongs to tenant {ref.tenant!r}, not {tenant!r}")
    if ref is None and require_number:
        raise LookupRefused(
            f"no subscriber range or entry of tenant {tenant!r} covers {number!r}: Diameter and "
            "SIP requests could never reach this account. Add the number to the tenant's "
            "catalog (subscribers.entries or a range) and run `ocs catalog load`, which creates "
            "the account"
        )
    if ref is None:
        return Target(tenant, number, info)
    return Target(tenant, ref.subscriber_id, info, imsi=ref.imsi, in_catalog=True)
