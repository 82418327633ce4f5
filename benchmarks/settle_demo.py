"""The demo month of docs/settlement.md: a January of usage for the demo MVNOs acme and globex
on the demo host MNO telco-de, stored in the usage store, and the MNO's invoice and detail
files with a few discrepancies of every class.

Run (with the store up: ``ocs store start`` or ``make run``)::

    .venv/bin/python -m benchmarks.settle_demo [--store-url URL] [--out var/settle-demo]

Then follow docs/settlement.md. The usage would normally come from ``ocs export`` (the ledger's
records of real traffic); here it is generated so that the month has known discrepancies.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from benchmarks.settle_data import TenantSpec, generate, load_usage
from ocs.config import ConfigError
from ocs.embedded_postgres import StoreSetupError
from ocs.store_runtime import store_url
from settlement.catalog import load_settlement_catalog
from tariffs.loader import load_catalog
from usage.store import UsageStore

MONTH = "2026-01"
# the demo catalog's subscriber ranges (examples/catalog/acme.yaml, globex.yaml)
TENANTS = [
    TenantSpec("acme", 262019900000000, 4917099000000, 100, ("telco-de",)),
    TenantSpec("globex", 262019910000000, 4917199000000, 100, ("telco-de",)),
]


async def _roles(url: str) -> None:
    store = await UsageStore.open(url, pool_max=1)
    try:
        for spec in TENANTS:
            await store.ensure_tenant(spec.id)
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store-url", default=None)
    parser.add_argument("--data-dir", default="var/pg", help="the embedded store's directory")
    parser.add_argument("--catalog", default="examples/catalog")
    parser.add_argument("--out", type=Path, default=Path("var/settle-demo"))
    parser.add_argument("--records", type=int, default=6000)
    args = parser.parse_args(argv)
    from ocs.config import StoreConfig

    try:
        url = store_url(StoreConfig(data_dir=args.data_dir), args.store_url)
    except (ConfigError, StoreSetupError) as exc:
        print(exc, file=sys.stderr)
        return 2
    catalog = load_settlement_catalog(args.catalog, load_catalog(args.catalog))
    mnos = {m.id: m for m in catalog.mnos if m.id == "telco-de"}
    month = generate(args.out, MONTH, TENANTS, mnos, args.records, rate=0.004, cells_each=1)
    asyncio.run(_roles(url))
    load_usage(url, month)
    print(f"stored {month.records:,} usage records of {MONTH} (acme, globex on telco-de)")
    print(f"the MNO's invoice: {month.invoice_files['telco-de']}")
    print(f"the MNO's detail:  {month.detail_files['telco-de']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
