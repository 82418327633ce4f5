"""``ocs usage``: the stored usage records — totals, retention and pruning, export files.

Times on the command line are ``YYYY-MM-DD`` (midnight UTC) or ISO 8601 (``2026-11-01T06:00``,
UTC unless it carries an offset); periods are half-open: ``--from`` included, ``--to`` not.
Exit codes: 0 done, 1 the store failed or refused (unknown tenant, unreachable), 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ocs.commands.store import add_store_options, resolve_url
from ocs.config import ConfigError, StoreConfig
from ocs.embedded_postgres import StoreSetupError
from ocs.store_runtime import open_usage_store
from usage.store import StoreError, UsageStore


class InputError(ValueError):
    """Bad command-line input: exit code 2."""


def parse_time(text: str, option: str) -> datetime:
    """``YYYY-MM-DD`` → midnight UTC; ISO 8601 with or without offset (none: UTC)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{option}: {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time "
            "(YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def register(sub: Any) -> None:
    parser = sub.add_parser("usage", help="stored usage records: totals, retention, export")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    totals = actions.add_parser("totals", help="count and money totals of a tenant's records")
    add_store_options(totals)
    totals.add_argument("--tenant", required=True)
    totals.add_argument("--from", dest="start", metavar="TIME", help="included (default: all)")
    totals.add_argument("--to", dest="end", metavar="TIME", help="excluded (default: all)")
    totals.add_argument("--json", action="store_true", help="machine-readable output")
    totals.set_defaults(func=_totals)

    retention = actions.add_parser(
        "retention",
        help="show or set per-tenant retention (months)",
        description="Without --months/--default: list every tenant's retention.",
    )
    add_store_options(retention)
    retention.add_argument("--tenant", help="the tenant to change")
    which = retention.add_mutually_exclusive_group()
    which.add_argument("--months", type=int, help="keep this many whole months + the current")
    which.add_argument("--default", action="store_true", help="back to [store] retention_months")
    retention.set_defaults(func=_retention)

    prune = actions.add_parser(
        "prune",
        help="drop or delete usage past retention (archiving it first with --archive)",
        description=(
            "Drops month partitions past every tenant's retention and deletes the rows of "
            "tenants with a shorter retention from the others. --archive DIR writes what goes "
            "as gzipped CSV with a manifest (count, sha256) before removing it."
        ),
    )
    add_store_options(prune)
    prune.add_argument("--dry-run", action="store_true", help="only say what would be done")
    prune.add_argument("--archive", metavar="DIR", help="archive to DIR before removing")
    prune.add_argument(
        "--retention-months", type=int, help="default retention (default: [store] config)"
    )
    prune.add_argument(
        "--now", metavar="TIME", help="prune as if it were TIME (what-if runs; tests)"
    )
    prune.set_defaults(func=_prune)

    export = actions.add_parser(
        "export",
        help="write a tenant's records of a period to a CSV, JSONL or Parquet file + manifest",
        description=(
            "Streams the records (constant memory) as the tenant's own database role, so the "
            "file can hold nothing of another tenant, then writes <out>.manifest.json: record "
            "count, money totals, first/last record, sha256 of the file."
        ),
    )
    add_store_options(export)
    export.add_argument("--tenant", required=True)
    export.add_argument("--from", dest="start", metavar="TIME", required=True, help="included")
    export.add_argument("--to", dest="end", metavar="TIME", required=True, help="excluded")
    export.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv")
    export.add_argument("--out", metavar="FILE", required=True, help="the file to write")
    export.set_defaults(func=_export)


def _run(
    args: argparse.Namespace, body: Callable[[UsageStore, StoreConfig], Awaitable[int]]
) -> int:
    """Resolve the store, open it, run ``body``; turn every expected failure into a message."""
    try:
        config, url = resolve_url(args)
    except (ConfigError, StoreSetupError) as exc:
        return _fail(args, str(exc), 2)

    async def main() -> int:
        store = await open_usage_store(url, config, f"ocs-usage-{args.action}")
        try:
            return await body(store, config)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except InputError as exc:
        return _fail(args, str(exc), 2)
    except (StoreError, OSError) as exc:
        return _fail(args, str(exc), 1)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"ocs usage {args.action}: {message}", file=sys.stderr)
    return code


def _period(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    start = parse_time(args.start, "--from") if args.start else None
    end = parse_time(args.end, "--to") if args.end else None
    if start is not None and end is not None and end <= start:
        raise InputError(f"--to {args.end} is not after --from {args.start}")
    return start, end


def _totals(args: argparse.Namespace) -> int:
    try:
        start, end = _period(args)
    except InputError as exc:
        return _fail(args, str(exc), 2)

    async def body(store: UsageStore, _config: StoreConfig) -> int:
        totals = await store.count_and_totals(args.tenant, start, end)
        if args.json:
            print(json.dumps({"tenant": args.tenant, **_struct_dict(totals)}))
        else:
            for key, value in _struct_dict(totals).items():
                print(f"{key:14} {value}")
        return 0

    return _run(args, body)


def _struct_dict(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__struct_fields__}


def _retention(args: argparse.Namespace) -> int:
    if (args.months is not None or args.default) and not args.tenant:
        return _fail(args, "--months / --default need --tenant", 2)
    if args.months is not None and args.months < 1:
        return _fail(args, f"--months: at least 1, got {args.months}", 2)

    async def body(store: UsageStore, config: StoreConfig) -> int:
        if args.tenant and (args.months is not None or args.default):
            await store.set_retention(args.tenant, None if args.default else args.months)
        for tenant in await store.tenants():
            if args.tenant and tenant.tenant != args.tenant:
                continue
            months = tenant.retention_months
            shown = f"{months} months" if months else f"default ({config.retention_months} months)"
            print(f"{tenant.tenant}: {shown}")
        return 0

    return _run(args, body)


def _prune(args: argparse.Namespace) -> int:
    from usage.prune import default_partition_rows, prune  # late: keeps --help fast

    try:
        now = parse_time(args.now, "--now") if args.now else datetime.now(UTC)
    except InputError as exc:
        return _fail(args, str(exc), 2)
    if args.retention_months is not None and args.retention_months < 1:
        return _fail(args, f"--retention-months: at least 1, got {args.retention_months}", 2)
    archive = Path(args.archive) if args.archive else None
    if archive is not None and not archive.is_dir():
        return _fail(args, f"--archive: {archive} is not a directory", 2)

    async def body(store: UsageStore, config: StoreConfig) -> int:
        months = args.retention_months or config.retention_months
        results = await prune(
            store, default_months=months, now=now, dry_run=args.dry_run, archive_dir=archive
        )
        verb = "would" if args.dry_run else "did"
        for result in results:
            if result.skipped:
                print(f"skipped: {result.action}: {result.skipped}")
                continue
            where = f" -> {result.archive}" if result.archive else ""
            print(f"{verb}: {result.action}: {result.rows} rows{where}")
        if not results:
            print(f"nothing past retention (default {months} months, now {now:%Y-%m-%d})")
        stray = await default_partition_rows(store)
        if stray:
            print(f"note: {stray} rows wait in usage_records_default (months with no partition)")
        return 0

    return _run(args, body)


def _export(args: argparse.Namespace) -> int:
    from usage.export import ExportError, export  # late: pyarrow is slow to import

    try:
        start, end = _period(args)
    except InputError as exc:
        return _fail(args, str(exc), 2)
    out = Path(args.out)
    if not out.parent.is_dir():
        return _fail(args, f"--out: directory {out.parent} does not exist", 2)

    async def body(store: UsageStore, _config: StoreConfig) -> int:
        try:
            result = await export(store, args.tenant, start, end, args.format, out)
        except ExportError as exc:
            raise InputError(str(exc)) from exc
        manifest = result.manifest
        print(
            f"{manifest['record_count']} records -> {result.path} "
            f"(sha256 {manifest['file']['sha256']}); manifest {result.manifest_path}"
        )
        return 0

    return _run(args, body)
