"""The identity in PostgreSQL for generated months: the SQL attributes every micro-unit of any
invoice and detail, and each tenant's allocation is exactly the sum of its records."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settlement.catalog import load_settlement_catalog
from settlement.invoice import Invoice, InvoiceLine
from tariffs.loader import load_catalog
from tests.settlement.usage_rows import usage
from usage.settle_store import SettlementStore
from usage.store import UsageStore

BERLIN = ZoneInfo("Europe/Berlin")
TENANTS = load_catalog("examples/catalog")
MNO = load_settlement_catalog("examples/catalog", TENANTS).mno("telco-de")
# a fresh past month per example (a period settles records stored before its cutoff: now),
# never adjacent to another (no "late records" between examples)
_months = itertools.count(0)

records = st.lists(
    st.tuples(
        st.sampled_from(("acme", "globex")),
        st.integers(0, 3),  # subscriber
        st.sampled_from(("data", "voice", "sms")),
        st.integers(1, 3),  # day
        st.integers(0, 86_399),  # second of the day
        st.integers(1, 5000),  # quantity
        st.integers(0, 10**7),  # wholesale
        st.booleans(),  # roaming
    ),
    max_size=25,
)
cells = st.dictionaries(
    st.tuples(st.integers(1, 3), st.sampled_from(("data", "voice", "sms")),
              st.sampled_from(("home", "eu"))),
    st.tuples(st.integers(0, 10_000), st.integers(-(10**6), 10**8)),
    max_size=6,
)  # fmt: skip
detail = st.lists(
    st.tuples(
        st.sampled_from(("262019900000001", "262019910000002", "999990000000001")),
        st.sampled_from(("voice", "sms")),
        st.integers(1, 3),
        st.integers(0, 86_399),
        st.integers(0, 5000),
        st.integers(0, 10**7),
    ),
    max_size=10,
)


def _money(micro: int) -> str:
    whole, frac = divmod(micro, 1_000_000)
    return f"{whole}.{frac:06d}"


@pytest.mark.timeout(900)
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records, cells, detail, st.booleans(), st.booleans())
def test_sql_attributes_every_micro_unit(
    store_url: str,
    tmp_path: Path,
    ours_raw: list[tuple[str, int, str, int, int, int, int, bool]],
    extra: dict[tuple[int, str, str], tuple[int, int]],
    theirs_raw: list[tuple[str, str, int, int, int, int]],
    copy_ours: bool,
    with_detail: bool,
) -> None:
    assert MNO is not None
    index = next(_months)
    year, mon = 2010 + index // 6, 1 + 2 * (index % 6)
    month = f"{year:04d}-{mon:02d}"

    def at(day: int, second: int) -> float:
        return datetime(year, mon, day, tzinfo=BERLIN).timestamp() + second

    rows = [
        usage(t, sub, svc, at(day, sec), qty, amt, visited_plmn="20801" if roam else "")
        for t, sub, svc, day, sec, qty, amt, roam in ours_raw
    ]
    invoice_cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    if copy_ours:  # start from our own figures, so that most cells agree
        for r in rows:
            day = datetime.fromtimestamp(r.started_at_s, BERLIN).date().isoformat()
            slot = invoice_cells[(day, r.service, "eu" if r.visited_plmn else "home")]
            slot[0] += r.units
            slot[1] += r.wholesale
    for (day, svc, zone), (qty, amt) in extra.items():
        invoice_cells[(f"{month}-{day:02d}", svc, zone)] = [qty, amt]
    invoice = Invoice(
        "inv.csv",
        tuple(
            InvoiceLine(i + 2, d, s, z, q, a)
            for i, ((d, s, z), (q, a)) in enumerate(sorted(invoice_cells.items()))
        ),
    )
    path = tmp_path / f"detail-{index}.csv"
    with path.open("w") as out:
        out.write("record_id,imsi,service,zone,started_at,quantity,unit,amount,currency\n")
        for i, (imsi, svc, day, sec, qty, amt) in enumerate(theirs_raw):
            stamp = datetime.fromtimestamp(at(day, sec), BERLIN).isoformat()
            unit = "second" if svc == "voice" else "event"
            out.write(f"R{i},{imsi},{svc},home,{stamp},{qty},{unit},{_money(amt)},EUR\n")
    covered = {svc for _i, svc, *_ in theirs_raw} if with_detail else set()

    async def run() -> None:
        store = await UsageStore.open(store_url, pool_max=1)
        settle = await SettlementStore.open(store_url)
        try:
            if rows:
                await store.store_batch(rows)
            await settle.open_period(MNO, month, "prop", 1.0)
            await settle.import_invoice(MNO, month, invoice, "prop", 2.0)
            if with_detail and theirs_raw:
                await settle.import_detail(MNO, month, path, "prop", 3.0)
            result = await settle.reconcile(MNO, month, TENANTS, "prop", 4.0)
        finally:
            await settle.close()
            await store.close()
        ident = result.identity
        assert ident.balanced, ident.describe()
        assert ident.invoice_total == invoice.total
        # allocation is exactly the sum of each tenant's records, found independently here
        expected: dict[str, int] = defaultdict(int)
        for r in rows:
            expected[r.tenant] += r.wholesale
        assert ident.allocated == {t: a for t, a in expected.items()}
        # and the record-level differences are exactly their detail minus our records
        if covered:
            record_delta = sum(total for _o, lvl, _k, _ov, _n, total in result.summary
                               if lvl == "record")  # fmt: skip
            theirs_total = sum(amt for _i, _s, _d, _t, _q, amt in theirs_raw)
            ours_total = sum(r.wholesale for r in rows if r.service in covered)
            assert record_delta == theirs_total - ours_total

    asyncio.run(run())
