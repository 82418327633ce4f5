"""``ocs catalog check PATH`` and ``ocs catalog load PATH``.

``check`` validates a tenant file or a directory of them and prints every problem as
``file:line: field: what is wrong`` (exit 1), or a summary per tenant (exit 0).
``load`` installs a valid catalog into the deployment's Redis through the ledger's provisioning
API: per tenant its ACL user (when a tenant secret is given), then each subscriber's account
with its opening balance and its bundles' bucket instances. Accounts that already exist are left
as they are, so running ``load`` again after adding subscribers installs only the new ones.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from balance.errors import AccountExists, LedgerError
from balance.ledger import Ledger
from balance.records import BucketUnit
from balance.tenants import provision_tenant, tenant_password
from ocs.config import ConfigError, load_config
from tariffs.errors import CatalogError
from tariffs.loader import load_catalog
from tariffs.model import Catalog, Tenant
from tariffs.provisioning import SubscriberProvision, provision_subscribers, subscriber_count

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_UNAVAILABLE = 2
LOAD_CONCURRENCY = 64
TENANT_SECRET_BYTES_MIN = 16
BUCKET_UNITS = {"byte": BucketUnit.BYTES, "second": BucketUnit.SECONDS, "event": BucketUnit.EVENTS}


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
    load.add_argument("path", metavar="PATH", help="tenant YAML file or directory of them")
    load.add_argument("--config", metavar="FILE", help="TOML config file (for redis.url)")
    load.add_argument("--redis-url", metavar="URL", help="the deployment's Redis (admin user)")
    load.add_argument(
        "--tenant-secret-file",
        metavar="FILE",
        help="deployment secret (>= 16 bytes) the tenant ACL passwords derive from; "
        "without it ACL users are not created",
    )
    load.set_defaults(func=run_load)


def _load_or_report(path: str) -> Catalog | None:
    try:
        return load_catalog(path)
    except CatalogError as exc:
        for problem in exc.problems:
            print(problem)
        count = len(exc.problems)
        print(
            f"{path}: {count} problem{'s' if count != 1 else ''}; catalog refused", file=sys.stderr
        )
        return None


def describe(tenant: Tenant) -> str:
    prefixes = sum(len(d.prefixes) for d in tenant.destinations)
    versions = ", ".join(card.version for card in tenant.rate_cards)
    return (
        f"{tenant.id}: {tenant.currency}, {len(tenant.services)} services, "
        f"{len(tenant.zones)} zones, {prefixes} destination prefixes, "
        f"{len(tenant.time_bands)} time bands, rate cards [{versions}], "
        f"{len(tenant.bundles)} bundles, {subscriber_count(tenant)} subscribers, "
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


def _redis_url(args: argparse.Namespace) -> str | None:
    if args.redis_url:
        return str(args.redis_url)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"ocs catalog load: {exc}", file=sys.stderr)
        return None
    if config.redis.url:
        return config.redis.url
    if config.redis.embedded_port:
        return f"redis://127.0.0.1:{config.redis.embedded_port}/0"
    print(
        "ocs catalog load: give --redis-url (or redis.url / redis.embedded_port in the config) "
        "of the running deployment",
        file=sys.stderr,
    )
    return None


def run_load(args: argparse.Namespace) -> int:
    catalog = _load_or_report(args.path)
    if catalog is None:
        return EXIT_PROBLEMS
    url = _redis_url(args)
    if url is None:
        return EXIT_UNAVAILABLE
    secret: bytes | None = None
    if args.tenant_secret_file:
        try:
            secret = Path(args.tenant_secret_file).read_bytes().strip()
        except OSError as exc:
            print(f"ocs catalog load: cannot read the tenant secret: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        if len(secret) < TENANT_SECRET_BYTES_MIN:
            print("ocs catalog load: the tenant secret must be at least 16 bytes", file=sys.stderr)
            return EXIT_UNAVAILABLE
    return asyncio.run(install(catalog, url, secret, int(time.time())))


async def install(catalog: Catalog, url: str, secret: bytes | None, now: int) -> int:
    """Install ``catalog`` into the Redis at ``url``; prints one line per tenant."""
    client = aioredis.Redis.from_url(url)
    try:
        for tenant in catalog.tenants:
            if secret is not None:
                await provision_tenant(client, tenant.id, tenant_password(secret, tenant.id))
            ledger = Ledger(client, tenant.id)
            created = kept = 0
            pending = list(provision_subscribers(tenant, now))
            for start in range(0, len(pending), LOAD_CONCURRENCY):
                batch = pending[start : start + LOAD_CONCURRENCY]
                outcomes = await asyncio.gather(*(_install_one(ledger, p, now) for p in batch))
                created += sum(outcomes)
                kept += len(outcomes) - sum(outcomes)
            acl = "ACL user set" if secret is not None else "ACL user not set (no secret)"
            print(f"{tenant.id}: {created} subscribers installed, {kept} already present; {acl}")
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        print(f"ocs catalog load: Redis at {url} unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except LedgerError as exc:
        print(f"ocs catalog load: ledger refused: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        await client.aclose()
    return EXIT_OK


async def _install_one(ledger: Ledger, provision: SubscriberProvision, now: int) -> bool:
    """Create the account and its buckets; False if the account was already there."""
    subscriber = provision.subscriber_id
    try:
        result = await ledger.provision_account(
            subscriber,
            balance=provision.opening_balance,
            now_s=now,
            op_id=f"catalog-load:{subscriber}",
        )
    except AccountExists:
        return False
    if result.replayed:
        return False
    for bucket in provision.buckets:
        await ledger.add_bucket(
            subscriber,
            bucket_id=f"{bucket.kind}#catalog",
            kind=bucket.kind,
            unit=BUCKET_UNITS[bucket.unit],
            amount=bucket.amount,
            now_s=now,
            priority=bucket.priority,
            expires_at_s=bucket.expires_at,
            op_id=f"catalog-load:{subscriber}:{bucket.kind}",
        )
    return True
