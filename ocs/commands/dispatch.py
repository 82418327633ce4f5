"""``ocs dispatch``: deliver the ledger's events to the plug-ins of a dispatch file, until
SIGTERM/SIGINT. Exit codes: 0 stopped, 1 Redis unreachable, 2 bad dispatch file or options.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from ocs.dispatch_config import DispatchConfigError, load_dispatch_file
from ocs.dispatcher import Dispatcher, DispatchMetrics
from ocs.ledger_runtime import RedisSetupError, resolve_redis_url
from ocs.plugins import Plugin, PluginConfigError, find_factory

DEFAULT_DATA_DIR = "var/redis"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "dispatch",
        help="deliver provisioning events and notifications to plug-ins (runs until stopped)",
        description="Reads every shard's event stream with one consumer group per plug-in of "
        "the dispatch file; at-least-once, event id as idempotency key. See docs/events.md.",
    )
    add_redis_options(parser)
    parser.add_argument("--plugins", required=True, metavar="FILE", help="the dispatch YAML file")
    parser.add_argument(
        "--consumer",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="this worker's consumer name (default host-pid; keep it across restarts to resume "
        "its own unacknowledged events at once instead of after claim_idle_s)",
    )
    parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics (0: off)")
    parser.add_argument("--metrics-host", default="127.0.0.1")
    parser.set_defaults(func=_run)


def add_redis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url", help="admin Redis URL (default: OCS_REDIS_URL, then <data-dir>/redis.url)"
    )
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="the embedded Redis' dir")


def redis_url(args: argparse.Namespace) -> str:
    return resolve_redis_url(args.redis_url, data_dir=args.data_dir)


async def _serve(args: argparse.Namespace, url: str) -> None:
    config = load_dispatch_file(args.plugins)
    plugins: dict[str, Plugin] = {}
    try:
        for spec in config.plugins:
            try:
                plugins[spec.name] = find_factory(spec.kind)(spec.options)
            except PluginConfigError as exc:
                raise DispatchConfigError(f"{args.plugins}: plugin {spec.name}: {exc}") from None
        metrics = DispatchMetrics()
        if args.metrics_port:
            start_http_server(args.metrics_port, args.metrics_host, registry=metrics.registry)
        client = aioredis.Redis.from_url(url, socket_timeout=10.0)
        await client.ping()
        dispatcher = Dispatcher(client, config, plugins, consumer=args.consumer, metrics=metrics)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"ocs dispatch: {len(plugins)} plug-in(s), consumer {args.consumer}", file=sys.stderr)
        try:
            await dispatcher.run(stop)
        finally:
            dispatcher.close()
            await client.aclose()
    finally:
        for plugin in plugins.values():
            await plugin.aclose()


def _run(args: argparse.Namespace) -> int:
    try:
        url = redis_url(args)
        asyncio.run(_serve(args, url))
    except DispatchConfigError as exc:
        print(f"ocs dispatch: {exc}", file=sys.stderr)
        return 2
    except RedisSetupError as exc:
        print(f"ocs dispatch: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"ocs dispatch: Redis error: {exc}", file=sys.stderr)
        return 1
    return 0
