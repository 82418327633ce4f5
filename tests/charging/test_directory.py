"""Subscriber resolution at ingestion: remembered per catalog snapshot, never across reloads."""

from __future__ import annotations

import msgspec

from diameter_apps.credit_control import SubscriptionId, SubscriptionIdType
from ocs.charging.directory import TenantDirectory
from tariffs.loader import load_catalog
from tests.support.charging import DEMO_CATALOG


async def _no_ledger(tenant: str) -> object:
    raise AssertionError("resolution needs no ledger")


def _ids(msisdn: str) -> tuple[SubscriptionId, ...]:
    return (
        SubscriptionId(SubscriptionIdType.IMSI, "001010000000000"),
        SubscriptionId(SubscriptionIdType.E164, msisdn),
    )


def test_resolution_is_remembered_per_snapshot_and_forgotten_on_reload() -> None:
    catalog = load_catalog(DEMO_CATALOG)
    directory = TenantDirectory(catalog, _no_ledger)  # type: ignore[arg-type]
    ids = _ids("+49 170 99000042")
    first = directory.snapshot.resolve_ids(ids)
    assert first is not None and first.tenant == "acme"
    assert first == directory.snapshot.resolver.resolve_any((int(s.type), s.data) for s in ids)
    assert directory.snapshot.resolve_ids(ids) is first  # remembered
    unknown = _ids("4917099999999")
    assert directory.snapshot.resolve_ids(unknown) is None  # unknown, remembered as such

    # A reload without acme's ranges: the same identities no longer resolve.
    without_acme = msgspec.structs.replace(
        catalog, tenants=tuple(t for t in catalog.tenants if t.id != "acme")
    )
    directory.replace_catalog(without_acme)
    assert directory.snapshot.resolve_ids(ids) is None
