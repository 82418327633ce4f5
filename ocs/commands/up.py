"""``ocs up``: the whole product on one machine (what ``make run`` runs).

Starts the embedded Redis and the embedded PostgreSQL once (unless external URLs are given),
writes their URL files where every ``ocs`` command looks (``var/redis/redis.url``,
``var/pg/store.url``), then runs the processes as children: ``ocs serve`` (charging; never
touches the store), ``ocs export`` (streams → store), ``ocs api`` and, given a dispatch file
(``--dispatch FILE``; there is no default one: the plug-ins and their endpoints are the
operator's), ``ocs dispatch`` (event streams → plug-ins, docs/events.md). A child that dies
is restarted with backoff; SIGINT/SIGTERM stops the children (gracefully, then SIGKILL), then
the databases. Exit codes: 0 stopped, 1 a database could not start, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from ocs.config import Config, ConfigError, load_config

REDIS_URL_FILE = "redis.url"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "up",
        help="run everything: embedded Redis + PostgreSQL, ocs serve, export, api and renew",
        description=(
            "Start the embedded Redis (var/redis) and PostgreSQL (var/pg) unless --redis-url / "
            "--store-url are given, then run `ocs serve`, `ocs export`, `ocs api` and "
            "`ocs renew --loop` as child processes (and `ocs dispatch` given --dispatch FILE), "
            "restarting a crashed one; "
            "Ctrl-C or SIGTERM stops them all."
        ),
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file (passed to children)")
    parser.add_argument("--catalog", metavar="PATH", help="catalog YAML file or directory")
    parser.add_argument("--redis-url", metavar="URL", help="external Redis instead of embedded")
    parser.add_argument("--redis-data-dir", metavar="DIR", help="default var/redis")
    parser.add_argument("--store-url", metavar="URL", help="external PostgreSQL")
    parser.add_argument("--store-data-dir", metavar="DIR", help="default var/pg")
    parser.add_argument("--diameter-listen", metavar="HOST:PORT", help="ocs serve's Diameter")
    parser.add_argument("--http-listen", metavar="HOST:PORT", help="ocs serve's HTTP")
    parser.add_argument("--sip-listen", metavar="HOST:PORT", help="ocs serve's SIP")
    parser.add_argument("--no-sip", action="store_true", help="ocs serve without SIP")
    parser.add_argument("--export-listen", metavar="HOST:PORT", help="the exporter's metrics")
    parser.add_argument("--no-export", action="store_true", help="do not run ocs export")
    parser.add_argument(
        "--api-listen", metavar="HOST:PORT", help="ocs api (default 127.0.0.1:8480)"
    )
    parser.add_argument("--no-api", action="store_true", help="do not run ocs api")
    parser.add_argument(
        "--no-renew", action="store_true", help="do not run the renewal scheduler (ocs renew)"
    )
    parser.add_argument(
        "--dispatch",
        metavar="FILE",
        help="run ocs dispatch with this dispatch YAML file (docs/events.md); none by default",
    )
    parser.add_argument("--no-dispatch", action="store_true", help="do not run ocs dispatch")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.set_defaults(func=run)


def child_specs(
    args: argparse.Namespace, redis_url: str, redis_dir: str, store_url: str
) -> list[Any]:
    """The children and their command lines (same interpreter, explicit URLs)."""
    from ocs.supervisor import ChildSpec

    base = [sys.executable, "-m", "ocs"]
    common = ["--redis-url", redis_url, "--redis-data-dir", redis_dir]
    if args.config:
        common += ["--config", args.config]
    if args.log_level:
        common += ["--log-level", args.log_level]
    serve = [*base, "serve", *common]
    for flag, value in (
        ("--catalog", args.catalog),
        ("--diameter-listen", args.diameter_listen),
        ("--http-listen", args.http_listen),
        ("--sip-listen", args.sip_listen),
    ):
        if value:
            serve += [flag, value]
    if args.no_sip:
        serve.append("--no-sip")
    specs = [ChildSpec("serve", tuple(serve))]
    if not args.no_export:
        export = [*base, "export", *common, "--store-url", store_url]
        if args.export_listen:
            export += ["--listen", args.export_listen]
        specs.append(ChildSpec("export", tuple(export)))
    if not args.no_api:
        api = [*base, "api", "--redis-url", redis_url, "--store-url", store_url]
        if args.config:
            api += ["--config", args.config]
        if args.api_listen:
            api += ["--listen", args.api_listen]
        specs.append(ChildSpec("api", tuple(api)))
    if not args.no_renew:
        # The renewal scheduler: plan and add-on renewals, then bundle expiry warnings, every
        # minute; safe beside other schedulers (each renewal is one ledger call with its op id).
        renew = [*base, "renew", "--loop", "--redis-url", redis_url, "--data-dir", redis_dir]
        if args.config:
            renew += ["--config", args.config]
        specs.append(ChildSpec("renew", tuple(renew)))
    if args.dispatch and not args.no_dispatch:
        # A fixed consumer name: a restarted dispatcher resumes its own unacknowledged events
        # at once instead of waiting claim_idle_s for another consumer to claim them.
        dispatch = [*base, "dispatch", "--redis-url", redis_url, "--plugins", args.dispatch]
        dispatch += ["--consumer", f"up-{socket.gethostname()}"]
        specs.append(ChildSpec("dispatch", tuple(dispatch)))
    return specs


def _without_password(url: str) -> str:
    """A URL fit for a log line: its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, dict[str, Any]] = {"redis": {}, "store": {}, "log": {}}
    if args.redis_data_dir:
        overrides["redis"]["data_dir"] = args.redis_data_dir
    if args.store_data_dir:
        overrides["store"]["data_dir"] = args.store_data_dir
    if args.log_level:
        overrides["log"]["level"] = args.log_level
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"ocs up: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_main(args, config))


async def _main(args: argparse.Namespace, config: Config) -> int:
    from ocs.embedded_postgres import EmbeddedPostgresError, StoreSetupError
    from ocs.embedded_redis import EmbeddedRedis, EmbeddedRedisError
    from ocs.logging_setup import make_logger
    from ocs.store_runtime import start_embedded_store
    from ocs.supervisor import Supervisor

    log = make_logger(config.log.level, json=config.log.json)
    redis_dir = Path(config.redis.data_dir)
    redis: EmbeddedRedis | None = None
    store: Any = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        redis_url = args.redis_url or config.redis.url
        if not redis_url:
            redis = EmbeddedRedis(
                redis_dir, port=config.redis.embedded_port, appendfsync=config.redis.appendfsync
            )
            await asyncio.to_thread(redis.start)
            redis_url = redis.url
            (redis_dir / REDIS_URL_FILE).write_text(redis_url + "\n", encoding="utf-8")
        store_url = args.store_url or config.store.url
        if not store_url and not (args.no_export and args.no_api):
            store = await asyncio.to_thread(start_embedded_store, config.store)
            store_url = store.url
        log.info("up_databases", redis=redis_url, store=_without_password(store_url or ""))
        supervisor = Supervisor(child_specs(args, redis_url, str(redis_dir), store_url or ""), log)
        runner = asyncio.create_task(supervisor.run())
        await stop.wait()
        supervisor.stop_event.set()
        await runner
        return 0
    except (EmbeddedRedisError, EmbeddedPostgresError, StoreSetupError, OSError) as exc:
        print(f"ocs up: {exc}", file=sys.stderr)
        return 1
    finally:
        if store is not None:
            await asyncio.to_thread(store.stop)
        if redis is not None:
            (redis_dir / REDIS_URL_FILE).unlink(missing_ok=True)
            await asyncio.to_thread(redis.stop)
        log.info("up_stopped")
