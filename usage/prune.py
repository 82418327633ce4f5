"""Executes the retention plan (usage/retention.py) on the store, optionally archiving first.

- A partition expired for every tenant is dropped. With an archive directory it is first
  DETACHed and renamed ``usage_pruning_<YYYYMM>`` in a short transaction (late rows of that month
  then land in the default partition instead of a table being archived), copied out, and
  dropped; a run interrupted in between leaves that table, and the next run with an archive
  directory finishes it.
- Rows of some tenants in a partition are deleted with ``COPY (DELETE ... RETURNING *) TO
  STDOUT``: the archive holds exactly the rows deleted, in one statement, without locking the
  partition against the exporter.

Archives are gzipped CSV (with header) plus ``<file>.manifest.json`` (count, sha256, partition,
tenants); a file is renamed into place and fsynced before the transaction that removes its rows
commits, so a crash may leave an archive of rows still stored (a rerun archives them again),
never rows removed without their archive. DDL waits at most ``LOCK_TIMEOUT`` for the table
(a long export would otherwise queue every other query behind it); a busy partition is skipped.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from psycopg import AsyncConnection, sql

from usage import sql as q
from usage.retention import Mode, Partition, PruneAction, plan_prune
from usage.store import UsageStore

LOCK_TIMEOUT = "5s"
PRUNING_PREFIX = "usage_pruning_"
ARCHIVE_ORDER = "tenant, ended_at, vshard, entry_id"


class PruneResult(msgspec.Struct, frozen=True):
    action: str  # what was (or, dry run, would be) done
    rows: int
    archive: str | None = None
    skipped: str | None = None  # why nothing was done


def _condition(action: PruneAction) -> tuple[sql.Composable, dict[str, Any]]:
    if action.mode is Mode.DROP:
        return sql.SQL("TRUE"), {}
    tenants = {"tenants": list(action.tenants)}
    if action.mode is Mode.DELETE_ONLY:
        return sql.SQL("tenant = ANY(%(tenants)s)"), tenants
    return sql.SQL("NOT (tenant = ANY(%(tenants)s))"), tenants


async def _partitions(store: UsageStore) -> list[Partition]:
    async with store.as_owner() as conn:
        rows = await (await conn.execute(q.LIST_PARTITIONS)).fetchall()
    return [Partition(name=n, lo=lo, hi=hi) for n, lo, hi in rows]


async def _leftovers(store: UsageStore) -> list[str]:
    async with store.as_owner() as conn:
        rows = await (await conn.execute(q.LIST_PRUNING, (PRUNING_PREFIX + "%",))).fetchall()
    return [name for (name,) in rows]


async def _count(conn: AsyncConnection[Any], table: str, action: PruneAction | None) -> int:
    where, params = _condition(action) if action else (sql.SQL("TRUE"), {})
    query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(sql.Identifier(table), where)
    row = await (await conn.execute(query, params)).fetchone()
    return int(row[0]) if row else 0


class _Archive:
    """A gzip CSV written beside its final name, hashed as written, renamed when complete."""

    def __init__(self, directory: Path, stem: str) -> None:
        self.path = directory / f"{stem}.csv.gz"
        self._tmp = directory / f".{stem}.csv.gz.tmp"
        self._raw = self._tmp.open("wb")
        self._sha = hashlib.sha256()
        self.bytes = 0
        self._gz = gzip.GzipFile(fileobj=self, mode="wb", mtime=0)  # type: ignore[arg-type]

    def write(self, data: bytes) -> int:  # the GzipFile's sink: hash what reaches the disk
        self._sha.update(data)
        self.bytes += len(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    async def fill(self, conn: AsyncConnection[Any], query: sql.Composed, params: Any) -> None:
        async with conn.cursor() as cur, cur.copy(query, params) as copy:
            async for block in copy:
                self._gz.write(block)

    def finish(self, manifest: dict[str, Any]) -> None:
        self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self._tmp, self.path)
        manifest |= {"file": self.path.name, "bytes": self.bytes, "sha256": self._sha.hexdigest()}
        _write_json(self.path.with_name(self.path.name + ".manifest.json"), manifest)

    def abandon(self) -> None:
        self._raw.close()
        self._tmp.unlink(missing_ok=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, default=str)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


async def _archive_table(
    store: UsageStore, table: str, archive_dir: Path, info: dict[str, Any]
) -> PruneResult:
    """Copy a detached ``usage_pruning_*`` table out, then drop it."""
    archive = _Archive(archive_dir, f"usage_{table.removeprefix(PRUNING_PREFIX)}")
    try:
        async with store.as_owner() as conn:
            rows = await _count(conn, table, None)
            query = sql.SQL("COPY (SELECT * FROM {} ORDER BY {}) TO STDOUT (FORMAT csv, HEADER)")
            await archive.fill(
                conn, query.format(sql.Identifier(table), sql.SQL(ARCHIVE_ORDER)), None
            )
            archive.finish({**info, "table": table, "record_count": rows})
            await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    except BaseException:
        archive.abandon()
        raise
    return PruneResult(f"archived and dropped {table}", rows, str(archive.path))


async def _drop(
    store: UsageStore, action: PruneAction, archive_dir: Path | None, now: datetime
) -> PruneResult:
    part = action.partition.name
    ident = sql.Identifier(part)
    async with store.as_owner() as conn:
        await conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(LOCK_TIMEOUT))
        rows = await _count(conn, part, None)
        if archive_dir is None:
            await conn.execute(sql.SQL("DROP TABLE {}").format(ident))
            return PruneResult(action.describe(), rows)
        detached = PRUNING_PREFIX + part.removeprefix("usage_records_")
        await conn.execute(sql.SQL("ALTER TABLE usage_records DETACH PARTITION {}").format(ident))
        await conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident, sql.Identifier(detached))
        )
    info = _archive_info(action, now)
    return await _archive_table(store, detached, archive_dir, info)


async def _delete(
    store: UsageStore, action: PruneAction, archive_dir: Path | None, now: datetime
) -> PruneResult:
    part = action.partition.name
    where, params = _condition(action)
    delete = sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(part), where)
    if archive_dir is None:
        async with store.as_owner() as conn:
            cur = await conn.execute(delete, params)
            return PruneResult(action.describe(), max(cur.rowcount, 0))
    stem = f"usage_{part.removeprefix('usage_records_')}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    archive = _Archive(archive_dir, stem)
    try:
        async with store.as_owner() as conn:
            rows = await _count(conn, part, action)
            copy = sql.SQL("COPY ({} RETURNING *) TO STDOUT (FORMAT csv, HEADER)").format(delete)
            await archive.fill(conn, copy, params)
            archive.finish({**_archive_info(action, now), "table": part, "record_count": rows})
    except BaseException:
        archive.abandon()
        raise
    return PruneResult(action.describe(), rows, str(archive.path))


def _archive_info(action: PruneAction, now: datetime) -> dict[str, Any]:
    return {
        "format": "csv.gz",
        "partition": action.partition.name,
        "from": action.partition.lo.isoformat(),
        "to": action.partition.hi.isoformat(),
        "mode": action.mode.value,
        "tenants": list(action.tenants),
        "pruned_at": now.astimezone(UTC).isoformat(),
    }


async def prune(
    store: UsageStore,
    *,
    default_months: int,
    now: datetime,
    dry_run: bool = False,
    archive_dir: Path | None = None,
) -> list[PruneResult]:
    """Bring the store within retention (see the module doc); returns what was done (with
    ``dry_run``: what would be, with the row counts it would touch)."""
    if archive_dir is not None and not archive_dir.is_dir():
        raise NotADirectoryError(f"archive directory {archive_dir} does not exist")
    retention = {
        t.tenant: t.retention_months
        for t in await store.tenants()
        if t.retention_months is not None
    }
    plan = plan_prune(await _partitions(store), retention, default_months, now)
    results: list[PruneResult] = []
    for table in await _leftovers(store):
        if archive_dir is None or dry_run:
            why = "left by an interrupted archive run: run again with --archive to finish it"
            results.append(PruneResult(f"archive and drop {table}", 0, skipped=why))
        else:
            results.append(await _archive_table(store, table, archive_dir, {"resumed": True}))
    for action in plan:
        if dry_run:
            async with store.as_owner() as conn:
                rows = await _count(conn, action.partition.name, action)
            results.append(PruneResult(action.describe(), rows))
            continue
        try:
            run = _drop if action.mode is Mode.DROP else _delete
            results.append(await run(store, action, archive_dir, now))
        except psycopg.errors.LockNotAvailable:
            results.append(
                PruneResult(action.describe(), 0, skipped="partition busy; run again later")
            )
    return results


async def default_partition_rows(store: UsageStore) -> int:
    """Rows in the default partition (months with no partition): a prune leaves them alone."""
    async with store.as_owner() as conn:
        row = await (await conn.execute(q.DEFAULT_PARTITION_ROWS)).fetchone()
    return int(row[0]) if row else 0


def summarise(results: Sequence[PruneResult]) -> int:
    return sum(r.rows for r in results if r.skipped is None)
