"""Record-level detail: loaded by COPY and checked line by line; matched in SQL exactly as the
pure reference (settlement.matching) matches the same records."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from settlement.errors import InputFileError
from settlement.invoice import Invoice, InvoiceLine
from settlement.matching import OurRecord, TheirRecord, match_records
from settlement.model import HostMno, SettlementCatalog
from settlement.reconcile import UNALLOCATED
from tariffs.model import Catalog
from tariffs.subscribers import Resolver
from tests.settlement.conftest import BERLIN, at
from tests.settlement.usage_rows import usage
from usage.row import UsageRow
from usage.settle_store import SettlementStore
from usage.store import UsageStore

MONTH = "2026-01"
HEADER = "record_id,imsi,service,zone,started_at,quantity,unit,amount,currency\n"
UNITS = {"data": "byte", "voice": "second", "sms": "event"}


@pytest.fixture
def mno(wholesale: SettlementCatalog) -> HostMno:
    found = wholesale.mno("telco-de")
    assert found is not None
    return found


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, BERLIN).isoformat()


def _money(micro: int) -> str:
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"


def scenario(seed: int) -> tuple[list[UsageRow], list[tuple[str, str, str, int, int, int]]]:
    """Our rows, and the MNO's records (imsi, service, zone, start, quantity, amount): most
    equal to ours, some shifted within the window, some changed, some missing, some extra."""
    rnd = random.Random(seed)
    ours: list[UsageRow] = []
    theirs: list[tuple[str, str, str, int, int, int]] = []
    for _ in range(120):
        tenant = rnd.choice(("acme", "globex"))
        sub = rnd.randrange(0, 6)
        service = rnd.choice(("voice", "sms", "data"))
        start = int(at(rnd.randrange(1, 29), rnd.randrange(0, 24), rnd.randrange(0, 3)))
        qty = {"voice": rnd.randrange(1, 600), "sms": 1, "data": rnd.randrange(1, 10**7)}[service]
        amount = qty * 200 if service != "sms" else 10_000
        row = usage(tenant, sub, service, float(start), qty, amount)
        fate = rnd.random()
        if fate < 0.6:
            theirs.append((row.imsi, service, "home", start, qty, amount))
        elif fate < 0.7:
            theirs.append((row.imsi, service, "home", start + rnd.randrange(-5, 6), qty, amount))
        elif fate < 0.78:
            theirs.append((row.imsi, service, "home", start, qty * 3 + 100, amount * 3 + 1))
        elif fate < 0.85:
            theirs.append((row.imsi, service, "home", start, qty, amount + 5_000))
        elif fate < 0.92:
            pass  # missing theirs
        else:
            theirs.append((row.imsi, service, "home", start, qty, amount))
            theirs.append((row.imsi, service, "home", start + 2, qty, amount))  # a double
        ours.append(row)
    for _ in range(6):  # missing ours: an IMSI of ours, and nobody's
        imsi = rnd.choice(("262019900000003", "262019910000001", "262011234500000"))
        theirs.append((imsi, "sms", "home", int(at(rnd.randrange(1, 29))), 1, 10_000))
    return ours, theirs


def detail_csv(path: Path, theirs: list[tuple[str, str, str, int, int, int]]) -> None:
    with path.open("w") as out:
        out.write(HEADER)
        for i, (imsi, service, zone, start, qty, amount) in enumerate(theirs):
            out.write(
                f"R{i},{imsi},{service},{zone},{_iso(start)},{qty},{UNITS[service]},"
                f"{_money(amount)},EUR\n"
            )


@pytest.mark.parametrize("seed", [1, 2])
async def test_sql_matching_equals_the_reference(
    seed: int, tmp_path: Path, usage_store: UsageStore, settle_store: SettlementStore,
    mno: HostMno, tenants: Catalog,
) -> None:  # fmt: skip
    ours, theirs = scenario(seed)
    await usage_store.store_batch(ours)
    path = tmp_path / "detail.csv"
    detail_csv(path, theirs)
    await settle_store.open_period(mno, MONTH, "ops", 1.0)
    await settle_store.import_invoice(mno, MONTH, Invoice("inv.csv", ()), "ops", 2.0)
    assert await settle_store.import_detail(mno, MONTH, path, "ops", 3.0) == len(theirs)
    result = await settle_store.reconcile(mno, MONTH, tenants, "ops", 4.0)
    assert result.identity.balanced, result.identity.describe()
    _period, _summary, rows = await settle_store.exceptions(
        mno.id, MONTH, every=True, limit=100_000
    )
    got = Counter(
        (kind, owner, oq, tq, oa, ta)
        for _id, level, kind, owner, _d, _s, _z, oq, tq, oa, ta, *_rest in rows
        if level == "record"
    )
    # the reference, with our ids in the order of the records' identity text (as the SQL)
    refs = sorted(f"{r.tenant}:{r.vshard}:{r.entry_id}" for r in ours)
    rank = {ref: i for i, ref in enumerate(refs)}
    mine = [
        OurRecord(rank[f"{r.tenant}:{r.vshard}:{r.entry_id}"], r.tenant, r.imsi, r.service,
                  int(r.started_at_s), r.units, r.wholesale)
        for r in ours
    ]  # fmt: skip
    their_records = [
        TheirRecord(i + 2, imsi, svc, start, qty, amt)
        for i, (imsi, svc, _z, start, qty, amt) in enumerate(theirs)
    ]
    index = Resolver(tenants)

    def owner(imsi: str) -> str:
        found = index.by_imsi(imsi)
        return found.tenant if found is not None else UNALLOCATED

    by_id = {r.id: r for r in mine}
    by_their = {r.id: r for r in their_records}
    expected: Counter[tuple[str, str, int, int, int, int]] = Counter()
    for res in match_records(mine, their_records, mno.matching.start_s, mno.tolerances, owner):
        o = by_id.get(res.our_id) if res.our_id is not None else None
        t = by_their.get(res.their_id) if res.their_id is not None else None
        oq, oa = (o.quantity, o.amount) if o else (0, 0)
        tq, ta = (t.quantity, t.amount) if t else (0, 0)
        if o and t and oq == tq and oa == ta:
            continue  # an exact pair is no discrepancy
        expected[(res.kind.value, res.owner, oq, tq, oa, ta)] += 1
    assert got == expected
    kinds = {k for k, *_ in got}
    assert {"missing_ours", "missing_theirs", "quantity_mismatch", "price_mismatch"} <= kinds


async def test_a_bad_detail_file_is_refused_line_by_line(
    tmp_path: Path, settle_store: SettlementStore, mno: HostMno
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        HEADER
        + "R1,262019900000001,voice,home,2026-01-03T10:00:00+01:00,60,second,0.012,EUR\n"
        + "R2,12ab,voice,home,2026-01-03T10:00:00+01:00,60,second,0.012,EUR\n"
        + "R3,262019900000001,fax,home,2026-01-03T10:00:00+01:00,60,second,0.012,EUR\n"
        + "R4,262019900000001,voice,home,yesterday,60,second,0.012,EUR\n"
        + "R5,262019900000001,voice,home,2026-01-03T10:00:00+01:00,60,byte,0.0000001,USD\n"
        + "R1,262019900000001,voice,mars,2026-01-03T10:00:00+01:00,-1,second,0.012,EUR\n"
    )
    await settle_store.open_period(mno, MONTH, "ops", 1.0)
    await settle_store.import_invoice(mno, MONTH, Invoice("i.csv", ()), "ops", 2.0)
    with pytest.raises(InputFileError) as caught:
        await settle_store.import_detail(mno, MONTH, path, "ops", 3.0)
    where = [f"{p.line}:{p.field}" for p in caught.value.problems]
    assert where == [
        "3:imsi",
        "4:service",
        "5:started_at",
        "6:amount",
        "6:currency",
        "6:unit",
        "7:quantity",
        "7:record_id",
        "7:zone",
    ]
    assert str(caught.value.problems[0]).startswith(f"{path}:3: imsi: '12ab' is not an IMSI")
    period = await settle_store.period(mno.id, MONTH)
    assert period.detail_services == ()  # nothing loaded
    short = tmp_path / "short.csv"
    short.write_text(HEADER + "R1,262019900000001,voice\n")
    with pytest.raises(InputFileError, match=":2: "):
        await settle_store.import_detail(mno, MONTH, short, "ops", 3.0)
    with pytest.raises(InputFileError, match=r":1: \(header\)"):
        (tmp_path / "h.csv").write_text("a,b\n")
        await settle_store.import_detail(mno, MONTH, tmp_path / "h.csv", "ops", 3.0)


async def test_detail_rows_name_an_existing_period(
    tmp_path: Path, store_url: str, settle_store: SettlementStore, mno: HostMno
) -> None:
    """The detail table's check on its period (one per statement, not per row) refuses what
    the foreign key refused, and a deleted period takes its detail with it."""
    path = tmp_path / "detail.csv"
    path.write_text(
        HEADER + "R1,262019900000001,voice,home,2026-01-03T10:00:00+01:00,60,second,0.012,EUR\n"
    )
    period = await settle_store.open_period(mno, MONTH, "ops", 1.0)
    await settle_store.import_invoice(mno, MONTH, Invoice("i.csv", ()), "ops", 2.0)
    assert await settle_store.import_detail(mno, MONTH, path, "ops", 3.0) == 1
    with psycopg.connect(store_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="no settlement period"):
            conn.execute(
                "INSERT INTO settlement_detail_records SELECT %s, line + 1, record_ref, imsi, "
                "service, zone, started_at, t, day, quantity, amount "
                "FROM settlement_detail_records WHERE period_id = %s",
                (period.id + 1000, period.id),
            )
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="no settlement period"):
            conn.execute(
                "UPDATE settlement_detail_records SET period_id = %s WHERE period_id = %s",
                (period.id + 1000, period.id),
            )
        conn.execute("DELETE FROM settlement_periods WHERE id = %s", (period.id,))
        left = conn.execute("SELECT count(*) FROM settlement_detail_records").fetchone()
        assert left == (0,)


def test_invoice_line_helper() -> None:
    assert InvoiceLine(2, "2026-01-01", "sms", "home", 1, 1).line == 2
