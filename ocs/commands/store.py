"""``ocs store``: the usage store's lifecycle — run the embedded PostgreSQL, apply migrations,
show the schema state and the URL.

Exit codes: 0 done, 1 the store failed or is unreachable, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from typing import Any

from ocs.config import ConfigError, StoreConfig, load_config
from ocs.embedded_postgres import EmbeddedPostgresError, StoreSetupError
from ocs.store_runtime import open_usage_store, start_embedded_store, store_url
from usage import migrate
from usage import sql as q
from usage.store import StoreError


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """The options every store-using command shares."""
    parser.add_argument("--config", metavar="FILE", help="TOML config file ([store] section)")
    parser.add_argument(
        "--store-url",
        metavar="URL",
        help="PostgreSQL URL (default: OCS_STORE_URL, [store] url, then <data-dir>/store.url)",
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="the embedded store's directory (default var/pg)"
    )


def store_config(args: argparse.Namespace) -> StoreConfig:
    overrides = {"store": {"data_dir": args.data_dir}} if args.data_dir else None
    return load_config(args.config, overrides=overrides).store


def resolve_url(args: argparse.Namespace) -> tuple[StoreConfig, str]:
    config = store_config(args)
    return config, store_url(config, args.store_url)


def register(sub: Any) -> None:
    parser = sub.add_parser("store", help="the usage store: embedded PostgreSQL and migrations")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    start = actions.add_parser(
        "start",
        help="run the embedded PostgreSQL in the foreground until Ctrl-C / SIGTERM",
        description=(
            "initdb under --data-dir (default var/pg) on first use, start PostgreSQL on a free "
            "loopback port (or [store] embedded_port), apply migrations, write <data-dir>/"
            "store.url, and stop the server on SIGINT/SIGTERM."
        ),
    )
    start.add_argument("--config", metavar="FILE", help="TOML config file ([store] section)")
    start.add_argument("--data-dir", metavar="DIR", help="default var/pg")
    start.add_argument("--port", type=int, help="loopback port (default: a free one)")
    start.set_defaults(func=_start)

    for name, help_text, func in (
        ("migrate", "apply pending schema migrations; recreate missing tenant roles", _migrate),
        ("status", "migrations, partitions and tenants of the store", _status),
        ("url", "print the store URL the ocs commands would use", _url),
    ):
        action = actions.add_parser(name, help=help_text)
        add_store_options(action)
        action.set_defaults(func=func)


def _fail(message: str, code: int) -> int:
    print(f"ocs store: {message}", file=sys.stderr)
    return code


def _start(args: argparse.Namespace) -> int:
    try:
        overrides: dict[str, Any] = {}
        if args.data_dir:
            overrides["data_dir"] = args.data_dir
        if args.port is not None:
            overrides["embedded_port"] = args.port
        config = load_config(args.config, overrides={"store": overrides}).store
    except ConfigError as exc:
        return _fail(str(exc), 2)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = start_embedded_store(config)
    except (EmbeddedPostgresError, migrate.MigrationError) as exc:
        return _fail(str(exc), 1)
    print(f"usage store ready: {server.url_path} (PostgreSQL on {server.host}:{server.port})")
    sys.stdout.flush()
    try:
        while not stop.wait(1.0):
            if not server.running:
                return _fail(f"PostgreSQL exited; see {server.log_path}", 1)
    finally:
        server.stop()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    try:
        config, url = resolve_url(args)
        applied = migrate.apply(url)
        print("applied: " + ", ".join(applied) if applied else "schema up to date")
        refreshed = asyncio.run(_refresh_tenant_roles(url, config))
    except (ConfigError, StoreSetupError) as exc:
        return _fail(str(exc), 2)
    except (migrate.MigrationError, StoreError) as exc:
        return _fail(str(exc), 1)
    if refreshed:
        print(f"tenant roles checked: {refreshed}")
    return 0


async def _refresh_tenant_roles(url: str, config: StoreConfig) -> int:
    """Recreate any registered tenant's role that is missing: roles live in the cluster, not
    in the database, so a database restored into another cluster arrives without them."""
    store = await open_usage_store(url, config, "ocs-store-migrate")
    try:
        tenants = await store.tenants()
        for tenant in tenants:
            await store.ensure_tenant(tenant.tenant)
        return len(tenants)
    finally:
        await store.close()


def _status(args: argparse.Namespace) -> int:
    try:
        config, url = resolve_url(args)
        steps = migrate.status(url)
    except (ConfigError, StoreSetupError) as exc:
        return _fail(str(exc), 2)
    except migrate.MigrationError as exc:
        return _fail(str(exc), 1)
    for step, applied in steps:
        print(f"migration {step}: {'applied' if applied else 'PENDING'}")
    if not all(applied for _, applied in steps):
        return 0
    try:
        asyncio.run(_print_contents(url, config))
    except StoreError as exc:
        return _fail(str(exc), 1)
    return 0


async def _print_contents(url: str, config: StoreConfig) -> None:
    store = await open_usage_store(url, config, "ocs-store-status")
    try:
        async with store.as_portfolio() as conn:
            partitions = await (await conn.execute(q.LIST_PARTITIONS)).fetchall()
        for name, lo, hi in partitions:
            print(f"partition {name}: {lo:%Y-%m-%d} .. {hi:%Y-%m-%d}")
        for tenant in await store.tenants():
            months = tenant.retention_months
            retention = f"{months} months" if months else f"default ({config.retention_months})"
            print(f"tenant {tenant.tenant}: role {tenant.role}, retention {retention}")
    finally:
        await store.close()


def _url(args: argparse.Namespace) -> int:
    try:
        _, url = resolve_url(args)
    except (ConfigError, StoreSetupError) as exc:
        return _fail(str(exc), 2)
    print(url)
    return 0
