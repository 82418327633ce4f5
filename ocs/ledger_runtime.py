"""The Redis the ledger runs on: the embedded private ``redis-server`` (no URL configured) or an
external one (standalone or cluster) whose settings are checked at start-up.

The embedded server's URL is written to ``<data_dir>/redis.url`` so CLI commands run beside a
serving process find it; ``resolve_redis_url`` is the one lookup order they all use.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.connection import parse_url
from redis.exceptions import RedisError

from balance.ledger import Ledger
from balance.replica_wait import ReplicaWait, supports_waitaof
from balance.tenants import provision_tenant, server_version, tenant_password
from ocs.background import PeriodicTask
from ocs.config import LedgerConfig, RedisConfig
from ocs.embedded_redis import EmbeddedRedis

REDIS_URL_FILE = "redis.url"
TENANT_SECRET_FILE = "tenant.secret"
TENANT_SECRET_BYTES = 32
REDIS_URL_ENV = "OCS_REDIS_URL"
REQUIRED_EVICTION_POLICY = "noeviction"
SHORT_WAIT_LOG_S = 10.0  # at most one warning this often while replicas lag behind the WAIT
EMBEDDED_CHECK_S = 0.5  # how often ocs serve checks that its embedded Redis still runs


class RedisSetupError(RuntimeError):
    """Redis cannot be used for the ledger; the message says why and what to do."""


def resolve_redis_url(
    cli_url: str | None,
    *,
    data_dir: str | Path,
    environ: Mapping[str, str] | None = None,
) -> str:
    """``--redis-url``, else ``OCS_REDIS_URL``, else ``<data_dir>/redis.url``, else an error."""
    if cli_url:
        return cli_url
    env = os.environ if environ is None else environ
    if env.get(REDIS_URL_ENV):
        return env[REDIS_URL_ENV]
    url_file = Path(data_dir) / REDIS_URL_FILE
    try:
        url = url_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        url = ""
    if url:
        return url
    raise RedisSetupError(
        f"no Redis to talk to: pass --redis-url, set {REDIS_URL_ENV}, or start `ocs serve` "
        f"(its embedded Redis writes {url_file})"
    )


async def is_cluster(client: aioredis.Redis) -> bool:
    info = await client.info("cluster")
    return bool(int(info.get("cluster_enabled", 0)))


async def check_settings(client: aioredis.Redis | RedisCluster, url: str) -> list[str]:
    """Refuse an evicting Redis; return warnings for weaker-than-advised durability.

    Uses INFO (not CONFIG GET) so it also works on managed Redis where CONFIG is disabled; on a
    cluster every primary is checked.
    """
    infos: list[dict[str, Any]] = []
    if isinstance(client, RedisCluster):
        if not client.get_primaries():
            raise RedisSetupError(f"the Redis Cluster at {url} reports no primaries")
        # One standalone connection per primary: INFO through the cluster client is merged.
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        for node in client.get_primaries():
            node_options = {**options, "host": node.host, "port": node.port}
            node_client = aioredis.Redis(**node_options)
            try:
                infos.append(await node_client.info("all"))
            finally:
                await node_client.aclose()
    else:
        infos.append(await client.info("all"))
    warnings: list[str] = []
    for info in infos:
        policy = str(info.get("maxmemory_policy", REQUIRED_EVICTION_POLICY))
        if policy != REQUIRED_EVICTION_POLICY:
            raise RedisSetupError(
                f"Redis at {url} has maxmemory-policy {policy}: the ledger needs "
                f"{REQUIRED_EVICTION_POLICY} (an evicting Redis may silently drop balances and "
                "reservations). Set `maxmemory-policy noeviction` and start again."
            )
        if not int(info.get("aof_enabled", 0)):
            warnings.append(
                f"Redis at {url} runs without AOF (appendonly no): acknowledged charges may be "
                "lost on a crash"
            )
    return warnings


def load_tenant_secret(data_dir: str | Path) -> bytes:
    """The secret tenant passwords derive from, created (mode 0600) on first use."""
    path = Path(data_dir) / TENANT_SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
        if len(secret) >= 16:
            return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(TENANT_SECRET_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secret.hex())
    return secret


async def connect_admin(url: str, timeout_s: float = 1.0) -> aioredis.Redis | RedisCluster:
    """An admin client for ``url``: a ``RedisCluster`` when the server is in cluster mode."""
    probe = aioredis.Redis.from_url(url, socket_timeout=timeout_s)
    try:
        cluster = await is_cluster(probe)
    except RedisError as exc:
        raise RedisSetupError(f"cannot reach Redis at {url}: {exc}") from exc
    finally:
        await probe.aclose()
    if cluster:
        cluster_client = RedisCluster.from_url(url, socket_timeout=timeout_s)
        try:
            await cluster_client.initialize()  # learn the nodes before anyone lists them
        except RedisError as exc:
            await cluster_client.aclose()
            raise RedisSetupError(f"cannot join the Redis Cluster at {url}: {exc}") from exc
        return cluster_client
    return aioredis.Redis.from_url(url, socket_timeout=timeout_s)


class LedgerRuntime:
    """Start (or connect to) the ledger's Redis, hand out per-tenant ledgers, stop cleanly."""

    def __init__(
        self,
        config: RedisConfig,
        ledger: LedgerConfig | None = None,
        *,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.config = config
        self.log = log
        self.ledger_config = ledger or LedgerConfig()
        self.data_dir = Path(config.data_dir)
        self.embedded: EmbeddedRedis | None = None
        self.url = ""
        self.admin: aioredis.Redis | RedisCluster | None = None
        self.cluster = False
        self.warnings: list[str] = []
        self._ledgers: dict[str, Ledger] = {}
        self._balance_below: dict[str, tuple[int, ...]] = {}
        self._bucket_below: dict[str, tuple[int, ...]] = {}
        self._watchdog: PeriodicTask | None = None
        self.replica_wait: ReplicaWait | None = None
        self._short_logged_at = float("-inf")
        self._short_unlogged = 0

    async def start(self) -> None:
        if self.config.url:
            self.url = self.config.url
        else:
            # The ACL file keeps the tenant users across a restart of the embedded Redis
            # (ACL SETUSER is not in the AOF; provision_tenant saves them with ACL SAVE).
            self.embedded = EmbeddedRedis(
                self.data_dir,
                port=self.config.embedded_port,
                appendfsync=self.config.appendfsync,
                aclfile=True,
            )
            await asyncio.to_thread(self.embedded.start)
            self.url = self.embedded.url
            (self.data_dir / REDIS_URL_FILE).write_text(self.url + "\n", encoding="utf-8")
        self.admin = await connect_admin(self.url, self.config.timeout_s)
        self.cluster = isinstance(self.admin, RedisCluster)
        try:
            self.warnings = await check_settings(self.admin, self.url)
            self.replica_wait = await self._replica_wait(self.admin)
        except BaseException:
            await self.stop()
            raise
        if self.embedded is not None and self.log is not None:
            self._watchdog = PeriodicTask(
                "embedded_redis_watchdog", self._restart_if_dead, EMBEDDED_CHECK_S, self.log
            )
            self._watchdog.start()

    async def _replica_wait(self, admin: aioredis.Redis | RedisCluster) -> ReplicaWait | None:
        """The WAIT of ``redis.wait_replicas``; WAITAOF (``wait_aof``) only where the server
        has it (Redis >= 7.2), else WAIT and a warning."""
        config = self.config
        if config.wait_replicas <= 0:
            return None
        aof = config.wait_aof
        if aof:
            version = await server_version(admin)
            if not supports_waitaof(version):
                aof = False
                self.warnings.append(
                    f"redis.wait_aof: Redis {version} has no WAITAOF (7.2 and later): the "
                    "ledger waits for the replicas to receive each write (WAIT), not to fsync it"
                )
        return ReplicaWait(
            config.wait_replicas, config.wait_timeout_ms, aof=aof, on_short=self._short_wait
        )

    def _short_wait(self, acknowledged: int, calls: int) -> None:
        """Answers left with fewer replica acknowledgements than asked: committed on the
        primary, so answered as charged; counted (metrics) and logged now and then."""
        self._short_unlogged += calls
        now = time.monotonic()
        if self.log is None or now - self._short_logged_at < SHORT_WAIT_LOG_S:
            return
        self._short_logged_at = now
        self.log.warning(
            "ledger_replica_wait_short",
            acknowledged=acknowledged,
            wanted=self.config.wait_replicas,
            answers=self._short_unlogged,
        )
        self._short_unlogged = 0

    def replica_wait_stats(self) -> tuple[int, int, int]:
        """(batches waited for, batches short of replicas, answers in them), for /metrics."""
        wait = self.replica_wait
        return (0, 0, 0) if wait is None else (wait.batches, wait.short_batches, wait.short_calls)

    async def _restart_if_dead(self) -> None:
        """The embedded Redis is ours: if its process died, start it again on the same port
        and directory (it replays its AOF; the ACL file keeps the tenant users)."""
        embedded = self.embedded
        if embedded is None or embedded.running:
            return
        await asyncio.to_thread(embedded.start)
        if self.log is not None:
            self.log.warning("embedded_redis_restarted", url=embedded.url)

    async def ledger_for(self, tenant: str) -> Ledger:
        """The tenant's ledger on its own ACL user (created or refreshed on first use)."""
        ledger = self._ledgers.get(tenant)
        if ledger is not None:
            return ledger
        if self.admin is None:
            raise RedisSetupError("the ledger runtime is not started")
        password = tenant_password(load_tenant_secret(self.data_dir), tenant)
        await provision_tenant(self.admin, tenant, password)
        ledger = Ledger.for_tenant(
            self.url,
            tenant,
            password,
            cluster=self.cluster,
            pool_size=self.config.pool_size,
            timeout_s=self.config.timeout_s,
            repair=functools.partial(self._repair_access, tenant, password),
            replica_wait=self.replica_wait,
            **self.ledger_config.limits(),
            balance_below=self._balance_below.get(tenant, ()),
        )
        ledger.set_bucket_below(self._bucket_below.get(tenant, ()))
        self._ledgers[tenant] = ledger
        return ledger

    def set_notification_levels(
        self,
        levels: Mapping[str, Sequence[int]],
        bucket_percents: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        """Each tenant's "balance below" levels and "bucket below N %" percents from the
        catalog (on load and reload)."""
        self._balance_below = {tenant: tuple(v) for tenant, v in levels.items()}
        self._bucket_below = {t: tuple(v) for t, v in (bucket_percents or {}).items()}
        for tenant, ledger in self._ledgers.items():
            ledger.set_balance_below(self._balance_below.get(tenant, ()))
            ledger.set_bucket_below(self._bucket_below.get(tenant, ()))

    def pool_stats(self) -> list[tuple[str, int, int, int, int, float]]:
        """Per tenant: (tenant, slots, in use, waiting, waits so far, seconds waited so far);
        read by ``/metrics`` at scrape time, nothing is counted per request for it."""
        return [
            (tenant, p.limit, p.inside, p.waiting, p.waits, p.wait_s)
            for tenant, p in ((t, ledger.pool) for t, ledger in self._ledgers.items())
        ]

    async def _repair_access(self, tenant: str, password: str) -> None:
        """Redis refused the tenant's user or lacked the library (restarted, flushed, failed
        over): provision both again on the admin connection. Called by the tenant's ledger."""
        if self.admin is None:
            raise RedisSetupError("the ledger runtime is stopped")
        await provision_tenant(self.admin, tenant, password)
        if self.log is not None:
            self.log.warning("tenant_access_repaired", tenant=tenant)

    async def stop(self) -> None:
        if self._watchdog is not None:
            await self._watchdog.stop()
            self._watchdog = None
        for ledger in self._ledgers.values():
            with contextlib.suppress(RedisError, OSError):
                await ledger.aclose()
        self._ledgers.clear()
        if self.admin is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.admin.aclose()
            self.admin = None
        if self.embedded is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / REDIS_URL_FILE).unlink()
            await asyncio.to_thread(self.embedded.stop)
            self.embedded = None
