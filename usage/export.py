"""Export files for billing systems: one tenant's records of a period as CSV, JSONL or Parquet,
with a manifest modelled on TAP3's AuditControlInfo.

Streaming: records come from the store in chunks through a server-side cursor run as the
tenant's own role (``UsageStore.iter_export``), are written and forgotten; Parquet is written one
row group at a time. Memory is bounded by a chunk / row group whatever the period holds.

The data file is written under a temporary name and renamed when complete; the manifest
(``<out>.manifest.json``) is written last, so its presence says the file is whole. TAP3 names of
the manifest's figures: record_count ~ callEventDetailsCount, earliest/latest record ~
earliestCallTimeStamp / latestCallTimeStamp, totals ~ totalCharge (retail), plus the wholesale
cost and leakage the settlement needs; money is integer micro-units of ``currency``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec

from usage.sql import EXPORT_COLUMNS
from usage.store import UsageStore

FORMATS = ("csv", "jsonl", "parquet")
MANIFEST_VERSION = 1
PARQUET_ROW_GROUP_ROWS = 50_000
HASH_BLOCK_BYTES = 1 << 20
MONEY_FIELDS = ("retail", "wholesale", "leakage_money", "money_delta")
_COL = {name: i for i, name in enumerate(EXPORT_COLUMNS)}
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


class _Writer(Protocol):
    def write(self, rows: Sequence[tuple[Any, ...]]) -> None: ...
    def close(self) -> None: ...


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


class _CsvWriter:
    def __init__(self, path: Path) -> None:
        self._file = path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(EXPORT_COLUMNS)

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._csv.writerows([_text(v) for v in row] for row in rows)

    def close(self) -> None:
        self._file.close()


class _JsonlWriter:
    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self._encoder = msgspec.json.Encoder()

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        records = [dict(zip(EXPORT_COLUMNS, row, strict=True)) for row in rows]
        self._file.write(self._encoder.encode_lines(records))

    def close(self) -> None:
        self._file.close()


class _ParquetWriter:
    """Buffers up to a row group of columns, then writes it (one row group per flush)."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa  # late: slow to import, parquet only
        import pyarrow.parquet as pq

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

        self._pa = pa
        self._schema = pa.schema([pa.field(name, kind(name)) for name in EXPORT_COLUMNS])
        self._writer = pq.ParquetWriter(str(path), self._schema, compression="zstd")
        self._pending: list[tuple[Any, ...]] = []

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._pending.extend(rows)
        if len(self._pending) >= PARQUET_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        columns = list(zip(*self._pending, strict=True))
        arrays = [
            self._pa.array(column, type=field.type)
            for column, field in zip(columns, self._schema, strict=True)
        ]
        batch = self._pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        self._writer.write_batch(batch, row_group_size=len(self._pending))
        self._pending = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


def _open_writer(fmt: str, path: Path) -> _Writer:
    if fmt == "csv":
        return _CsvWriter(path)
    if fmt == "jsonl":
        return _JsonlWriter(path)
    if fmt == "parquet":
        return _ParquetWriter(path)
    raise ExportError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")


class _Audit:
    """The manifest's figures, accumulated as the rows stream past (rows come oldest first)."""

    def __init__(self) -> None:
        self.count = 0
        self.by_currency: dict[str, dict[str, int]] = {}
        self.first: tuple[Any, ...] | None = None
        self.last: tuple[Any, ...] | None = None

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        self.count += len(rows)
        if self.first is None:
            self.first = rows[0]
        self.last = rows[-1]
        cur_i = _COL["currency"]
        money_i = [(name, _COL[name]) for name in MONEY_FIELDS]
        for row in rows:
            totals = self.by_currency.get(row[cur_i])
            if totals is None:
                totals = self.by_currency[row[cur_i]] = dict.fromkeys(MONEY_FIELDS, 0)
            for name, i in money_i:
                totals[name] += row[i]

    @staticmethod
    def _point(row: tuple[Any, ...] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        return {
            "ended_at": row[_COL["ended_at"]].astimezone(UTC).isoformat(),
            "vshard": row[_COL["vshard"]],
            "entry_id": row[_COL["entry_id"]],
        }

    def figures(self) -> dict[str, Any]:
        currencies = sorted(self.by_currency)
        totals = dict.fromkeys(MONEY_FIELDS, 0)
        for per in self.by_currency.values():
            for name in MONEY_FIELDS:
                totals[name] += per[name]
        return {
            "record_count": self.count,
            # One currency per file, as TAP3's localCurrency; null (see totals_by_currency)
            # if the tenant's records carry several.
            "currency": currencies[0] if len(currencies) == 1 else None,
            "totals": totals,
            "totals_by_currency": {c: self.by_currency[c] for c in currencies},
            "earliest_record": self._point(self.first),
            "latest_record": self._point(self.last),
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
    chunk_rows: int = 5_000,
    now: datetime | None = None,
) -> ExportResult:
    """Write the tenant's records with ``start <= ended_at < end`` to ``out`` in ``fmt``, then
    ``<out>.manifest.json``. Raises ``UnknownTenant`` (nothing written) for an unknown tenant,
    ``ExportError`` when the file cannot be written."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        writer = _open_writer(fmt, tmp)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from exc
    audit = _Audit()
    try:
        async for chunk in store.iter_export(tenant, start, end, chunk_rows=chunk_rows):
            writer.write(chunk)
            audit.add(chunk)
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
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
        **audit.figures(),
        "money_unit": "integer micro-units (1e-6) of the currency",
        "columns": list(EXPORT_COLUMNS),
        "created_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
    }
    _write_json(manifest_path, manifest)
    return ExportResult(out, manifest_path, manifest)
