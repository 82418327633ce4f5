"""Usage store benchmark: ``UsageStore.store_batch`` against a plain binary COPY of the same rows
into an unlogged twin table (the ceiling), measured in the same run; then ``ocs usage export`` of
the stored records (records/s and the exporting process's peak RSS) in each format.

store_batch does what the exporter needs: ensure the tenant and month partition, binary COPY
into a staging table, INSERT ... ON CONFLICT DO NOTHING into the partitioned, indexed, logged,
row-level-secured table, as the writer role, in one transaction. The ceiling does only the
COPY, of the same Python tuples, into an unlogged table with no index. Rounds alternate the two;
the figures are medians. Row generation is outside the timed sections.

    .venv/bin/python -m benchmarks.bench_store [--records 100000] [--batch 5000] [--rounds 3]
    .venv/bin/python -m benchmarks.bench_store --ten-million      # 10 M records stored, exported
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from ocs.embedded_postgres import EmbeddedPostgres, find_pg_bin_dir
from usage import migrate
from usage import sql as q
from usage.row import UsageRow
from usage.store import UsageStore, copy_values_by_month

TENANTS = ("bench-a", "bench-b", "bench-c", "bench-d")
EXPORT_TENANT = "bench-x"
START_S = 1_764_547_200.0  # 2025-12-01T00:00:00Z: every row in one month
RESULTS = Path(__file__).with_name("results") / "store.json"
TWIN = "usage_copy_twin"
TWIN_INDEXED = "usage_copy_twin_indexed"


def make_rows(first: int, count: int, tenants: tuple[str, ...]) -> list[UsageRow]:
    """Rows shaped like a data session's usage record (strings of realistic length)."""
    rows = []
    for n in range(first, first + count):
        tenant = tenants[n % len(tenants)]
        ended = START_S + n * 0.01
        rows.append(
            UsageRow(
                tenant=tenant,
                vshard=n % 1024,
                entry_id=f"{int(ended * 1000)}-{n % 7}",
                kind="usage",
                source="gy",
                op_id=f"pgw1.example.net;{n // 4};{n % 4}",
                session_id=f"pgw1.example.net;{n // 4}",
                host_mno="host-mno",
                subscriber=f"33612{n % 1_000_000:06d}",
                msisdn=f"33612{n % 1_000_000:06d}",
                imsi=f"20801{n % 1_000_000:010d}",
                service="data",
                rating_group=10 + n % 3,
                started_at_s=ended - 300.0,
                ended_at_s=ended,
                units=1_048_576 + n % 4096,
                unit="bytes",
                retail=2_000 + n % 100,
                wholesale=800 + n % 50,
                currency="EUR",
                leakage_money=n % 5,
                money_delta=-(2_000 + n % 100),
                balance_after=10_000_000 - n,
                visited_plmn="20801",
                apn="internet",
                charging_id=str(3_000_000_000 + n),
                rate_card_version="2025-12",
                rate_row="data/home",
                buckets='[{"bucket":"b1","units":1048576}]',
                legs='[{"leg":"data/home","units":1048576,"retail":2000,"wholesale":800}]',
            )
        )
    return rows


def batches(
    first: int, total: int, size: int, tenants: tuple[str, ...]
) -> Iterator[list[UsageRow]]:
    for start in range(first, first + total, size):
        yield make_rows(start, min(size, first + total - start), tenants)


async def plain_copy(conn: psycopg.AsyncConnection[Any], rows: list[UsageRow], table: str) -> None:
    """The same Python work as store_batch's (tuples with the times converted), one COPY."""
    async with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(q.BATCH_TYPES)
        for values in copy_values_by_month(rows).values():
            for value in values:
                await copy.write_row(value)


async def measure_ingest(url: str, records: int, batch: int, rounds: int) -> dict[str, Any]:
    store = await UsageStore.open(url, pool_max=2)
    twin = await psycopg.AsyncConnection.connect(url, autocommit=True)
    columns = ", ".join(f"{name} {kind}" for name, kind in q.BATCH_COLUMNS)
    await twin.execute(f"CREATE UNLOGGED TABLE {TWIN} ({columns})")
    # A second reference: logged, with the same three indexes, but no staging, partitioning,
    # row-level security or conflict handling: what idempotency costs on top of the table.
    await twin.execute(f"CREATE TABLE {TWIN_INDEXED} ({columns})")
    for index in (
        "UNIQUE INDEX ON {} (tenant, ended_at, vshard, entry_id)",
        "INDEX ON {} (tenant, msisdn, ended_at)",
        "INDEX ON {} (tenant, op_id)",
    ):
        await twin.execute("CREATE " + index.format(TWIN_INDEXED))
    # Warm up (tenant roles, the month's partition, the pool), not counted.
    await store.store_batch(make_rows(10**9, 100, TENANTS))
    ours: list[float] = []
    ceiling: list[float] = []
    indexed: list[float] = []
    first = 0
    try:
        for _ in range(rounds):
            elapsed = 0.0
            stored = 0
            for rows in batches(first, records, batch, TENANTS):
                t0 = time.perf_counter()
                stored += await store.store_batch(rows)
                elapsed += time.perf_counter() - t0
            assert stored == records, f"stored {stored} of {records}"
            ours.append(records / elapsed)
            for table, rates in ((TWIN, ceiling), (TWIN_INDEXED, indexed)):
                elapsed = 0.0
                for rows in batches(first, records, batch, TENANTS):
                    t0 = time.perf_counter()
                    async with twin.transaction():
                        await plain_copy(twin, rows, table)
                    elapsed += time.perf_counter() - t0
                rates.append(records / elapsed)
            first += records
            print(
                f"  round: store_batch {ours[-1]:,.0f} rows/s, plain COPY {ceiling[-1]:,.0f},"
                f" COPY into the indexed logged twin {indexed[-1]:,.0f}"
            )
        # What a stored record costs on disk: heap, TOAST and the three indexes.
        size = await (
            await twin.execute(
                "SELECT sum(pg_total_relation_size(name::regclass)) FROM usage_partitions"
            )
        ).fetchone()
        count = await (await twin.execute("SELECT count(*) FROM usage_records")).fetchone()
        bytes_per_row = int(size[0]) / int(count[0]) if size and count and count[0] else 0.0
    finally:
        await twin.execute(f"DROP TABLE {TWIN}, {TWIN_INDEXED}")
        await twin.close()
        await store.close()
    return {
        "records_per_round": records,
        "batch_rows": batch,
        "rounds": rounds,
        "store_batch_rows_per_s": [round(x) for x in ours],
        "plain_copy_rows_per_s": [round(x) for x in ceiling],
        "store_batch_median_rows_per_s": round(statistics.median(ours)),
        "plain_copy_median_rows_per_s": round(statistics.median(ceiling)),
        "ratio": round(statistics.median(ours) / statistics.median(ceiling), 3),
        "indexed_twin_copy_rows_per_s": [round(x) for x in indexed],
        "indexed_twin_copy_median_rows_per_s": round(statistics.median(indexed)),
        "ratio_to_indexed_twin": round(statistics.median(ours) / statistics.median(indexed), 3),
        "stored_bytes_per_row": round(bytes_per_row),
    }


async def load_export_tenant(url: str, records: int, batch: int) -> float:
    store = await UsageStore.open(url, pool_max=2)
    t0 = time.perf_counter()
    try:
        for rows in batches(0, records, batch, (EXPORT_TENANT,)):
            await store.store_batch(rows)
    finally:
        await store.close()
    return records / (time.perf_counter() - t0)


def run_export(url: str, fmt: str, out_dir: Path, records: int) -> dict[str, Any]:
    """One ``ocs usage export`` process; wall time and its peak RSS (ru_maxrss, KiB)."""
    out = out_dir / f"export.{fmt}"
    command = [
        sys.executable, "-m", "ocs.cli", "usage", "export", "--store-url", url,
        "--tenant", EXPORT_TENANT, "--from", "2025-12-01", "--to", "2026-01-01",
        "--format", fmt, "--out", str(out),
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"export {fmt} exited {proc.returncode}")
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert manifest["record_count"] == records, manifest["record_count"]
    result = {
        "format": fmt,
        "records": records,
        "seconds": round(elapsed, 2),
        "records_per_s": round(records / elapsed),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "file_mib": round(out.stat().st_size / 2**20, 1),
    }
    out.unlink()
    print(f"  export {fmt}: {result}")
    return result


def machine_facts() -> dict[str, Any]:
    version = subprocess.run(
        [str(find_pg_bin_dir() / "postgres"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "postgres": version,
        "load_average_at_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="rows per ingest round")
    parser.add_argument("--batch", type=int, default=5_000, help="rows per store_batch call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--export-records", type=int, default=200_000, help="records of the exported tenant"
    )
    parser.add_argument("--formats", default="csv,jsonl,parquet")
    parser.add_argument(
        "--ten-million", action="store_true", help="export 10,000,000 records (and store them)"
    )
    parser.add_argument("--no-fsync", action="store_true", help="fsync=off (not production)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.ten_million:
        args.export_records = 10_000_000
    base = Path(tempfile.mkdtemp(prefix="ocs-bench-pg-"))
    os.chmod(base, 0o755)
    server = EmbeddedPostgres(base / "pg", fsync=not args.no_fsync)
    try:
        url = server.start()
        migrate.apply(url)
        facts = machine_facts()
        print(f"ingest: {args.rounds} rounds of {args.records:,} rows in batches of {args.batch}")
        ingest = asyncio.run(measure_ingest(url, args.records, args.batch, args.rounds))
        print(f"loading {args.export_records:,} records of {EXPORT_TENANT}")
        load_rate = asyncio.run(load_export_tenant(url, args.export_records, args.batch))
        exports = [
            run_export(url, fmt, base, args.export_records) for fmt in args.formats.split(",")
        ]
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    result = {
        "benchmark": "store",
        "fsync": not args.no_fsync,
        "ingest": ingest,
        "export_tenant_load_rows_per_s": round(load_rate),
        "exports": exports,
        "target": "store_batch >= 30,000 rows/s and >= 0.5 of plain COPY",
        "machine": facts,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("ingest", "exports")}, indent=2))


if __name__ == "__main__":
    main()
