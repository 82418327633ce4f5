"""Export files: CSV, JSONL and Parquet of one tenant's period, their manifests, their errors."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ocs.cli import main
from tests.usage.rows import DEC_02, MAR_05, NOV_15, make_row, make_rows
from usage import export as export_module
from usage.export import ExportError, export
from usage.sql import EXPORT_COLUMNS
from usage.store import UnknownTenant, UsageStore

DEC_1 = datetime(2025, 12, 1, tzinfo=UTC)
APR_1 = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[UsageStore]:
    store = await UsageStore.open(store_url, pool_max=2)
    rows = [
        *make_rows("alpha", 5, ended_at_s=NOV_15),
        *make_rows("alpha", 7, first=10, ended_at_s=DEC_02, plan="data10"),
        *make_rows("alpha", 4, first=20, ended_at_s=MAR_05),
        make_row("alpha", 30, ended_at_s=MAR_05 + 5, currency="USD", retail=77),
        *make_rows("beta", 9, first=10, ended_at_s=DEC_02),
    ]
    await store.store_batch(rows)
    yield store
    await store.close()


def _entry_ids(records: list[dict[str, object]]) -> list[object]:
    return [r["entry_id"] for r in records]


async def _check_manifest(store: UsageStore, out: Path, fmt: str) -> dict[str, object]:
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert manifest["tenant"] == "alpha"
    assert manifest["file"]["format"] == fmt
    assert manifest["file"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert manifest["file"]["bytes"] == out.stat().st_size
    truth = await store.count_and_totals("alpha", DEC_1, APR_1)
    assert manifest["record_count"] == truth.count == 12
    assert manifest["totals"]["retail"] == truth.retail
    assert manifest["totals"]["wholesale"] == truth.wholesale
    assert manifest["totals"]["leakage_money"] == truth.leakage_money
    assert manifest["currency"] is None  # EUR and one USD record
    assert manifest["totals_by_currency"]["USD"]["retail"] == 77
    assert manifest["earliest_record"]["entry_id"] == make_row("alpha", 10).entry_id
    assert manifest["latest_record"]["entry_id"] == make_row("alpha", 30).entry_id
    assert manifest["period"] == {"from": DEC_1.isoformat(), "to": APR_1.isoformat()}
    return manifest


async def test_csv_export(store: UsageStore, tmp_path: Path) -> None:
    out = tmp_path / "alpha.csv"
    result = await export(store, "alpha", DEC_1, APR_1, "csv", out)
    with out.open(newline="") as text:
        records = list(csv.DictReader(text))
    assert list(records[0]) == list(EXPORT_COLUMNS)
    assert {r["tenant"] for r in records} == {"alpha"}
    assert len(records) == 12
    assert records[0]["ended_at"] == "2025-12-02T08:00:00.010000Z"
    assert records[0]["started_at"] == "2025-12-02T07:59:00.000000Z"
    assert records[0]["msisdn"] == make_row("alpha", 10).msisdn
    assert (records[0]["plan"], records[-1]["plan"]) == ("data10", "")
    assert await _check_manifest(store, out, "csv") == result.manifest


async def test_jsonl_export(store: UsageStore, tmp_path: Path) -> None:
    out = tmp_path / "alpha.jsonl"
    await export(store, "alpha", DEC_1, APR_1, "jsonl", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12 and {r["tenant"] for r in records} == {"alpha"}
    assert records[-1]["retail"] == 77 and isinstance(records[-1]["units"], int)
    assert (records[0]["plan"], records[-1]["plan"]) == ("data10", "")
    assert _entry_ids(records) == sorted(_entry_ids(records))  # oldest first
    await _check_manifest(store, out, "jsonl")


async def test_parquet_export_in_row_groups(
    store: UsageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_module, "PARQUET_ROW_GROUP_ROWS", 5)
    monkeypatch.setattr(export_module, "PARQUET_READ_BLOCK_BYTES", 1024)
    out = tmp_path / "alpha.parquet"
    await export(store, "alpha", DEC_1, APR_1, "parquet", out)
    meta = pq.ParquetFile(out).metadata
    # Small CSV blocks gather into row groups of at least 5 rows.
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert len(groups) >= 2 and sum(groups) == 12 and min(groups[:-1]) >= 5
    table = pq.read_table(out)
    assert table.column_names == list(EXPORT_COLUMNS)
    assert set(table.column("tenant").to_pylist()) == {"alpha"}
    assert table.schema.field("ended_at").type.tz == "UTC"
    first = table.slice(0, 1).to_pylist()[0]
    assert first["ended_at"] == datetime.fromtimestamp(DEC_02 + 0.010, UTC)
    assert first["msisdn"] == make_row("alpha", 10).msisdn and first["reason"] == ""
    assert table.column("plan").to_pylist()[:7] == ["data10"] * 7
    assert table.column("plan").to_pylist()[7:] == [""] * 5
    assert (
        sum(table.column("retail").to_pylist())
        == (await store.count_and_totals("alpha", DEC_1, APR_1)).retail
    )
    await _check_manifest(store, out, "parquet")


async def test_an_empty_period_gives_an_empty_file_and_manifest(
    store: UsageStore, tmp_path: Path
) -> None:
    out = tmp_path / "none.csv"
    start = datetime(2030, 1, 1, tzinfo=UTC)
    result = await export(store, "alpha", start, None, "csv", out)
    assert result.manifest["record_count"] == 0
    assert result.manifest["earliest_record"] is None
    assert out.read_text().strip() == ",".join(EXPORT_COLUMNS)


async def test_export_errors_leave_no_file(store: UsageStore, tmp_path: Path) -> None:
    with pytest.raises(UnknownTenant):
        await export(store, "nobody", None, None, "csv", tmp_path / "x.csv")
    with pytest.raises(ExportError, match="cannot write"):
        await export(store, "alpha", None, None, "csv", tmp_path / "no" / "x.csv")
    with pytest.raises(ExportError, match="format"):
        await export(store, "alpha", None, None, "xml", tmp_path / "x.xml")
    assert list(tmp_path.iterdir()) == []


def test_export_command(
    store_url: str, store: UsageStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "beta.jsonl"
    base = ["usage", "export", "--store-url", store_url, "--tenant", "beta"]
    args = [*base, "--from", "2025-12-01", "--to", "2026-01-01", "--format", "jsonl"]
    assert main([*args, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"9 records -> {out} (sha256 ")
    assert len(out.read_text().splitlines()) == 9
    assert main([*args, "--out", str(tmp_path / "missing" / "f")]) == 2
    assert "--out: directory" in capsys.readouterr().err
    assert main([*base, "--from", "yesterday", "--to", "2026-01-01", "--out", str(out)]) == 2
    assert "--from: 'yesterday' is not a date" in capsys.readouterr().err
    assert main([*base, "--from", "2026-01-01", "--to", "2025-01-01", "--out", str(out)]) == 2
    assert "is not after" in capsys.readouterr().err
    nobody = ["usage", "export", "--store-url", store_url, "--tenant", "nobody"]
    assert main([*nobody, "--from", "2025-01-01", "--to", "2026-01-01", "--out", str(out)]) == 1
    assert "unknown tenant 'nobody'" in capsys.readouterr().err
