"""``ocs renew``: run the recurring renewals that are due (plans' fees and fresh buckets), then
the bucket-expiry warnings (one ``bundle_expiring`` event per bucket entering the tenant's
``notifications.expiry_warning_days``; ``balance.lifecycle``), which are as safe to run from
several processes and after downtime.

One pass by default (for cron or a systemd timer); ``--loop`` repeats it every ``--interval``
seconds. Any number of these may run at once, and a pass after downtime renews each missed
cycle once (see ``ocs.renewal``). Exit codes: 0 done, 1 Redis or catalog problem, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from balance.ledger import Ledger
from ocs.catalog_store import stored_catalog
from ocs.commands.account import _connection_options
from ocs.config import ConfigError, load_config
from ocs.ledger_runtime import RedisSetupError, resolve_redis_url
from ocs.renewal import PassStats, Renewer
from tariffs.errors import CatalogError

INTERVAL_S_DEFAULT = 60.0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "renew", help="charge due plan renewals and grant their buckets (one pass, or --loop)"
    )
    parser.add_argument("--tenant", help="only this tenant (default: every tenant)")
    parser.add_argument("--loop", action="store_true", help="repeat every --interval seconds")
    parser.add_argument(
        "--interval", type=float, default=INTERVAL_S_DEFAULT, help="seconds between passes"
    )
    parser.add_argument(
        "--now",
        type=int,
        help="renew as of this epoch second instead of the clock (tests, catching up)",
    )
    _connection_options(parser)
    parser.set_defaults(func=_run)


def _line(tenant: str, stats: PassStats) -> str:
    return (
        f"{tenant}: {stats.due} due, {stats.applied} renewed, {stats.replayed} replayed, "
        f"{stats.stale} renewed already, {stats.unpaid} unpaid (grace or suspended), "
        f"{stats.unknown} unknown product, {stats.failed} failed"
    )


async def _pass(args: argparse.Namespace, url: str, ledger_limits: dict[str, Any]) -> int:
    client = aioredis.Redis.from_url(url, socket_timeout=30.0)
    ledgers: dict[str, Ledger] = {}

    async def ledger_for(tenant: str) -> Ledger:
        return ledgers.setdefault(tenant, Ledger(client, tenant, **ledger_limits))

    stop = asyncio.Event()
    if args.loop:
        # Stopped by its supervisor (ocs up, systemd): finish the pass, then exit 0. A pass cut
        # short would be safe too (every renewal has its op id), but ends without its summary.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    try:
        while not stop.is_set():
            catalog = await stored_catalog(client)
            if catalog is None:
                print("ocs renew: no catalog is stored: run `ocs catalog load`", file=sys.stderr)
                if not args.loop:
                    return 1
                # Under `ocs up` the server stores the catalog moments after this starts.
                await _pause(stop, args.interval)
                continue
            tenants = [t for t in catalog.tenants if args.tenant in (None, t.id)]
            if args.tenant is not None and not tenants:
                print(f"ocs renew: unknown tenant {args.tenant!r}", file=sys.stderr)
                return 2
            renewer = Renewer(ledger_for)
            now = args.now if args.now is not None else int(time.time())
            results = {t.id: await renewer.run_tenant(t, now) for t in tenants}
            # After the renewals, so a bucket they granted is warned of in the same pass.
            warned = {
                t.id: await (await ledger_for(t.id)).warn_expiring(now, t.expiry_warning_s)
                for t in tenants
            }
            if args.json:
                print(
                    json.dumps(
                        {
                            k: {**_as_dict(v), "expiry_warnings": warned[k].warned}
                            for k, v in results.items()
                        }
                    )
                )
            else:
                for tenant, stats in results.items():
                    line = f"{_line(tenant, stats)}, {warned[tenant].warned} expiry warnings"
                    print(line, flush=True)
            if not args.loop:
                return 0
            await _pause(stop, args.interval)
        return 0
    finally:
        await client.aclose()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait until the next pass is due or a stop was asked for, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _as_dict(stats: PassStats) -> dict[str, int]:
    return {name: getattr(stats, name) for name in stats.__struct_fields__}


def _run(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        print("ocs renew: --interval must be positive", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        url = resolve_redis_url(
            args.redis_url or config.redis.url, data_dir=args.data_dir or config.redis.data_dir
        )
        return asyncio.run(_pass(args, url, config.ledger.limits()))
    except ConfigError as exc:
        print(f"ocs renew: {exc}", file=sys.stderr)
        return 2
    except CatalogError as exc:
        print(f"ocs renew: the stored catalog does not validate: {exc}", file=sys.stderr)
        return 1
    except (RedisSetupError, RedisError, OSError) as exc:
        print(f"ocs renew: Redis error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
