"""``ocs xdr``: import the host MNO's CDR files (offline charging), once or from a watched drop.

``ocs xdr import FILE... --mno NAME [--tenant T] [--rate-only] [--dry-run]``
``ocs xdr import --watch DIR --mno NAME [--interval-s 10]``
``ocs xdr check --mno NAME`` (validate the mapping)

Exit codes: 0 every line charged (or a duplicate); 1 some line or file was rejected, or Redis
failed part-way (run the same import again: it resumes exactly); 2 bad input (mapping,
catalog, missing file, options).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from rich import box
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from balance.errors import LedgerError
from balance.ledger import Ledger
from ocs.commands.usage import InputError, parse_time
from ocs.config import ConfigError, StoreConfig, load_config
from ocs.embedded_postgres import StoreSetupError
from ocs.ledger_runtime import RedisSetupError, resolve_redis_url
from ocs.store_runtime import open_usage_store, store_url
from tariffs.errors import CatalogError
from tariffs.loader import load_catalog
from usage.sql import EXPORT_COLUMNS
from usage.store import StoreError, UsageStore
from usage.xdr.importer import (
    BATCH_SIZE_DEFAULT,
    BATCH_SIZE_MAX,
    AlreadyStored,
    FileImport,
    ImportOptions,
    ImportResult,
)
from usage.xdr.manifest import ManifestStore, TenantTotals
from usage.xdr.mapping import Mapping, MappingError, load_mapping, mapping_path
from usage.xdr.rate import XdrRater
from usage.xdr.rerate import Rerater, RerateReport, stored_usage
from usage.xdr.stored import StoredOps
from usage.xdr.watch import INTERVAL_S_MAX, INTERVAL_S_MIN, DropWatcher

EXIT_OK, EXIT_REJECTS, EXIT_USAGE = 0, 1, 2
DEFAULT_CATALOG = "examples/catalog"
DEFAULT_STATE_DIR = "var/xdr"
IN_FLIGHT_MAX = 1024  # ledger calls in flight per tenant: one import window (a call per shard)
MICRO = Decimal(1_000_000)


def register(sub: Any) -> None:
    parser = sub.add_parser("xdr", help="offline charging: import the host MNO's CDR files")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(action: argparse.ArgumentParser) -> None:
        action.add_argument("--mno", required=True, help="host MNO name (its mapping file)")
        action.add_argument(
            "--catalog", default=DEFAULT_CATALOG, help="tenant catalog directory or file"
        )
        action.add_argument(
            "--mapping", help="mapping file (default: <catalog dir>/mno/<mno>.yaml)"
        )

    check = actions.add_parser("check", help="validate an MNO mapping")
    common(check)
    check.set_defaults(func=run_check)

    imp = actions.add_parser("import", help="rate and charge CDR files (or a watched drop)")
    common(imp)
    imp.add_argument("files", nargs="*", metavar="FILE", help="CDR files, imported in order")
    imp.add_argument("--watch", metavar="DIR", help="import files dropped into DIR, for ever")
    imp.add_argument(
        "--interval-s", type=float, default=10.0, help="watch poll interval (default 10 s)"
    )
    imp.add_argument("--rounds", type=int, help="watch: stop after this many polls")
    imp.add_argument("--tenant", help="only this tenant's records (others are rejected)")
    imp.add_argument("--rate-only", action="store_true", help="rate and report; charge nothing")
    imp.add_argument(
        "--dry-run", action="store_true", help="as --rate-only, and write no rejects file"
    )
    imp.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE_DEFAULT,
        help=f"records per window sent to the ledger, grouped by shard ({BATCH_SIZE_DEFAULT})",
    )
    imp.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="file manifests (var/xdr)")
    imp.add_argument("--redis-url", help="Redis URL (default: OCS_REDIS_URL, then --data-dir)")
    imp.add_argument("--data-dir", help="where `ocs serve` keeps its embedded Redis")
    imp.add_argument("--config", metavar="FILE", help="TOML config ([redis], [ledger], [store])")
    imp.add_argument(
        "--store-url",
        help="usage store (default: OCS_STORE_URL, [store] url, then its data dir): op ids "
        "it holds are duplicates however old",
    )
    imp.add_argument(
        "--no-store", action="store_true", help="no usage store: the ledger's TTL only"
    )
    imp.add_argument("--json", action="store_true", help="machine-readable summary")
    imp.set_defaults(func=run_import)

    rerate = actions.add_parser(
        "rerate", help="what-if: a period's stored usage priced with a candidate catalog"
    )
    rerate.add_argument("--tenant", required=True)
    rerate.add_argument("--from", dest="start", metavar="TIME", required=True, help="included")
    rerate.add_argument("--to", dest="end", metavar="TIME", required=True, help="excluded")
    rerate.add_argument(
        "--catalog", required=True, help="the candidate catalog (directory or tenant file)"
    )
    rerate.add_argument(
        "--current", default=DEFAULT_CATALOG, help="the catalog in force (default examples/catalog)"
    )
    rerate.add_argument("--store-url", help="usage store (default: OCS_STORE_URL, [store])")
    rerate.add_argument("--config", metavar="FILE", help="TOML config ([store])")
    rerate.add_argument("--json", action="store_true", help="machine-readable report")
    rerate.set_defaults(func=run_rerate)


def _mapping(args: argparse.Namespace) -> Mapping | None:
    path = Path(args.mapping) if args.mapping else mapping_path(args.catalog, args.mno)
    try:
        mapping = load_mapping(path)
    except MappingError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: mapping refused", file=sys.stderr)
        return None
    if mapping.mno != args.mno:
        print(f"{path}:1: mno: {mapping.mno!r} is not --mno {args.mno!r}", file=sys.stderr)
        return None
    return mapping


def run_check(args: argparse.Namespace) -> int:
    mapping = _mapping(args)
    if mapping is None:
        return EXIT_USAGE
    fields = ", ".join(c.field for c in mapping.columns)
    print(f"{mapping.source}: valid; {mapping.format}, fields: {fields}")
    return EXIT_OK


def money(micro: int) -> str:
    """Micro-units as currency units, exact: two decimals at least, six at most."""
    whole, _, frac = f"{Decimal(micro) / MICRO:f}".partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


def summary_table(results: Sequence[ImportResult], currencies: dict[str, str]) -> Table:
    """One row per tenant over all files (money in currency units)."""
    totals: dict[str, TenantTotals] = {}
    for result in results:
        for tenant, figures in result.tenants.items():
            totals.setdefault(tenant, TenantTotals()).add(figures)
    table = Table(title="xDR import", box=box.SIMPLE_HEAD)
    for name in ("tenant", "read", "rated", "charged", "duplicate", "rejected"):
        table.add_column(name, justify="left" if name == "tenant" else "right")
    for name in ("retail", "wholesale", "leakage"):
        table.add_column(name, justify="right")
    for tenant in sorted(totals):
        t = totals[tenant]
        currency = currencies.get(tenant, "")
        table.add_row(
            tenant,
            f"{t.read:,}",
            f"{t.rated:,}",
            f"{t.charged:,}",
            f"{t.duplicate:,}",
            f"{t.rejected:,}",
            *(f"{money(v)} {currency}".strip() for v in (t.retail, t.wholesale, t.leakage)),
        )
    return table


def _describe(result: ImportResult) -> str:
    if result.already_imported:
        return f"{result.file}: already imported (sha256 {result.sha256[:12]}), nothing done"
    if result.layout_error:
        return f"{result.file}:{result.layout_error.removeprefix('line ')}"
    text = f"{result.file}: done"
    if result.rejects_path:
        text += f", {result.rejected} rejected -> {result.rejects_path}"
    return text


class _Run:
    """The pieces one command run shares: catalog, rater, Redis ledgers, output."""

    def __init__(self, args: argparse.Namespace, mapping: Mapping, rater: XdrRater) -> None:
        self.args = args
        self.mapping = mapping
        self.rater = rater
        self.charging = not (args.rate_only or args.dry_run)
        self.console = Console(stderr=True)
        self.client: aioredis.Redis | None = None
        self.ledgers: dict[str, Ledger] = {}
        self.ledger_limits: dict[str, Any] = {}
        self.already_stored: AlreadyStored | None = None
        self.store_url: str | None = None
        self.store_config: StoreConfig | None = None
        self.store: UsageStore | None = None

    async def ledger(self, tenant: str) -> Ledger:
        ledger = self.ledgers.get(tenant)
        if ledger is None:
            assert self.client is not None
            limits = {**self.ledger_limits, "in_flight_max": IN_FLIGHT_MAX}
            limits.pop("waiting_max", None)
            ledger = self.ledgers[tenant] = Ledger(self.client, tenant, **limits)
            # The tenant's notification thresholds, as ocs serve sends them with each CCR.
            info = self.rater.catalog.tenant(tenant)
            if info is not None:
                ledger.set_balance_below(info.notify_balance_below)
                ledger.set_bucket_below(info.notify_bucket_below)
        return ledger

    async def import_file(self, path: Path) -> ImportResult:
        options = ImportOptions(
            mno=self.mapping.mno,
            rate_only=self.args.rate_only,
            dry_run=self.args.dry_run,
            batch_size=self.args.batch_size,
        )
        size = path.stat().st_size
        show = self.console.is_terminal and not self.args.json
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not show,
            transient=True,
        )
        task = progress.add_task(path.name, total=size)
        update: Callable[[int], None] = lambda done: progress.update(task, completed=done)  # noqa: E731
        with progress:
            result = await FileImport(
                path,
                self.mapping,
                self.rater,
                options,
                ledger_for=self.ledger if self.charging else None,
                manifests=ManifestStore(self.args.state_dir) if self.charging else None,
                now=time.time,
                already_stored=self.already_stored,
                progress=update,
            ).run()
        if not self.args.json:
            print(_describe(result), file=sys.stderr)
        return result

    async def close(self) -> None:
        for ledger in self.ledgers.values():
            await ledger.aclose()  # closes its script connection (and the shared client)
        if self.client is not None:
            await self.client.aclose()
        if self.store is not None:
            await self.store.close()


def _check_args(args: argparse.Namespace) -> str | None:
    if bool(args.files) == bool(args.watch):
        return "give FILE... or --watch DIR (one of them)"
    if not INTERVAL_S_MIN <= args.interval_s <= INTERVAL_S_MAX:
        return f"--interval-s must be {INTERVAL_S_MIN}-{INTERVAL_S_MAX}"
    if args.rounds is not None and args.rounds <= 0:
        return "--rounds must be positive"
    if not 0 < args.batch_size <= BATCH_SIZE_MAX:
        return f"--batch-size must be 1-{BATCH_SIZE_MAX}"
    for name in args.files:
        if not Path(name).is_file():
            return f"{name}: no such file"
    if args.watch and not Path(args.watch).is_dir():
        return f"{args.watch}: no such directory"
    return None


def run_import(args: argparse.Namespace) -> int:
    problem = _check_args(args)
    if problem is not None:
        print(f"ocs xdr import: {problem}", file=sys.stderr)
        return EXIT_USAGE
    mapping = _mapping(args)
    if mapping is None:
        return EXIT_USAGE
    try:
        catalog = load_catalog(args.catalog)
    except CatalogError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return EXIT_USAGE
    tenant = args.tenant or mapping.tenant
    if tenant is not None and catalog.tenant(tenant) is None:
        print(f"ocs xdr import: tenant {tenant!r} is not in the catalog", file=sys.stderr)
        return EXIT_USAGE
    run = _Run(args, mapping, XdrRater(catalog, tenant=tenant))
    if run.charging:
        try:
            config = load_config(args.config)
            url = resolve_redis_url(
                args.redis_url or config.redis.url,
                data_dir=args.data_dir or config.redis.data_dir,
            )
        except (ConfigError, RedisSetupError) as exc:
            print(f"ocs xdr import: {exc}", file=sys.stderr)
            return EXIT_REJECTS
        run.client = aioredis.Redis.from_url(url, socket_timeout=10.0)
        run.ledger_limits = dict(config.ledger.limits())
        if not args.no_store:
            try:
                run.store_url = store_url(config.store, args.store_url)
                run.store_config = config.store
            except StoreSetupError:
                print(
                    "ocs xdr import: no usage store configured: records are recognised as "
                    "duplicates for the ledger's idempotency TTL only (--store-url to add it)",
                    file=sys.stderr,
                )
    try:
        import uvloop  # the event loop of `ocs serve`: less CPU per ledger call

        runner: Callable[[Any], list[ImportResult]] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    try:
        results = runner(_execute(run))
    except (LedgerError, RedisError, StoreError, OSError) as exc:
        print(
            f"ocs xdr import: stopped: {exc}; import the same files again to finish",
            file=sys.stderr,
        )
        return EXIT_REJECTS
    currencies = {t.id: t.currency for t in catalog.tenants}
    if args.json:
        print(msgspec.json.encode([msgspec.to_builtins(r) for r in results]).decode())
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # a log or a pipe: never wrap the table
        console.print(summary_table(results, currencies))
    rejected = any(r.rejected or r.layout_error for r in results)
    return EXIT_REJECTS if rejected else EXIT_OK


async def _execute(run: _Run) -> list[ImportResult]:
    try:
        if run.store_url is not None and run.store_config is not None:
            run.store = await open_usage_store(run.store_url, run.store_config, "ocs-xdr-import")
            run.already_stored = StoredOps(run.store)
        if run.args.watch:
            watcher = DropWatcher(
                Path(run.args.watch),
                run.import_file,
                sleep=asyncio.sleep,
                interval_s=run.args.interval_s,
            )
            await watcher.run(run.args.rounds)
            return list(watcher.results)
        return [await run.import_file(Path(name)) for name in run.args.files]
    finally:
        await run.close()


def rerate_table(report: RerateReport, currency: str) -> Table:
    table = Table(title="re-rating: catalog in force -> candidate", box=box.SIMPLE_HEAD)
    for name in ("service", "zone", "records", "units", "billed"):
        table.add_column(name, justify="left" if name in ("service", "zone") else "right")
    for name in ("retail", "wholesale", "margin"):
        table.add_column(f"{name} now -> candidate (change)", justify="right")
    for (service, zone), line in sorted(report.lines.items()):
        table.add_row(
            service,
            zone,
            f"{line.records:,}",
            f"{line.units:,}",
            money(line.billed),
            *(
                f"{money(now)} -> {money(new)} ({'+' if new >= now else '-'}"
                f"{money(abs(new - now))}) {currency}"
                for now, new in (
                    (line.retail_now, line.retail_candidate),
                    (line.wholesale_now, line.wholesale_candidate),
                    (line.margin_now, line.margin_candidate),
                )
            ),
        )
    return table


def run_rerate(args: argparse.Namespace) -> int:
    try:
        start = parse_time(args.start, "--from")
        end = parse_time(args.end, "--to")
        current = load_catalog(args.current)
        candidate = load_catalog(args.catalog)
        rerater = Rerater(current, candidate, args.tenant)
        config = load_config(args.config)
        url = store_url(config.store, args.store_url)
    except CatalogError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return EXIT_USAGE
    except (InputError, ValueError, ConfigError, StoreSetupError) as exc:
        print(f"ocs xdr rerate: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def read() -> None:
        store = await open_usage_store(url, config.store, "ocs-xdr-rerate")
        try:
            async for chunk in store.iter_export(args.tenant, start, end):
                for usage in stored_usage(chunk, EXPORT_COLUMNS):
                    rerater.add(usage)
        finally:
            await store.close()

    try:
        asyncio.run(read())
    except (StoreError, OSError) as exc:
        print(f"ocs xdr rerate: {exc}", file=sys.stderr)
        return EXIT_REJECTS
    report = rerater.report
    tenant = candidate.tenant(args.tenant)
    currency = tenant.currency if tenant is not None else ""
    if args.json:
        lines = [
            {"service": service, "zone": zone, **msgspec.to_builtins(line),
             "margin_now": line.margin_now, "margin_candidate": line.margin_candidate}
            for (service, zone), line in sorted(report.lines.items())
        ]  # fmt: skip
        print(json.dumps({"currency": currency, "lines": lines, "unrated": report.unrated}))
    else:
        console = Console() if Console().is_terminal else Console(width=200)
        console.print(rerate_table(report, currency))
        for reason, count in sorted(report.unrated.items()):
            print(f"unrated: {count:,} records: {reason}", file=sys.stderr)
    return EXIT_REJECTS if report.unrated else EXIT_OK
