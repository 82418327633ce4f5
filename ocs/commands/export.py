"""``ocs export``: drain every tenant's usage streams into the usage store until SIGINT/SIGTERM.

Its own process (never inside ``ocs serve``: charging must not wait on PostgreSQL); several may
run against the same Redis and store. Exit codes: 0 stopped, 1 Redis unusable, 2 bad
configuration. A store that is down is not an exit: the exporter waits and retries (streams
grow meanwhile, see docs/exporter.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from ocs.config import Config, ConfigError, load_config, parse_host_port


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "export",
        help="export rated usage from the Redis streams into the usage store (PostgreSQL)",
        description=(
            "Drain every tenant's record streams into the usage store, exactly once: store, "
            "then XACK, then XTRIM. Metrics and /healthz on [export] listen (default "
            "127.0.0.1:9464)."
        ),
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    parser.add_argument("--redis-url", metavar="URL", help="default: OCS_REDIS_URL, redis.url")
    parser.add_argument(
        "--redis-data-dir", metavar="DIR", help="where redis.url and tenant.secret are"
    )
    parser.add_argument("--store-url", metavar="URL", help="default: OCS_STORE_URL, store.url")
    parser.add_argument("--listen", metavar="HOST:PORT", help="metrics and /healthz")
    parser.add_argument("--batch-size", type=int, metavar="N", help="rows per transaction")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"export": {}, "redis": {}, "log": {}}
    if args.listen:
        host, port = parse_host_port(args.listen, "--listen")
        out["export"].update(listen_host=host, listen_port=port)
    if args.batch_size is not None:
        out["export"]["batch_size"] = args.batch_size
    if args.redis_data_dir:
        out["redis"]["data_dir"] = args.redis_data_dir
    if args.log_level:
        out["log"]["level"] = args.log_level
    return out


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, overrides=overrides_from_args(args))
    except ConfigError as exc:
        print(f"ocs export: {exc}", file=sys.stderr)
        return 2
    from ocs.embedded_postgres import StoreSetupError
    from ocs.exporter import tune_process
    from ocs.ledger_runtime import RedisSetupError

    problems = tune_process(config.export.nice, sched_idle=config.export.sched_idle)
    for problem in problems:
        print(f"ocs export: warning: {problem}", file=sys.stderr)
    try:
        return asyncio.run(_main(config, args.redis_url, args.store_url))
    except (RedisSetupError, StoreSetupError) as exc:
        print(f"ocs export: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _main(config: Config, redis_url: str | None, store_url_arg: str | None) -> int:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster

    from balance.ledger import tenant_username
    from balance.tenants import provision_tenant, tenant_password
    from ocs.exporter import Exporter
    from ocs.http_server import HttpRouter, HttpServer
    from ocs.ledger_runtime import connect_admin, load_tenant_secret, resolve_redis_url
    from ocs.logging_setup import make_logger

    log = make_logger(config.log.level, json=config.log.json)
    export = config.export
    url = resolve_redis_url(redis_url or config.redis.url, data_dir=config.redis.data_dir)
    admin = await connect_admin(url, config.redis.timeout_s)
    cluster = isinstance(admin, RedisCluster)
    secret = load_tenant_secret(config.redis.data_dir)
    # A blocking read must not look like a dead connection.
    socket_timeout_s = export.block_ms / 1000 + config.redis.timeout_s + 5

    async def tenant_client(tenant: str) -> Any:
        password = tenant_password(secret, tenant)
        await provision_tenant(admin, tenant, password)  # refreshes its ACL (xtrim)
        factory: Any = RedisCluster if cluster else aioredis.Redis
        return factory.from_url(
            url,
            username=tenant_username(tenant),
            password=password,
            socket_timeout=socket_timeout_s,
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    store = await _open_store(config, store_url_arg, stop, log)
    if store is None:
        await admin.aclose()
        return 0
    exporter = Exporter(admin, tenant_client, store, export, log)
    exporter.stop_event = stop
    http = HttpServer(HttpRouter(), exporter.metrics, health=exporter.health)
    host, port = await http.start(export.listen_host, export.listen_port)
    log.info("export_started", consumer=exporter.consumer, redis=url, metrics=f"{host}:{port}")
    try:
        await exporter.run()
    finally:
        await http.close()
        for worker in exporter.workers.values():
            with contextlib.suppress(Exception):
                await worker.client.aclose()
        await store.close()
        await admin.aclose()
        log.info("export_stopped", consumer=exporter.consumer)
    return 0


async def _open_store(
    config: Config, store_url_arg: str | None, stop: asyncio.Event, log: Any
) -> Any:
    """The usage store, retried with backoff while it is down (None: stopped meanwhile)."""
    from ocs.store_runtime import open_usage_store, store_url
    from usage.export_core import Backoff
    from usage.store import StoreUnavailable

    url = store_url(config.store, store_url_arg)
    backoff = Backoff(max_s=config.export.retry_max_s)
    while not stop.is_set():
        try:
            return await open_usage_store(
                url, config.store, "ocs-export", _backend_niceness(config.export, log)
            )
        except StoreUnavailable as exc:
            delay = backoff.failed()
            log.warning("export_store_unavailable", error=str(exc), retry_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return None


def _backend_niceness(export: Any, log: Any) -> Any:
    """The pool's per-connection hook that renices the exporter's own PostgreSQL backends
    (``[export] store_backend_nice``; None when 0): on a store of this host only."""
    from ocs.exporter import local_store_host, renice_backend

    nice = export.store_backend_nice
    if nice <= 0:
        return None

    warned: list[str] = []

    async def configure(conn: Any) -> None:
        if not local_store_host(conn.info.host):
            return
        problem = renice_backend(conn.info.backend_pid, nice)
        if problem is not None and not warned:  # once: every connection would say the same
            warned.append(problem)
            log.warning("export_backend_renice_failed", problem=problem, store_backend_nice=nice)

    return configure
