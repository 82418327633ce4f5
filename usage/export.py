"""Export files for billing systems: one tenant's records of a period as CSV, JSONL or Parquet,
with a manifest modelled on TAP3's AuditControlInfo.

Everything is read as the tenant's own database role, in one REPEATABLE READ snapshot: the file
can hold nothing of another tenant, and the manifest's figures describe exactly the file even
while the exporter keeps inserting. Streaming, bounded memory whatever the period holds:

- CSV: the server formats it (``COPY (SELECT ...) TO STDOUT (FORMAT csv)``); blocks go straight
  to the file.
- JSONL: one ``row_to_json`` text per record through a server-side cursor, in chunks.
- Parquet: the CSV stream goes to a temporary file, which pyarrow's streaming CSV reader turns
  into row groups of ``PARQUET_ROW_GROUP_ROWS`` (typed: int64 money, UTC timestamps).

Times are ISO 8601 UTC with microseconds (``2025-12-02T08:00:00.010000Z``) in every format; money
is integer micro-units of ``currency``. The data file is written under a temporary name and
renamed when complete; the manifest (``<out>.manifest.json``) is written last, so its presence
says the file is whole. TAP3 names of its figures: record_count ~ callEventDetailsCount,
earliest/latest record ~ earliestCallTimeStamp / latestCallTimeStamp, totals.retail ~
totalCharge, plus the wholesale cost and leakage the settlement needs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from psycopg import AsyncConnection

from usage import sql as q
from usage.sql import EXPORT_COLUMNS
from usage.store import TIME_MAX, TIME_MIN, UsageStore, check_tenant

FORMATS = ("csv", "jsonl", "parquet")
MANIFEST_VERSION = 1
PARQUET_ROW_GROUP_ROWS = 100_000
PARQUET_READ_BLOCK_BYTES = 8 << 20
JSONL_CHUNK_ROWS = 5_000
HASH_BLOCK_BYTES = 1 << 20
MONEY_FIELDS = ("retail", "wholesale", "leakage_money", "money_delta")
_TIME_COLUMNS = frozenset({"started_at", "ended_at", "stored_at"})
_INT16 = frozenset({"role_of_node"})
_INT32 = frozenset({"vshard"})
_INT64 = frozenset(
    {"rating_group", "units", "bucket_units", "retail", "wholesale", "leakage_units"}
    | {"leakage_money", "money_delta", "balance_after"}
)


class ExportError(ValueError):
    """The export cannot be written (bad format, unwritable path); the message says which."""


class ExportResult(msgspec.Struct, frozen=True):
    path: Path
    manifest_path: Path
    manifest: dict[str, Any]


async def _write_csv(conn: AsyncConnection[Any], params: dict[str, Any], path: Path) -> None:
    with path.open("wb") as out:
        async with conn.cursor() as cur, cur.copy(q.EXPORT_CSV_COPY, params) as copy:
            async for block in copy:
                out.write(block)


async def _write_jsonl(conn: AsyncConnection[Any], params: dict[str, Any], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        async with conn.cursor(name="usage_export_jsonl") as cur:
            await cur.execute(q.EXPORT_JSON_LINES, params)
            while chunk := await cur.fetchmany(JSONL_CHUNK_ROWS):
                out.write("\n".join(line for (line,) in chunk))
                out.write("\n")


def _parquet_schema() -> Any:
    import pyarrow as pa  # late: slow to import, parquet only

    def kind(name: str) -> Any:
        if name in _TIME_COLUMNS:
            return pa.timestamp("us", tz="UTC")
        if name in _INT16:
            return pa.int16()
        if name in _INT32:
            return pa.int32()
        if name in _INT64:
            return pa.int64()
        return pa.string()

    return pa.schema([pa.field(name, kind(name)) for name in EXPORT_COLUMNS])


def _csv_to_parquet(csv_path: Path, path: Path) -> None:
    import pyarrow as pa  # late: slow to import, parquet only
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    reader = pacsv.open_csv(
        str(csv_path),
        read_options=pacsv.ReadOptions(block_size=PARQUET_READ_BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(
            column_types=schema,
            strings_can_be_null=False,  # an empty text column is "", only times may be null
            timestamp_parsers=["%Y-%m-%dT%H:%M:%S.%fZ", pacsv.ISO8601],
        ),
    )
    pending: list[Any] = []
    rows = 0
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            if rows >= PARQUET_ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending, schema), rows)
                pending, rows = [], 0
        if rows:
            writer.write_table(pa.Table.from_batches(pending, schema), rows)


async def _write_parquet(conn: AsyncConnection[Any], params: dict[str, Any], path: Path) -> None:
    staged = path.with_name(path.name + ".csv")
    try:
        await _write_csv(conn, params, staged)
        _csv_to_parquet(staged, path)
    finally:
        staged.unlink(missing_ok=True)


_WRITERS = {"csv": _write_csv, "jsonl": _write_jsonl, "parquet": _write_parquet}


async def _audit(conn: AsyncConnection[Any], params: dict[str, Any]) -> dict[str, Any]:
    """The manifest's figures, by SQL in the file's snapshot."""
    by_currency: dict[str, dict[str, int]] = {}
    count = 0
    for currency, n, *money in await (await conn.execute(q.EXPORT_TOTALS, params)).fetchall():
        count += n
        by_currency[currency] = {
            name: int(value) for name, value in zip(MONEY_FIELDS, money, strict=True)
        }
    totals = {name: sum(c[name] for c in by_currency.values()) for name in MONEY_FIELDS}
    points = []
    for query in (q.EXPORT_FIRST, q.EXPORT_LAST):
        row = await (await conn.execute(query, params)).fetchone()
        keys = ("ended_at", "vshard", "entry_id")
        points.append(None if row is None else dict(zip(keys, row, strict=True)))
    return {
        "record_count": count,
        # One currency per file, as TAP3's localCurrency; null (see totals_by_currency) if the
        # tenant's records carry several.
        "currency": next(iter(by_currency)) if len(by_currency) == 1 else None,
        "totals": totals,
        "totals_by_currency": by_currency,
        "earliest_record": points[0],
        "latest_record": points[1],
    }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while block := data.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    text = io.StringIO()
    json.dump(data, text, indent=2)
    text.write("\n")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(text.getvalue())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


async def export(
    store: UsageStore,
    tenant: str,
    start: datetime | None,
    end: datetime | None,
    fmt: str,
    out: Path,
    *,
    now: datetime | None = None,
) -> ExportResult:
    """Write the tenant's records with ``start <= ended_at < end`` to ``out`` in ``fmt``, then
    ``<out>.manifest.json``. Raises ``UnknownTenant`` (nothing written) for an unknown tenant,
    ``ExportError`` when the file cannot be written."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    for bound, what in ((start, "start"), (end, "end")):
        if bound is not None and bound.tzinfo is None:
            raise ExportError(f"{what}: a time zone is required")
    params = {
        "tenant": check_tenant(tenant),
        "start": start or TIME_MIN,
        "end": end or TIME_MAX,
    }
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.touch()
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from exc
    try:
        async with store.as_tenant(tenant, snapshot=True) as conn:
            # One COPY of a long period outlasts [store] statement_timeout_s: the period bounds it.
            await conn.execute(q.NO_STATEMENT_TIMEOUT)
            await _WRITERS[fmt](conn, params, tmp)
            figures = await _audit(conn, params)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    manifest_path = out.with_name(out.name + ".manifest.json")
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "tenant": tenant,
        "period": {
            "from": start.astimezone(UTC).isoformat() if start else None,
            "to": end.astimezone(UTC).isoformat() if end else None,
        },
        "file": {
            "name": out.name,
            "format": fmt,
            "bytes": out.stat().st_size,
            "sha256": sha256_of(out),
        },
        **figures,
        "money_unit": "integer micro-units (1e-6) of the currency",
        "columns": list(EXPORT_COLUMNS),
        "created_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
    }
    _write_json(manifest_path, manifest)
    return ExportResult(out, manifest_path, manifest)
