"""``ocs api``: serve the operator / portfolio API and dashboards (Litestar under uvicorn), and
``ocs apikey create|list|revoke``: the keys it accepts.

Exit codes: 0 done, 1 the store or Redis failed or refused, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from redis.exceptions import RedisError

from ocs.api.keys import (
    KEY_ROLES,
    KeyError_,
    create_key,
    list_keys,
    revoke_key,
    sync_proxy_keys,
)
from ocs.config import Config, ConfigError, load_config
from ocs.embedded_postgres import StoreSetupError
from ocs.ledger_runtime import LedgerRuntime, RedisSetupError, resolve_redis_url
from ocs.store_runtime import open_usage_store, store_url
from usage.store import StoreError, UsageStore


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config ([api], [store], [redis])")
    parser.add_argument("--store-url", metavar="URL", help="PostgreSQL URL (default: as ocs store)")
    parser.add_argument("--redis-url", metavar="URL", help="Redis URL (default: as ocs account)")


def register(sub: Any) -> None:
    api = sub.add_parser("api", help="serve the operator/portfolio HTTP API and dashboards")
    _options(api)
    api.add_argument("--listen", metavar="HOST:PORT", help="default: api.listen (127.0.0.1:8480)")
    api.set_defaults(func=_serve)

    keys = sub.add_parser("apikey", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser("create", help="make a key (printed once, stored hashed)")
    _options(create)
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--scope", choices=["portfolio"], help="the MVNA's portfolio key")
    scope.add_argument("--tenant", action="append", help="a tenant the key reaches (repeatable)")
    create.add_argument(
        "--role",
        choices=KEY_ROLES,
        required=True,
        help="read, operate, admin: the API; proxy: a SIP proxy's key for ocs serve's "
        "call-end/reauth endpoints of its --tenant(s) only",
    )
    create.add_argument("--expires", type=int, metavar="DAYS", help="default api.key_expires_days")
    create.add_argument("--label", default="", help="a note shown by `list`")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=_keys)
    listing = actions.add_parser("list", help="every key (id, scope, role, expiry, revoked)")
    _options(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_keys)
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    _options(revoke)
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_keys)


@asynccontextmanager
async def _store(config: Config, args: argparse.Namespace) -> AsyncIterator[UsageStore]:
    url = store_url(config.store, args.store_url)
    store = await open_usage_store(url, config.store, "ocs-api")
    try:
        yield store
    finally:
        await store.close()


def _fail(message: str, code: int) -> int:
    print(f"ocs {message}", file=sys.stderr)
    return code


async def _sync_proxy_keys(store: UsageStore, config: Config, args: argparse.Namespace) -> int:
    """Copy the usable proxy keys to the ledger's Redis, where ``ocs serve`` checks them."""
    import redis.asyncio as aioredis

    url = resolve_redis_url(args.redis_url or config.redis.url, data_dir=config.redis.data_dir)
    client = aioredis.Redis.from_url(url, socket_timeout=5.0)
    try:
        return await sync_proxy_keys(store, client)
    finally:
        await client.aclose()


async def _key_action(args: argparse.Namespace, config: Config) -> int:
    async with _store(config, args) as store:
        if args.action == "create":
            key, secret = await create_key(
                store,
                tenants=tuple(args.tenant or ()),
                role=args.role,
                expires_days=args.expires or config.api.key_expires_days,
                label=args.label,
            )
            if key.role == "proxy":
                await _sync_proxy_keys(store, config, args)
            if args.json:
                print(json.dumps({**msgspec.to_builtins(key), "key": secret}, indent=2))
            else:
                scope = (
                    "portfolio" if key.scope == "portfolio" else "tenant " + ",".join(key.tenants)
                )
                print(f"key id   {key.key_id}\nscope    {scope}\nrole     {key.role}")
                print(f"expires  {key.expires_at.isoformat()}")
                print(f"\n{secret}\n\nshown once: only its SHA-256 is stored")
            return 0
        if args.action == "list":
            keys = await list_keys(store)
            if args.json:
                print(json.dumps(msgspec.to_builtins(keys), indent=2))
                return 0
            print(f"{'key id':<13} {'scope':<24} {'role':<8} {'expires':<26} revoked")
            for k in keys:
                scope = "portfolio" if k.scope == "portfolio" else ",".join(k.tenants)
                revoked = k.revoked_at.isoformat() if k.revoked_at else "-"
                expires = k.expires_at.isoformat()
                print(f"{k.key_id:<13} {scope:<24} {k.role:<8} {expires:<26} {revoked}")
            return 0
        done = await revoke_key(store, args.key_id)
        await _sync_proxy_keys(store, config, args)  # a revoked proxy key leaves ocs serve
        print(f"key {args.key_id} " + ("revoked" if done else "was already revoked"))
        return 0


def _keys(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        return asyncio.run(_key_action(args, config))
    except (ConfigError, KeyError_) as exc:
        return _fail(f"apikey {args.action}: {exc}", 2)
    except (StoreError, StoreSetupError) as exc:
        return _fail(f"apikey {args.action}: {exc}", 1)
    except (RedisError, RedisSetupError, OSError) as exc:
        # The store has the change; ocs serve's copy catches up at the next ocs api start.
        return _fail(f"apikey {args.action}: done in the store, but the proxy keys' copy in "
                     f"Redis was not updated: {exc}", 1)  # fmt: skip


async def open_state(config: Config, args: argparse.Namespace) -> Any:
    """The ApiState of a process: the store and the ledger's Redis (never started here)."""
    from ocs.api.state import ApiState

    url = resolve_redis_url(args.redis_url or config.redis.url, data_dir=config.redis.data_dir)
    runtime = LedgerRuntime(msgspec.structs.replace(config.redis, url=url), config.ledger)
    await runtime.start()
    try:
        store = await open_usage_store(
            store_url(config.store, args.store_url), config.store, "ocs-api"
        )
    except BaseException:
        await runtime.stop()
        raise
    return ApiState(config, store, runtime)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ocs.api.app import build_app
    from ocs.config import parse_host_port

    try:
        overrides = {"api": {"listen": args.listen}} if args.listen else None
        config = load_config(args.config, overrides=overrides)
        host, port = parse_host_port(config.api.listen, "api.listen")
    except ConfigError as exc:
        return _fail(f"api: {exc}", 2)

    class Server(uvicorn.Server):
        """uvicorn re-raises a captured SIGTERM after its shutdown (the process then dies of
        the signal); here SIGINT/SIGTERM are a clean stop with exit code 0."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    async def run() -> None:
        from ocs.api.imports import ImportRunner

        state = await open_state(config, args)
        await sync_proxy_keys(state.store, state.admin)  # a copy lost with Redis comes back
        # Bulk imports run in this process's background (any API process may take a job).
        runner = ImportRunner(state)
        state.wake_imports = runner.wake
        worker = asyncio.create_task(runner.run_forever(), name="imports")
        try:
            server = Server(
                uvicorn.Config(
                    build_app(state),
                    host=host,
                    port=port,
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                )
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
            await server.serve()
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await state.store.close()
            await state.ledgers.stop()

    try:
        asyncio.run(run())
    except (StoreError, StoreSetupError, RedisSetupError, RedisError, OSError) as exc:
        return _fail(f"api: {exc}", 1)
    except KeyboardInterrupt:
        return 0
    return 0
