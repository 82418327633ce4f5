"""Importing files: idempotency (same file, overlapping file, beyond the ledger's memory),
leakage instead of refusal, each reject reason, rate-only."""

from __future__ import annotations

import csv
from pathlib import Path

from balance import keys
from tests.xdr.conftest import ACME_1, ACME_2, GLOBEX_1, MIB, OPENING, Xdr, line

DAY = "2026-11-17"


def rejects(path: str | None) -> list[dict[str, str]]:
    assert path is not None
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def sample(xdr: Xdr, name: str, ids: range) -> Path:
    return xdr.write(
        name,
        *(
            line(f"r{i}", "MOC", f"{DAY} 1{i % 10}:00:00", str(60 + i), called="+4915112345678")
            for i in ids
        ),
    )


async def test_same_file_twice_is_recognised_by_its_manifest(xdr: Xdr) -> None:
    path = sample(xdr, "f1.csv", range(10))
    first = await xdr.run(path)
    assert first.tenants["acme"].charged == 10 and not first.already_imported
    balance = (await xdr.account("acme", ACME_1)).balance
    assert balance == OPENING - first.tenants["acme"].retail
    again = await xdr.run(path)
    assert again.already_imported
    assert (again.tenants["acme"].charged, again.tenants["acme"].duplicate) == (0, 10)
    assert (await xdr.account("acme", ACME_1)).balance == balance
    assert len(await xdr.usage("acme")) == 10


async def test_same_file_without_its_manifest_changes_nothing(xdr: Xdr) -> None:
    path = sample(xdr, "f1.csv", range(10))
    first = await xdr.run(path)
    for manifest in (xdr.tmp / "state" / "manifests").iterdir():
        manifest.unlink()
    again = await xdr.run(path)
    assert not again.already_imported
    assert (again.tenants["acme"].charged, again.tenants["acme"].duplicate) == (0, 10)
    assert again.tenants["acme"].retail == 0
    account = await xdr.account("acme", ACME_1)
    assert account.balance == OPENING - first.tenants["acme"].retail
    assert len(await xdr.usage("acme")) == 10


async def test_overlapping_file_charges_only_the_new_records(xdr: Xdr) -> None:
    await xdr.run(sample(xdr, "f1.csv", range(0, 10)))
    second = await xdr.run(sample(xdr, "f2.csv", range(5, 15)))
    assert (second.tenants["acme"].charged, second.tenants["acme"].duplicate) == (5, 5)
    records = await xdr.usage("acme")
    assert sorted(r.op_id for r in records) == sorted(f"xdr:telco_de:r{i}" for i in range(15))
    # the first file's line stays on the records both files hold
    refs = {r.op_id: r.context.source_ref for r in records if r.context is not None}
    assert refs["xdr:telco_de:r7"] == "f1.csv:9" and refs["xdr:telco_de:r12"] == "f2.csv:9"
    account = await xdr.account("acme", ACME_1)
    assert account.balance == OPENING - sum(r.retail for r in records)


async def test_beyond_the_ledger_ttl_the_store_says_what_was_imported(xdr: Xdr) -> None:
    await xdr.run(sample(xdr, "f1.csv", range(4)))
    # The ledger forgot the op ids (TTL passed); the usage store still has them.
    for key in await xdr.client.keys("*:op:xdr:*"):
        await xdr.client.delete(key)
    stored = {f"xdr:telco_de:r{i}" for i in range(4)}
    asked: list[tuple[str, int]] = []

    async def already_stored(tenant: str, op_ids: list[str]) -> set[str]:
        asked.append((tenant, len(op_ids)))
        return stored & set(op_ids)

    from usage.xdr.importer import FileImport, ImportOptions

    importer = FileImport(
        sample(xdr, "f2.csv", range(6)),
        xdr.mapping,
        xdr.rater,
        ImportOptions(mno="telco_de"),
        ledger_for=xdr.ledger,
        manifests=None,
        now=xdr.clock,
        already_stored=already_stored,  # type: ignore[arg-type]
    )
    result = await importer.run()
    assert asked == [("acme", 6)]
    assert (result.tenants["acme"].charged, result.tenants["acme"].duplicate) == (2, 4)
    assert len(await xdr.usage("acme")) == 6


async def test_usage_beyond_the_balance_is_leakage_never_refused(xdr: Xdr) -> None:
    # World roaming data at 5.00 EUR/MiB; 10.00 EUR pays 2 MiB of the 3 MiB used.
    path = xdr.write(
        "roam.csv", line("x1", "GPRS", f"{DAY} 10:00:00", str(3 * MIB), vplmn="310260")
    )
    result = await xdr.run(path)
    totals = result.tenants["acme"]
    assert (totals.charged, totals.retail, totals.leakage) == (1, OPENING, 5_000_000)
    (record,) = await xdr.usage("acme")
    assert (record.units, record.leakage_units, record.leakage_money) == (3 * MIB, MIB, 5_000_000)
    assert record.wholesale == 5_400_000  # the host MNO is owed all of it
    assert (await xdr.account("acme", ACME_1)).balance == 0


async def test_blocked_account_is_charged_all_the_same(xdr: Xdr) -> None:
    ledger = await xdr.ledger("acme")
    await ledger.block(ACME_2, now_s=xdr.clock.now)
    result = await xdr.run(
        xdr.write("b.csv", line("b1", "SMS-MO", f"{DAY} 10:00:00", "1", msisdn=ACME_2))
    )
    assert result.tenants["acme"].charged == 1
    assert (await xdr.account("acme", ACME_2)).balance == OPENING - 90_000


async def test_each_reject_reason(xdr: Xdr) -> None:
    path = xdr.write(
        "bad.csv",
        line("ok-1", "SMS-MO", f"{DAY} 10:00:00", "1"),
        "this line has no fields",  # 3: unparseable (too few fields)
        line("bad-time", "SMS-MO", "17/11/2026 10:00", "1"),  # 4: unparseable time
        line("who", "SMS-MO", f"{DAY} 10:00:00", "1", msisdn="+4400000001"),  # 5: unknown
        line("fax", "FAX", f"{DAY} 10:00:00", "1"),  # 6: unknown service
        line("early", "SMS-MO", "2025-06-01 10:00:00", "1"),  # 7: before any rate card
        line("neg", "MOC", f"{DAY} 10:00:00", "-5"),  # 8: negative quantity
        line("ok-1", "SMS-MO", f"{DAY} 10:05:00", "1"),  # 9: duplicate id in the file
        line("ok-2", "SMS-MO", f"{DAY} 10:06:00", "1"),
        line("dial", "MOC", f"{DAY} 10:00:00", "5", called="call me"),  # 11: bad number
    )
    result = await xdr.run(path)
    found = rejects(result.rejects_path)
    assert result.rejects_path == f"{path}.rejects.csv"
    assert [(r["line"], r["reason"]) for r in found] == [
        ("3", "unparseable"),
        ("4", "unparseable"),
        ("5", "unknown_subscriber"),
        ("6", "unknown_service"),
        ("7", "no_rate"),
        ("8", "negative_quantity"),
        ("9", "duplicate_id"),
        ("11", "unparseable"),
    ]
    assert "no rate card of acme is in effect" in found[4]["detail"]
    assert found[2]["record"] == line("who", "SMS-MO", f"{DAY} 10:00:00", "1", msisdn="+4400000001")
    assert result.rejected == 8
    assert result.tenants["acme"].charged == 2  # the import went on past every bad line
    assert len(await xdr.usage("acme")) == 2


async def test_unknown_account_and_reused_id_are_rejected_by_the_ledger(xdr: Xdr) -> None:
    ledger = await xdr.ledger("acme")
    gone = "4917099000099"
    prefix = keys.subscriber_prefix("acme", gone)
    await xdr.client.delete(keys.account_key(prefix, gone))
    await xdr.run(xdr.write("a.csv", line("same", "SMS-MO", f"{DAY} 10:00:00", "1")))
    result = await xdr.run(
        xdr.write(
            "b.csv",
            line("lost", "SMS-MO", f"{DAY} 10:00:00", "1", msisdn=gone),
            line("same", "SMS-MO", f"{DAY} 10:00:00", "2"),  # the id again, other content
        )
    )
    assert [(r["line"], r["reason"]) for r in rejects(result.rejects_path)] == [
        ("2", "unknown_account"),
        ("3", "duplicate_id"),
    ]
    assert ledger is not None


async def test_rate_only_prices_without_touching_balances(xdr: Xdr) -> None:
    path = xdr.write(
        "r.csv",
        line("q1", "MOC", f"{DAY} 18:59:00", "150", called="+4915112345678"),
        line("q2", "SMS-MO", f"{DAY} 10:00:00", "1", msisdn=GLOBEX_1),
        line("q3", "SMS-MO", f"{DAY} 10:00:00", "-1", msisdn=GLOBEX_1),
    )
    result = await xdr.run(path, rate_only=True)
    assert (result.tenants["acme"].rated, result.tenants["acme"].retail) == (1, 165_000)
    assert (result.tenants["globex"].rated, result.tenants["globex"].retail) == (1, 110_000)
    assert result.rejected == 1 and result.rejects_path is not None
    assert await xdr.usage("acme") == [] and not (xdr.tmp / "state").exists()
    assert (await xdr.account("acme", ACME_1)).balance == OPENING
    dry = await xdr.run(
        xdr.write("d.csv", line("q3", "SMS-MO", f"{DAY} 10:00:00", "-1")), dry_run=True
    )
    assert dry.rejected == 1 and dry.rejects_path is None


async def test_missing_header_column_rejects_the_file(xdr: Xdr) -> None:
    path = xdr.write("h.csv", "1;2;3", header="id;imsi;x\n")
    result = await xdr.run(path)
    assert (
        result.layout_error is not None and "header has no column 'cdr_id'" in result.layout_error
    )
    assert result.rejected == 1
    assert not (xdr.tmp / "state").exists()  # no manifest: the file was not imported


def test_id_set_grows_then_stops_at_its_bound() -> None:
    from usage.xdr.importer import IdSet

    ids = IdSet(capacity=8, slots_max=64)
    assert all(ids.add(f"id{i}") for i in range(32))
    assert not ids.add("id5") and not ids.add("id31")
    assert ids.full
    assert ids.add("id-new") and ids.add("id-new")  # not remembered once full
    assert not ids.add("id0")  # still known


async def test_duplicate_beyond_the_id_set_is_caught_by_the_ledger(xdr: Xdr) -> None:
    from usage.xdr.importer import FileImport, IdSet, ImportOptions

    path = xdr.write(
        "d.csv",
        line("same", "SMS-MO", f"{DAY} 10:00:00", "1"),
        line("same", "SMS-MO", f"{DAY} 10:00:00", "1"),  # identical: a replay
        line("same", "SMS-MO", f"{DAY} 10:05:00", "2"),  # other content: refused
    )
    importer = FileImport(
        path, xdr.mapping, xdr.rater, ImportOptions(mno="telco_de", batch_size=1),
        ledger_for=xdr.ledger, manifests=None, now=xdr.clock,
    )  # fmt: skip
    importer.ids = IdSet(capacity=2, slots_max=2)
    importer.ids.full = True
    result = await importer.run()
    totals = result.tenants["acme"]
    assert (totals.charged, totals.duplicate, totals.rejected) == (1, 1, 1)
    assert [r["reason"] for r in rejects(result.rejects_path)] == ["duplicate_id"]
    assert (await xdr.account("acme", ACME_1)).balance == OPENING - 90_000


async def test_file_with_rejects_imports_again_once_fixed(xdr: Xdr) -> None:
    ledger = await xdr.ledger("acme")
    path = xdr.write(
        "fix.csv",
        line("ok", "SMS-MO", f"{DAY} 10:00:00", "1"),
        line("late", "SMS-MO", f"{DAY} 10:00:00", "1", msisdn=ACME_2),
    )
    prefix = keys.subscriber_prefix("acme", ACME_2)
    raw = await xdr.client.get(keys.account_key(prefix, ACME_2))
    await xdr.client.delete(keys.account_key(prefix, ACME_2))  # not installed yet
    first = await xdr.run(path)
    assert (first.tenants["acme"].charged, first.rejected) == (1, 1)
    await xdr.client.set(keys.account_key(prefix, ACME_2), raw)  # installed now
    again = await xdr.run(path)
    assert not again.already_imported
    totals = again.tenants["acme"]
    assert (totals.charged, totals.duplicate, totals.rejected) == (1, 1, 0)
    assert (await ledger.query(ACME_2)).balance == OPENING - 90_000
    assert (await xdr.run(path)).already_imported  # clean now: recorded


async def test_tenant_option_rejects_other_tenants_records(xdr: Xdr) -> None:
    from usage.xdr.rate import XdrRater

    xdr.rater = XdrRater(xdr.rater.catalog, tenant="globex")
    path = xdr.write(
        "t.csv",
        line("g1", "SMS-MO", f"{DAY} 10:00:00", "1", msisdn=GLOBEX_1),
        line("a1", "SMS-MO", f"{DAY} 10:00:00", "1"),
    )
    result = await xdr.run(path)
    assert result.tenants["globex"].charged == 1
    assert [(r["line"], r["reason"]) for r in rejects(result.rejects_path)] == [
        ("3", "unknown_subscriber")
    ]
    assert "belongs to acme, not globex" in rejects(result.rejects_path)[0]["detail"]
    assert (await xdr.account("acme", ACME_1)).balance == OPENING


def test_id_set_add_many_answers_as_add_one_at_a_time() -> None:
    import random

    from usage.xdr.importer import IdSet

    rng = random.Random(3)
    for _ in range(200):
        capacity = 2 ** rng.randrange(1, 5)
        slots_max = capacity * 2 ** rng.randrange(0, 4)
        one, many = IdSet(capacity, slots_max), IdSet(capacity, slots_max)
        for _ in range(rng.randrange(1, 6)):
            ids = [f"k{rng.randrange(60)}" for _ in range(rng.randrange(0, 40))]
            assert many.add_many(ids).tolist() == [one.add(key) for key in ids]
            assert many.full == one.full
