"""Who the simulated traffic belongs to: subscribers drawn from the catalog, across tenants, and
the numbers they roam in and call."""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgspec

from tariffs.errors import CatalogError
from tariffs.loader import load_catalog
from tariffs.model import Catalog

SUBSCRIBERS_PER_TENANT_CAP = 100_000  # a range of millions is sampled, not expanded
# Visited networks for roaming sessions: EU (France, Spain) and world (USA).
ROAMING_PLMNS = ("20801", "21407", "310260")
HOME_PLMN = "26201"
DOMESTIC_PREFIXES = ("4915", "4916", "4917", "4930")
INTERNATIONAL_PREFIXES = ("4420", "3314", "3491", "1212")


class SimSubscriber(msgspec.Struct, frozen=True, array_like=True, gc=False):
    tenant: str
    msisdn: str  # the ledger's subscriber id
    imsi: str | None


class PopulationError(ValueError):
    """The catalog offers no subscribers to simulate; the message says why."""


def _range(first: str, last: str, limit: int) -> list[str]:
    start, stop = int(first), int(last)
    count = min(stop - start + 1, limit)
    return [str(start + i).zfill(len(first)) for i in range(count)]


def subscribers_of(
    catalog: Catalog, tenants: Sequence[str] = (), per_tenant_max: int = 0
) -> list[SimSubscriber]:
    """Every (or the first ``per_tenant_max``) subscriber of each chosen tenant."""
    limit = per_tenant_max or SUBSCRIBERS_PER_TENANT_CAP
    known = {t.id for t in catalog.tenants}
    unknown = sorted(set(tenants) - known)
    if unknown:
        raise PopulationError(f"tenants not in the catalog: {', '.join(unknown)}")
    out: list[SimSubscriber] = []
    for tenant in catalog.tenants:
        if tenants and tenant.id not in tenants:
            continue
        chosen: list[SimSubscriber] = []
        for entry in tenant.entries:
            chosen.append(SimSubscriber(tenant.id, entry.msisdn, entry.imsi))
        for rng in tenant.ranges:
            if len(chosen) >= limit:
                break
            room = limit - len(chosen)
            msisdns = _range(rng.msisdn_first, rng.msisdn_last, room)
            imsis = _range(rng.imsi_first, rng.imsi_last, room)
            chosen.extend(
                SimSubscriber(tenant.id, m, i) for m, i in zip(msisdns, imsis, strict=False)
            )
        out.extend(chosen[:limit])
    if not out:
        raise PopulationError("the catalog has no subscribers for the chosen tenants")
    return out


def load_population(
    path: str, tenants: Sequence[str] = (), per_tenant_max: int = 0
) -> list[SimSubscriber]:
    try:
        catalog = load_catalog(path)
    except CatalogError as exc:
        raise PopulationError(f"catalog {path}: {exc}") from None
    return subscribers_of(catalog, tenants, per_tenant_max)


def called_number(rng: random.Random, international: bool) -> str:
    prefixes = INTERNATIONAL_PREFIXES if international else DOMESTIC_PREFIXES
    return rng.choice(prefixes) + "".join(rng.choices("0123456789", k=8))


def visited_plmn(rng: random.Random, roaming: bool) -> str:
    return rng.choice(ROAMING_PLMNS) if roaming else HOME_PLMN
