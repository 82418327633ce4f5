"""What the charging test harnesses share: the demo catalog, a clock the test moves, and a way
to read a subscriber's ledger records."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from balance import keys
from balance.ledger import Ledger
from balance.records import LedgerRecord
from balance.streams import RecordReader
from ocs.catalog_install import install_catalog
from ocs.charging.directory import TenantDirectory
from tariffs.loader import load_catalog

DEMO_CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog"
# Tuesday 2026-11-17 10:00:00 Europe/Berlin (acme's peak band until 19:00), epoch seconds.
TUESDAY_10_BERLIN = 1_794_906_000

_groups = itertools.count(1)


@dataclass
class Clock:
    now: float = TUESDAY_10_BERLIN

    def __call__(self) -> float:
        return self.now


async def ledger_records(
    client: Any, tenant: str, subscriber: str, kind: str = "usage"
) -> list[LedgerRecord]:
    """Every record of ``kind`` for ``subscriber``, oldest first (read by a fresh group)."""
    reader = RecordReader(client, tenant, f"test-{next(_groups)}", "t")
    found = await reader.read(keys.vshard(subscriber), count=1000)
    return [r.record for r in found if r.record.subscriber == subscriber and r.record.kind == kind]


async def demo_directory(client: Any, now: float) -> TenantDirectory:
    """The demo catalog installed (as of an hour before ``now``) on ``client``'s Redis, with
    ledgers on that admin connection."""
    catalog = load_catalog(DEMO_CATALOG)
    ledgers: dict[str, Ledger] = {}

    async def ledger_for(tenant: str) -> Ledger:
        if tenant not in ledgers:
            ledgers[tenant] = Ledger(client, tenant)
        return ledgers[tenant]

    await install_catalog(catalog, ledger_for, now=int(now) - 3600)
    return TenantDirectory(catalog, ledger_for)
