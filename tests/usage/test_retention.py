"""Retention: the plan (pure) and the prune against a real store, with an injected "now"."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.usage.rows import DEC_02, MAR_05, NOV_15, make_rows
from usage.prune import prune
from usage.retention import Mode, Partition, cutoff, plan_prune
from usage.store import UsageStore


def _month(year: int, month: int) -> Partition:
    lo = datetime(year, month, 1, tzinfo=UTC)
    hi = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return Partition(f"usage_records_{year}{month:02d}", lo, hi)


def test_cutoff_keeps_the_current_month_and_n_whole_months_before() -> None:
    assert cutoff(datetime(2026, 12, 6, tzinfo=UTC), 12) == datetime(2025, 12, 1, tzinfo=UTC)
    assert cutoff(datetime(2026, 1, 15, tzinfo=UTC), 1) == datetime(2025, 12, 1, tzinfo=UTC)
    assert cutoff(datetime(2026, 3, 1, tzinfo=UTC), 14) == datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        cutoff(datetime(2026, 3, 1), 1)
    with pytest.raises(ValueError):
        cutoff(datetime(2026, 3, 1, tzinfo=UTC), 0)


def test_plan_drops_only_what_every_tenant_is_past() -> None:
    parts = [_month(2025, m) for m in range(1, 13)] + [_month(2026, m) for m in (1, 2, 3)]
    now = datetime(2026, 3, 10, tzinfo=UTC)
    # default 6 months (keeps from 2025-09), short 2 (from 2026-01), long 12 (from 2025-03)
    plan = plan_prune(parts, {"short": 2, "long": 12}, 6, now)
    by_month = {a.partition.name[-6:]: a for a in plan}
    assert {m for m, a in by_month.items() if a.mode is Mode.DROP} == {"202501", "202502"}
    for month in ("202503", "202504", "202505", "202506", "202507", "202508"):
        assert by_month[month].mode is Mode.DELETE_EXCEPT
        assert by_month[month].tenants == ("long",)
    for month in ("202509", "202510", "202511", "202512"):
        assert by_month[month].mode is Mode.DELETE_ONLY
        assert by_month[month].tenants == ("short",)
    assert not {"202601", "202602", "202603"} & set(by_month)
    # Nothing is ever planned for the current month.
    assert plan_prune(parts, {"x": 1}, 1, now)[-1].partition.name == "usage_records_202601"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[UsageStore]:
    store = await UsageStore.open(store_url, pool_max=2)
    rows = []
    for tenant, first in (("alpha", 0), ("beta", 1000)):
        for i, when in enumerate((NOV_15, DEC_02, MAR_05)):
            rows += make_rows(tenant, 3, first=first + 10 * i, ended_at_s=when)
    await store.store_batch(rows)
    await store.set_retention("alpha", 1)
    yield store
    await store.close()


async def _count(store: UsageStore, tenant: str) -> int:
    return (await store.count_and_totals(tenant)).count


def _read_archive(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as text:
        return list(csv.DictReader(text))


async def test_prune_deletes_one_tenants_old_rows_and_archives_them(
    store: UsageStore, tmp_path: Path
) -> None:
    now = datetime(2026, 3, 10, tzinfo=UTC)  # alpha keeps 2026-02 on; beta (12) everything
    dry = await prune(store, default_months=12, now=now, dry_run=True)
    assert [(r.action.split(" (")[0], r.rows) for r in dry] == [
        ("delete from usage_records_202511", 3),
        ("delete from usage_records_202512", 3),
    ]
    assert await _count(store, "alpha") == 9  # a dry run changes nothing

    done = await prune(store, default_months=12, now=now, archive_dir=tmp_path)
    assert [r.rows for r in done] == [3, 3]
    assert await _count(store, "alpha") == 3
    assert await _count(store, "beta") == 9
    for result in done:
        assert result.archive is not None
        archived = _read_archive(Path(result.archive))
        assert len(archived) == 3 and {r["tenant"] for r in archived} == {"alpha"}
        manifest = json.loads(Path(result.archive + ".manifest.json").read_text())
        assert manifest["record_count"] == 3 and manifest["tenants"] == ["alpha"]
        digest = hashlib.sha256(Path(result.archive).read_bytes()).hexdigest()
        assert manifest["sha256"] == digest
    # Run again: nothing left to do for alpha in those months.
    assert [r.rows for r in await prune(store, default_months=12, now=now)] == [0, 0]


async def test_prune_drops_partitions_past_every_tenants_retention(
    store: UsageStore, store_url: str, tmp_path: Path
) -> None:
    # Default 3 months keeps 2026-03 on; alpha (1 month) keeps only 2026-05 on.
    now = datetime(2026, 6, 10, tzinfo=UTC)
    done = await prune(store, default_months=3, now=now, archive_dir=tmp_path)
    assert [r.rows for r in done] == [6, 6, 3]
    assert [r.action.split(" ")[0] for r in done] == ["archived", "archived", "delete"]
    assert all(r.archive and r.archive.endswith(".csv.gz") for r in done)
    with psycopg.connect(store_url) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM usage_partitions ORDER BY 1")]
        assert names == ["usage_records_202603"]
        leftovers = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'usage_pruning%'"
        )
        assert leftovers.fetchone() == (0,)
    archived = _read_archive(tmp_path / "usage_202511.csv.gz")
    assert sorted({r["tenant"] for r in archived}) == ["alpha", "beta"]
    assert await _count(store, "alpha") == 0 and await _count(store, "beta") == 3


async def test_an_interrupted_archive_is_finished_by_the_next_run(
    store: UsageStore, store_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(store_url, autocommit=True) as conn:  # as a crash would leave it
        conn.execute("ALTER TABLE usage_records DETACH PARTITION usage_records_202511")
        conn.execute("ALTER TABLE usage_records_202511 RENAME TO usage_pruning_202511")
    now = datetime(2026, 3, 10, tzinfo=UTC)
    first = await prune(store, default_months=24, now=now)
    assert first[0].skipped and "--archive" in first[0].skipped
    second = await prune(store, default_months=24, now=now, archive_dir=tmp_path)
    assert second[0].rows == 6 and second[0].archive == str(tmp_path / "usage_202511.csv.gz")
    with psycopg.connect(store_url) as conn:
        gone = conn.execute("SELECT to_regclass('usage_pruning_202511')").fetchone()
        assert gone == (None,)
