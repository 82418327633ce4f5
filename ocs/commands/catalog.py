"""``ocs catalog check PATH`` and ``ocs catalog load PATH``.

``check`` validates a tenant file or a directory of them and prints every problem as
``file:line: field: what is wrong`` (exit 1), or a summary per tenant (exit 0).
``load`` installs a valid catalog into the deployment's Redis through the ledger's provisioning
API, tenant by tenant: the tenants in the files given (or only those named by ``--tenant``)
replace their stored versions, every other stored tenant is kept, and a tenant leaves only with
``--remove``. Per loaded tenant: its ACL user (when a tenant secret is given), then each new
subscriber's account with its opening balance and its bundles' bucket instances (an existing
account keeps its balance). The difference against the stored catalog is printed first;
``--dry-run`` stops there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from balance.errors import LedgerError
from balance.ledger import Ledger
from balance.tenants import provision_tenant, tenant_password
from ocs.catalog_diff import diff_catalogs
from ocs.catalog_install import install_catalog
from ocs.catalog_store import CatalogChanged, merge_sources, read_stored, write_catalog
from ocs.config import Config, ConfigError, load_config
from ocs.ledger_runtime import (
    TENANT_SECRET_FILE,
    RedisSetupError,
    load_tenant_secret,
    resolve_redis_url,
)
from tariffs.errors import CatalogError
from tariffs.loader import load_catalog, load_catalog_sources, load_texts
from tariffs.model import Catalog, Tenant
from tariffs.provisioning import subscriber_count

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_UNAVAILABLE = 2
TENANT_SECRET_BYTES_MIN = 16


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "catalog",
        help="check or load a tenant catalog (YAML file or directory)",
        description="Check a tenant catalog, or install it into a running deployment.",
    )
    commands = parser.add_subparsers(dest="catalog_command", metavar="ACTION")
    commands.required = True
    check = commands.add_parser(
        "check", help="validate; print every problem as file:line: field: what is wrong"
    )
    check.add_argument("path", metavar="PATH", help="tenant YAML file or directory of them")
    check.set_defaults(func=run_check)
    load = commands.add_parser(
        "load", help="install tenants, ACL users, subscribers, balances and bundles into Redis"
    )
    load.add_argument(
        "path", metavar="PATH", nargs="?", help="tenant YAML file or directory of them"
    )
    load.add_argument(
        "--tenant",
        metavar="T",
        action="append",
        default=[],
        help="load only this tenant of PATH (repeatable; default: every tenant in PATH)",
    )
    load.add_argument(
        "--remove",
        metavar="T",
        action="append",
        default=[],
        help="remove this tenant from the deployment (repeatable); its accounts stay in Redis",
    )
    load.add_argument(
        "--replace",
        action="store_true",
        help="make PATH the whole catalog: stored tenants not in PATH are removed (also the way "
        "out when the stored catalog no longer validates)",
    )
    load.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would change (tenants, rate rows, subscribers) and change nothing",
    )
    load.add_argument("--config", metavar="FILE", help="TOML config file (for redis.url)")
    load.add_argument(
        "--redis-url",
        metavar="URL",
        help="the deployment's Redis, admin user (default: OCS_REDIS_URL, redis.url of --config, "
        "then <data-dir>/redis.url written by `ocs serve`)",
    )
    load.add_argument(
        "--data-dir", metavar="DIR", help="data dir of the local `ocs serve` (default var/redis)"
    )
    load.add_argument(
        "--tenant-secret-file",
        metavar="FILE",
        help="deployment secret (>= 16 bytes) the tenant ACL passwords derive from (default: "
        "<data-dir>/tenant.secret of the local `ocs serve`); without one ACL users are not "
        "created",
    )
    load.set_defaults(func=run_load)


def _report(path: str, exc: CatalogError) -> None:
    for problem in exc.problems:
        print(problem)
    count = len(exc.problems)
    print(f"{path}: {count} problem{'s' if count != 1 else ''}; catalog refused", file=sys.stderr)


def _load_or_report(path: str) -> Catalog | None:
    try:
        return load_catalog(path)
    except CatalogError as exc:
        _report(path, exc)
        return None


def describe(tenant: Tenant) -> str:
    prefixes = sum(len(d.prefixes) for d in tenant.destinations)
    versions = ", ".join(card.version for card in tenant.rate_cards)
    return (
        f"{tenant.id}: {tenant.currency}, {len(tenant.services)} services, "
        f"{len(tenant.zones)} zones, {prefixes} destination prefixes, "
        f"{len(tenant.time_bands)} time bands, rate cards [{versions}], "
        f"{len(tenant.bundles)} bundles, "
        + (f"plans [{', '.join(p.id for p in tenant.plans)}], " if tenant.plans else "")
        + (f"add-ons [{', '.join(tenant.addons)}], " if tenant.addons else "")
        + f"{subscriber_count(tenant)} subscribers, "
        f"final unit {tenant.final_unit.action}"
    )


def run_check(args: argparse.Namespace) -> int:
    catalog = _load_or_report(args.path)
    if catalog is None:
        return EXIT_PROBLEMS
    for tenant in catalog.tenants:
        print(describe(tenant))
    print(f"{args.path}: valid, {len(catalog.tenants)} tenants")
    return EXIT_OK


def _redis_url(args: argparse.Namespace, config: Config) -> str | None:
    """``--redis-url``, ``OCS_REDIS_URL``, ``redis.url`` of ``--config``, then the URL a local
    ``ocs serve`` wrote under its data dir."""
    data_dir = args.data_dir or config.redis.data_dir
    try:
        return resolve_redis_url(args.redis_url or config.redis.url, data_dir=data_dir)
    except RedisSetupError as exc:
        print(f"ocs catalog load: {exc}", file=sys.stderr)
        return None


def _tenant_secret(args: argparse.Namespace) -> tuple[bytes | None, str | None]:
    """The secret tenant ACL passwords derive from: ``--tenant-secret-file``, else the one the
    local ``ocs serve`` keeps in its data dir; (None, None) when there is none."""
    if args.tenant_secret_file:
        try:
            secret = Path(args.tenant_secret_file).read_bytes().strip()
        except OSError as exc:
            return None, f"cannot read the tenant secret: {exc}"
        with contextlib.suppress(ValueError):  # the hex form `ocs serve` keeps in its data dir
            secret = bytes.fromhex(secret.decode("ascii"))
        if len(secret) < TENANT_SECRET_BYTES_MIN:
            return None, "the tenant secret must be at least 16 bytes"
        return secret, None
    local = Path(args.data_dir or "var/redis") / TENANT_SECRET_FILE
    if local.exists():
        return load_tenant_secret(local.parent), None
    return None, None


def select_tenants(
    catalog: Catalog, sources: list[tuple[str, str]], wanted: list[str]
) -> tuple[Catalog, list[tuple[str, str]]] | str:
    """The tenants of ``catalog`` named in ``wanted`` (all when empty) and their files' texts, or
    the reason it cannot be done."""
    if not wanted:
        return catalog, sources
    present = {t.id for t in catalog.tenants}
    missing = [t for t in wanted if t not in present]
    if missing:
        return (
            f"--tenant {', '.join(missing)}: not in the files given "
            f"(they define: {', '.join(sorted(present)) or 'no tenant'})"
        )
    tenants = tuple(t for t in catalog.tenants if t.id in wanted)
    files = {t.source for t in tenants}
    return Catalog(tenants), [source for source in sources if source[0] in files]


def run_load(args: argparse.Namespace) -> int:
    if args.path is None and not args.remove:
        print("ocs catalog load: give PATH, --remove TENANT, or both", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.tenant and args.path is None:
        print("ocs catalog load: --tenant picks tenants of PATH; give PATH", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.replace and (args.path is None or args.remove):
        print(
            "ocs catalog load: --replace makes PATH the whole catalog: give PATH, not --remove",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    catalog, sources = Catalog(tenants=()), list[tuple[str, str]]()
    if args.path is not None:
        try:
            catalog, sources = load_catalog_sources(args.path)
        except CatalogError as exc:
            _report(args.path, exc)
            return EXIT_PROBLEMS
        selected = select_tenants(catalog, sources, args.tenant)
        if isinstance(selected, str):
            print(f"ocs catalog load: {selected}", file=sys.stderr)
            return EXIT_PROBLEMS
        catalog, sources = selected
    both = sorted({t.id for t in catalog.tenants} & set(args.remove))
    if both:
        print(
            f"ocs catalog load: {', '.join(both)} both loaded and removed; choose one",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"ocs catalog load: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    url = _redis_url(args, config)
    if url is None:
        return EXIT_UNAVAILABLE
    secret, problem = _tenant_secret(args)
    if problem is not None:
        print(f"ocs catalog load: {problem}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return asyncio.run(
        install(
            catalog,
            sources,
            url,
            secret,
            int(time.time()),
            config.ledger.limits(),
            remove=tuple(args.remove),
            replace=args.replace,
            dry_run=args.dry_run,
        )
    )


async def install(
    catalog: Catalog,
    sources: list[tuple[str, str]],
    url: str,
    secret: bytes | None,
    now: int,
    ledger_limits: Mapping[str, Any] | None = None,
    *,
    remove: tuple[str, ...] = (),
    replace: bool = False,
    dry_run: bool = False,
) -> int:
    """Load ``catalog``'s tenants into the deployment at ``url`` (and drop those in ``remove``;
    with ``replace``, every stored tenant not in ``catalog``): print the difference against the
    stored catalog, then (unless ``dry_run``) install the loaded tenants' subscribers, store the
    merged catalog and tell every server. ``ledger_limits``: the ``[ledger]`` settings."""
    client = aioredis.Redis.from_url(url)

    async def ledger_for(tenant: str) -> Ledger:
        if secret is not None:
            await provision_tenant(client, tenant, tenant_password(secret, tenant))
        return Ledger(client, tenant, **(ledger_limits or {}))

    try:
        stored_valid = True
        try:
            stored = await read_stored(client)
        except CatalogError as exc:
            _report("the catalog stored in Redis", exc)
            if not replace:
                print("(--replace PATH replaces it as a whole)", file=sys.stderr)
                return EXIT_PROBLEMS
            stored, stored_valid = None, False
        if replace and stored is not None:
            remove = tuple(t.id for t in stored.catalog.tenants if catalog.tenant(t.id) is None)
        unknown = [t for t in remove if stored is None or stored.catalog.tenant(t) is None]
        if unknown:
            print(
                f"ocs catalog load: --remove {', '.join(unknown)}: no such tenant in the stored "
                "catalog",
                file=sys.stderr,
            )
            return EXIT_PROBLEMS
        merged_sources = merge_sources(stored, catalog, sources, remove)
        try:
            merged = load_texts(merged_sources)
        except CatalogError as exc:  # e.g. a loaded range overlapping a kept tenant's
            _report("the catalog after this load", exc)
            return EXIT_PROBLEMS
        for line in diff_catalogs(stored.catalog if stored else None, merged).lines():
            print(line)
        if dry_run:
            print("dry run: nothing changed")
            return EXIT_OK
        report = await install_catalog(catalog, ledger_for, now=now)
        # A stored catalog that does not validate has no tenants to compare: replaced as is.
        await write_catalog(client, merged_sources, expected=stored, check_unchanged=stored_valid)
    except CatalogChanged as exc:
        print(f"ocs catalog load: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        print(f"ocs catalog load: Redis at {url} unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except LedgerError as exc:
        print(f"ocs catalog load: ledger refused: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        await client.aclose()
    acl = "ACL user set" if secret is not None else "ACL user not set (no secret)"
    for tenant, (created, kept) in report.items():
        print(f"{tenant}: {created} subscribers installed, {kept} already present; {acl}")
    for tenant in remove:
        print(f"{tenant}: removed from the catalog (its accounts stay in Redis)")
    return EXIT_OK
