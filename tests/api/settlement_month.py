"""A settled demo month for the API tests: usage of acme and globex on the demo host MNO, the
MNO's invoice, and ``ocs settle`` run as an operator would (open, import-invoice, reconcile,
dispute raise, statement), so the API reads statements the real flow issued."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ocs.cli import main
from tests.settlement.conftest import at
from tests.settlement.usage_rows import usage
from usage.store import UsageStore

MNO = "telco-de"
MONTH = "2026-01"
# globex's amounts are odd figures that cannot appear in acme's statement by chance.
ROWS = [
    usage("acme", 1, "voice", at(3), 120, 24_000),
    usage("acme", 2, "data", at(4), 10 * 1048576, 20_000),
    usage("globex", 1, "voice", at(3), 300, 61_357),
    usage("globex", 2, "sms", at(5), 1, 13_579),
]
GLOBEX_FIGURES = ("0.061357", "61,357", "61357", "0.013579", "13579")
INVOICE = (
    "day,service,zone,quantity,unit,amount,currency\n"
    "2026-01-03,voice,home,420,second,0.085357,EUR\n"
    "2026-01-04,data,home,10485760,byte,0.02,EUR\n"
    "2026-01-05,sms,home,1,event,0.013579,EUR\n"
    "2026-01-09,sms,world,3,event,0.15,EUR\n"  # nobody's: unallocated, disputed
)


async def settle_month(store_url: str, tmp_path: Path, *issue_for: str) -> None:
    """Store the usage, reconcile the month and issue the statements of ``issue_for``."""
    async with await UsageStore.open(store_url, pool_max=1) as store:
        assert await store.store_batch(ROWS) == len(ROWS)
    tmp_path.mkdir(parents=True, exist_ok=True)
    invoice = tmp_path / "invoice.csv"
    invoice.write_text(INVOICE)
    common = ["--store-url", store_url, "--actor", "ops"]
    steps = [
        ["open", MNO, MONTH],
        ["import-invoice", MNO, MONTH, str(invoice)],
        ["reconcile", MNO, MONTH],
        ["dispute", "raise", MNO, MONTH],
        *(["statement", t, MONTH, "--out", str(tmp_path / "issued")] for t in issue_for),
    ]
    for step in steps:
        code = await asyncio.to_thread(main, ["settle", *step, *common])
        assert code == 0, step
