"""``ocs export``'s asyncio adapter: every tenant's 1,024 shard streams drained into the usage
store, exactly once (decisions in ``usage/export_core.py``; guarantees in docs/exporter.md).

One worker per tenant, on that tenant's Redis ACL user, in one consumer group shared by every
exporter process (consumer names are unique per process, so several exporters split the
entries). The streams are polled (``usage.export_core.PollPace``): a standalone Redis with one
XREADGROUP over all 1,024 streams, a cluster (where one command cannot span slots) with a
pipeline that redis-py groups by node; again at once while there is a backlog, after
``linger_ms`` while the export keeps up, up to ``block_ms`` apart while idle. Per batch: store (one
transaction, idempotent on the entry id) → XACK → XTRIM MINID below the oldest entry that is
not acknowledged. Entries whose exporter died stay pending until another one claims them
(XAUTOCLAIM past ``claim_idle_ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Any, Protocol

import msgspec
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from balance import keys
from balance.records import LedgerRecord
from ocs.catalog_store import stored_catalog
from ocs.config import ExportConfig
from tariffs.errors import CatalogError
from tariffs.model import Catalog
from usage.export_core import (
    Backoff,
    Entry,
    PollPace,
    ReadPlan,
    TenantLag,
    acks_by_stream,
    copy_rows,
    degraded,
    later_id,
    stream_of,
    trim_point,
    trim_point_after_ack,
    vshard_of,
)

Log = structlog.typing.FilteringBoundLogger
_DECODER = msgspec.msgpack.Decoder(LedgerRecord)
# Commands per pipeline when touching many streams (1,024 per tenant).
PIPELINE_MAX = 256
# Allocations between young collections in an exporter process (the default is 700).
GC_GEN0_OBJECTS = 50_000


class UsageSink(Protocol):
    """Where rows go: ``usage.store.UsageStore`` (idempotent on (tenant, vshard, entry_id))."""

    async def ensure_tenant(self, tenant: str) -> object: ...

    async def store_values(
        self, by_month: Mapping[date, Sequence[tuple[Any, ...]]], tenants: Iterable[str]
    ) -> int:
        """Insert COPY rows in one transaction; the number newly inserted (the rest were
        there)."""
        ...


class ExportMetrics:
    """The exporter's Prometheus series (its own registry; labels are catalog tenant ids)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stored = Counter(
            "ocs_export_records_stored", "Records newly stored", ["tenant"], registry=r
        )
        self.duplicates = Counter(
            "ocs_export_duplicates_skipped",
            "Records delivered again and found already stored (crash between commit and ack)",
            ["tenant"],
            registry=r,
        )
        self.batches = Counter("ocs_export_batches", "Batches committed", ["tenant"], registry=r)
        self.failures = Counter(
            "ocs_export_failures",
            "Failed steps (store, redis, decode)",
            ["tenant", "stage"],
            registry=r,
        )
        self.claimed = Counter(
            "ocs_export_claimed", "Entries claimed from a dead exporter", ["tenant"], registry=r
        )
        self.lag_entries = Gauge(
            "ocs_export_lag_entries", "Records in the tenant's streams not yet stored", ["tenant"],
            registry=r,
        )  # fmt: skip
        self.lag_seconds = Gauge(
            "ocs_export_lag_seconds", "Age of the oldest record not yet stored", ["tenant"],
            registry=r,
        )  # fmt: skip
        self.bound_exceeded = Gauge(
            "ocs_export_stream_bound_exceeded",
            "1 when the tenant's streams hold more than [export] stream_bound_records (alert)",
            ["tenant"],
            registry=r,
        )
        self.store_up = Gauge("ocs_export_store_up", "0 while store writes fail", registry=r)
        self.store_ok = True
        self.store_up.set(1)

    def store_state(self, ok: bool) -> None:
        if ok != self.store_ok:
            self.store_ok = ok
            self.store_up.set(1 if ok else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def consumer_name() -> str:
    """Unique per process: a restarted exporter never inherits a dead one's pending entries
    silently (they are claimed once idle, by whoever gets there first)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _entries(reply: Any, found: dict[int, int] | None = None) -> list[Entry]:
    """XREADGROUP / XAUTOCLAIM stream lists → entries (undecodable ones with record None);
    ``found`` gets the number of entries per shard."""
    out: list[Entry] = []
    for name, items in reply or []:
        shard = vshard_of(_text(name))
        if found is not None:
            found[shard] = found.get(shard, 0) + len(items)
        for entry_id, fields in items:
            payload = fields.get(b"r") if fields else None
            record: LedgerRecord | None = None
            if payload is not None:
                try:
                    record = _DECODER.decode(payload)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    record = None  # reported and kept pending by the export step
            out.append(Entry(shard, _text(entry_id), record))
    return out


def tune_process(nice: int, *, sched_idle: bool = False) -> list[str]:
    """Settings of an exporter process (never of ``ocs serve``'s: only for a process that
    does nothing but export); returns what could not be applied (logged by the caller).

    CPU priority: exporting is background work. ``nice`` alone still leaves the exporter a
    share of a busy CPU (nice 10 weighs about a tenth of nice 0), enough to raise the CCR p99 of
    an ``ocs serve`` on the same cores; under SCHED_IDLE (``sched_idle``, Linux) it runs only
    when nothing else wants the CPU, and its lag absorbs the difference. The garbage
    collector: a batch makes tens of thousands of small objects that all live until the batch
    commits, so the default thresholds run a full collection every few batches over everything
    alive; the objects of start-up are frozen (never scanned again) and young collections run
    50 times less often. Nothing the exporter keeps forms reference cycles, so memory stays
    bounded by the batches in flight."""
    problems: list[str] = []
    if nice > 0:
        os.nice(nice)
    if sched_idle:
        if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
            try:
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            except OSError as exc:
                problems.append(f"SCHED_IDLE: {exc}")
        else:
            problems.append("SCHED_IDLE: not available on this platform")
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_OBJECTS, 20, 100)
    return problems


def renice_backend(pid: int, nice: int) -> str | None:
    """Set a PostgreSQL backend of this exporter to ``nice`` (absolute), when it runs on this
    host under a user we may renice (the embedded private PostgreSQL); the reason when not.
    A remote store's backends are the database host's business (docs/exporter.md)."""
    try:
        # The pid is the server's: only a PostgreSQL process of this host is ours to renice.
        with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
            if not comm.read().startswith("postgres"):
                return f"process {pid} is not a local PostgreSQL backend"
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
    except OSError as exc:
        return f"backend {pid}: {exc}"
    return None


def local_store_host(host: str) -> bool:
    """Whether a connection's host is this machine (a Unix socket or loopback)."""
    return host.startswith("/") or host in ("localhost", "127.0.0.1", "::1", "")


class TenantWorker:
    """Drains one tenant's streams into the sink until ``stop`` is set."""

    def __init__(
        self,
        tenant: str,
        client: Any,
        sink: UsageSink,
        config: ExportConfig,
        metrics: ExportMetrics,
        log: Log,
        *,
        consumer: str,
        service_units: Mapping[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant = keys.check_tenant(tenant)
        self.client = client
        self.sink = sink
        self.config = config
        self.metrics = metrics
        self.log = log.bind(tenant=tenant)
        self.consumer = consumer
        self.service_units = dict(service_units)
        self.clock = clock
        self.cluster = isinstance(client, RedisCluster)
        self.streams = [stream_of(tenant, v) for v in range(keys.VSHARDS)]
        self.lag = TenantLag()
        self._pace = PollPace(
            config.linger_ms / 1000.0, config.block_ms / 1000.0, config.batch_size
        )
        self._plan = ReadPlan(
            keys.VSHARDS, config.read_count, config.read_streams_max, config.read_entries_max
        )
        self._backoff = Backoff(max_s=config.retry_max_s)
        self._next_claim_s = 0.0
        self._next_trim_s = 0.0
        # Batches being stored: up to store_concurrency, so PostgreSQL inserts one batch while
        # this process reads and converts the next.
        self._inflight: set[asyncio.Task[bool]] = set()
        # Shards acknowledged in since the last trim, with the highest id acknowledged.
        self._dirty: dict[int, str] = {}

    # -- Redis steps ----------------------------------------------------------------------------

    async def _pipelined(
        self, build: Callable[[Any, str], object], streams: Sequence[str]
    ) -> list[Any]:
        results: list[Any] = []
        for start in range(0, len(streams), PIPELINE_MAX):
            pipe = self.client.pipeline(transaction=False)
            for stream in streams[start : start + PIPELINE_MAX]:
                build(pipe, stream)
            results.extend(await pipe.execute(raise_on_error=False))
        return results

    async def ensure_groups(self) -> None:
        """The group on every shard stream (created empty where the shard has no records yet,
        from id 0 so records written before the first exporter started are exported too)."""
        group = self.config.group
        replies = await self._pipelined(
            lambda pipe, s: pipe.xgroup_create(s, group, id="0", mkstream=True), self.streams
        )
        for reply in replies:
            if isinstance(reply, ResponseError) and "BUSYGROUP" not in str(reply):
                raise reply
            if isinstance(reply, Exception) and not isinstance(reply, ResponseError):
                raise reply

    async def read(self) -> list[Entry]:
        """New entries, without waiting, in the bounded commands ``ReadPlan`` says, one at a
        time (not pipelined: Redis serves CCRs between them). A cluster, where one command
        cannot span slots: one XREADGROUP per stream, pipelined by node."""
        group = self.config.group
        out: list[Entry] = []
        for command in self._plan.next_read():
            shards, count = command
            streams = [self.streams[shard] for shard in shards]
            found: dict[int, int] = {}
            if not self.cluster:
                reply = await self.client.xreadgroup(
                    group, self.consumer, dict.fromkeys(streams, ">"), count=count
                )
                out.extend(_entries(reply, found))
            else:
                replies = await self._pipelined(
                    lambda pipe, s, c=count: pipe.xreadgroup(  # type: ignore[misc]
                        group, self.consumer, {s: ">"}, count=c
                    ),
                    streams,
                )
                for reply in replies:
                    if isinstance(reply, Exception):
                        raise reply
                    out.extend(_entries(reply, found))
            self._plan.delivered(command, found)
        return out

    async def claim(self) -> list[Entry]:
        """Entries pending longer than ``claim_idle_ms`` with any consumer (a dead exporter's),
        now ours."""
        group = self.config.group
        summaries = await self._pipelined(lambda pipe, s: pipe.xpending(s, group), self.streams)
        busy = [
            s for s, info in zip(self.streams, summaries, strict=True)
            if isinstance(info, dict) and info.get("pending")
        ]  # fmt: skip
        replies = await self._pipelined(
            lambda pipe, s: pipe.xautoclaim(
                s, group, self.consumer, self.config.claim_idle_ms, "0-0",
                count=self.config.read_count,
            ),
            busy,
        )  # fmt: skip
        claimed: list[Entry] = []
        for stream, reply in zip(busy, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            claimed.extend(_entries([(stream, reply[1])]))
        if claimed:
            self.metrics.claimed.labels(self.tenant).inc(len(claimed))
            self.log.info("export_claimed", entries=len(claimed))
        return claimed

    async def ack(self, entries: Sequence[Entry]) -> None:
        """XACK what is stored; its streams are trimmed by the next trim pass (at most
        ``trim_interval_ms`` later: one pass per interval instead of one per batch)."""
        group = self.config.group
        by_shard = acks_by_stream(entries)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in by_shard.items():
            # As bytes, encoded in one call: redis-py encodes str arguments one by one, which
            # was a tenth of the exporter's CPU per record (an id is ASCII without "\n").
            pipe.xack(self.streams[shard], group, *"\n".join(ids).encode().split(b"\n"))
        await pipe.execute()
        dirty = self._dirty
        for shard, ids in by_shard.items():
            # The last id of a shard is its highest (a stream delivers in id order and a batch
            # comes from one read); were it not, trimming up to it would only trim less.
            known = dirty.get(shard)
            dirty[shard] = ids[-1] if known is None else later_id(known, ids[-1])

    async def trim_dirty(self) -> None:
        """XTRIM the streams acknowledged in since the last pass, below their oldest pending
        entry or up to what we acknowledged (``trim_point_after_ack``: one XPENDING per
        stream, no XINFO)."""
        dirty, self._dirty = self._dirty, {}
        if not dirty:
            return
        shards = sorted(dirty)
        group = self.config.group
        summaries = await self._pipelined(
            lambda pipe, s: pipe.xpending(s, group), [self.streams[v] for v in shards]
        )
        pipe = self.client.pipeline(transaction=False)
        for shard, pending in zip(shards, summaries, strict=True):
            if isinstance(pending, Exception):
                continue  # retried by the lag pass (which trims every non-empty stream)
            oldest = _text(pending["min"]) if pending.get("pending") else None
            point = trim_point_after_ack(dirty[shard], oldest)
            pipe.xtrim(self.streams[shard], minid=point, approximate=False)
        if len(pipe):
            await pipe.execute()

    async def trim(self, streams: Sequence[str]) -> None:
        """XTRIM each stream below its oldest pending entry or, with nothing pending, up to the
        group's last delivered entry: whichever exporter acknowledges last trims what the
        others acknowledged before it, and the lag pass trims what a crash between XACK and
        XTRIM left behind."""
        group = self.config.group
        replies = await self._pipelined(
            lambda pipe, s: (pipe.xpending(s, group), pipe.xinfo_groups(s)), streams
        )
        pipe = self.client.pipeline(transaction=False)
        trimming = False
        for index, stream in enumerate(streams):
            pending, groups = replies[2 * index], replies[2 * index + 1]
            if isinstance(pending, Exception) or isinstance(groups, Exception):
                continue  # a stream without our group yet: nothing of it was delivered
            delivered = next(
                (_text(g["last-delivered-id"]) for g in groups if _text(g["name"]) == group), ""
            )
            if not delivered or delivered == "0-0":
                continue
            oldest = _text(pending["min"]) if pending.get("pending") else None
            # Exact (not ~): an approximate trim removes only whole 100-entry nodes, which
            # under a steady flow leaves up to a node of stored entries in every stream.
            pipe.xtrim(stream, minid=trim_point(delivered, oldest), approximate=False)
            trimming = True
        if trimming:
            await pipe.execute()

    async def measure_lag(self) -> TenantLag:
        """Entries left in the streams and the oldest one's age (after trimming what is
        stored but was left untrimmed)."""
        lengths = await self._pipelined(lambda pipe, s: pipe.xlen(s), self.streams)
        busy = [s for s, n in zip(self.streams, lengths, strict=True) if isinstance(n, int) and n]
        lengths, oldest = [], []
        if busy:
            # Also what the worker has not trimmed: acknowledged entries a crash left behind,
            # and the streams of a worker waiting for the store (its loop is held meanwhile).
            for stream in busy:
                self._dirty.pop(vshard_of(stream), None)
            await self.trim(busy)
            lengths = await self._pipelined(lambda pipe, s: pipe.xlen(s), busy)
            firsts = await self._pipelined(lambda pipe, s: pipe.xrange(s, count=1), busy)
            oldest = [_text(f[0][0]) for f in firsts if isinstance(f, list) and f]
        self.lag = TenantLag.of(
            [n if isinstance(n, int) else 0 for n in lengths], oldest, self.clock()
        )
        self.metrics.lag_entries.labels(self.tenant).set(self.lag.entries)
        self.metrics.lag_seconds.labels(self.tenant).set(self.lag.oldest_s)
        exceeded = self.lag.entries > self.config.stream_bound_records
        self.metrics.bound_exceeded.labels(self.tenant).set(1 if exceeded else 0)
        return self.lag

    # -- the loop -------------------------------------------------------------------------------

    async def export(self, entries: Sequence[Entry], stop: asyncio.Event) -> bool:
        """Store and ack one batch; the store is retried with backoff until it takes it. False
        when stopped first (the entries stay pending: claimed after a restart)."""
        by_month, bad = copy_rows(self.tenant, entries, self.service_units)
        rows = len(entries) - len(bad)
        if bad:
            # Kept pending in their streams (never acknowledged, never trimmed past) and loud:
            # a record this exporter cannot read is a bug to fix, not data to drop.
            self.metrics.failures.labels(self.tenant, "decode").inc(len(bad))
            self.log.error("export_undecodable", entries=[(e.vshard, e.entry_id) for e in bad])
        good = [e for e in entries if e not in bad] if bad else list(entries)
        while True:
            try:
                inserted = await self.sink.store_values(by_month, (self.tenant,)) if rows else 0
            except Exception as exc:
                self.metrics.failures.labels(self.tenant, "store").inc()
                self.metrics.store_state(False)
                delay = self._backoff.failed()
                self.log.warning("export_store_failed", error=repr(exc), retry_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return False
                continue
            break
        self._backoff.succeeded()
        self.metrics.store_state(True)
        self.metrics.stored.labels(self.tenant).inc(inserted)
        self.metrics.duplicates.labels(self.tenant).inc(rows - inserted)
        self.metrics.batches.labels(self.tenant).inc()
        if good:
            try:
                await self.ack(good)
            except (RedisError, OSError) as exc:
                # Stored but not acknowledged: still pending, so claimed again once idle and
                # then refused by the store as duplicates. Nothing lost, nothing doubled.
                self.metrics.failures.labels(self.tenant, "redis").inc()
                self.log.warning("export_ack_failed", error=repr(exc))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        await self.ensure_groups()
        await self.sink.ensure_tenant(self.tenant)
        backoff = Backoff(max_s=self.config.retry_max_s)
        while not stop.is_set():
            try:
                await self._step(stop)
                backoff.succeeded()
            except (RedisError, OSError) as exc:
                self.metrics.failures.labels(self.tenant, "redis").inc()
                delay = backoff.failed()
                self.log.warning("export_redis_failed", error=repr(exc), retry_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        # Batches being stored finish (or give up, stopped); entries read but not stored stay
        # pending, and a restarted exporter claims them.
        if self._inflight:
            await asyncio.wait(self._inflight)
        with contextlib.suppress(RedisError, OSError):
            await self.trim_dirty()

    async def _step(self, stop: asyncio.Event) -> None:
        now = self.clock()
        if now >= self._next_claim_s:
            self._next_claim_s = now + self.config.claim_idle_ms / 2000.0
            if not await self._export_all(await self.claim(), stop):
                return
        found = await self.read()
        if found and not await self._export_all(found, stop):
            return
        wait_s = self._pace.after_read(len(found), self._plan.more)
        if wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)
        if self.clock() >= self._next_trim_s:
            self._next_trim_s = self.clock() + self.config.trim_interval_ms / 1000.0
            await self.trim_dirty()

    async def _export_all(self, entries: Sequence[Entry], stop: asyncio.Event) -> bool:
        """Hand the entries to export tasks, ``batch_size`` each, at most ``store_concurrency``
        in flight; False once a batch gave up because we are stopping."""
        size = self.config.batch_size
        for start in range(0, len(entries), size):
            while len(self._inflight) >= self.config.store_concurrency:
                done, self._inflight = await asyncio.wait(
                    self._inflight, return_when=asyncio.FIRST_COMPLETED
                )
                if not all(task.result() for task in done):
                    return False
            task = asyncio.create_task(self.export(entries[start : start + size], stop))
            self._inflight.add(task)
        return not stop.is_set()


class Exporter:
    """All tenants' workers, the tenant list (the stored catalog, re-read periodically so tenants
    added later are picked up) and the lag loop."""

    def __init__(
        self,
        admin: Any,
        tenant_client: Callable[[str], Awaitable[Any]],
        sink: UsageSink,
        config: ExportConfig,
        log: Log,
        *,
        metrics: ExportMetrics | None = None,
        consumer: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.admin = admin
        self.tenant_client = tenant_client
        self.sink = sink
        self.config = config
        self.log = log
        self.metrics = metrics or ExportMetrics()
        self.consumer = consumer or consumer_name()
        self.clock = clock
        self.workers: dict[str, TenantWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.stop_event = asyncio.Event()

    async def refresh_tenants(self) -> list[str]:
        """Start a worker for every tenant of the stored catalog that has none; update the
        service units of the others (a catalog reload may change them). Returns new tenants."""
        try:
            catalog: Catalog | None = await stored_catalog(self.admin)
        except CatalogError as exc:
            self.log.error("export_catalog_invalid", error=str(exc))
            return []
        if catalog is None:
            return []
        added: list[str] = []
        for tenant in catalog.tenants:
            units: dict[str, str] = {s.name: s.unit for s in tenant.services}
            worker = self.workers.get(tenant.id)
            if worker is not None:
                worker.service_units = units
                continue
            client = await self.tenant_client(tenant.id)
            worker = TenantWorker(
                tenant.id, client, self.sink, self.config, self.metrics, self.log,
                consumer=self.consumer, service_units=units, clock=self.clock,
            )  # fmt: skip
            self.workers[tenant.id] = worker
            self._tasks[tenant.id] = asyncio.create_task(self._supervise(worker))
            added.append(tenant.id)
        if added:
            self.log.info("export_tenants", added=added, consumer=self.consumer)
        return added

    async def _supervise(self, worker: TenantWorker) -> None:
        """Run a worker; an unexpected failure restarts it after a backoff (never silently)."""
        backoff = Backoff(max_s=self.config.retry_max_s)
        while not self.stop_event.is_set():
            try:
                await worker.run(self.stop_event)
                return
            except Exception as exc:
                self.metrics.failures.labels(worker.tenant, "worker").inc()
                delay = backoff.failed()
                self.log.error("export_worker_failed", tenant=worker.tenant, error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), delay)

    async def measure_lag(self) -> dict[str, TenantLag]:
        lags: dict[str, TenantLag] = {}
        for tenant, worker in list(self.workers.items()):
            try:
                lags[tenant] = await worker.measure_lag()
            except (RedisError, OSError) as exc:
                self.log.warning("export_lag_failed", tenant=tenant, error=repr(exc))
                lags[tenant] = worker.lag
        return lags

    async def health(self) -> dict[str, Any]:
        lags = {t: w.lag for t, w in self.workers.items()}
        lagging = degraded(lags, self.config.lag_degraded_s)
        store_up = self.metrics.store_ok
        ok = not lagging and store_up
        return {
            "status": "ok" if ok else "degraded",
            "consumer": self.consumer,
            "tenants": len(self.workers),
            "store": "up" if store_up else "failing",
            "lagging": lagging,
            "lag_s": {t: round(lag.oldest_s, 3) for t, lag in lags.items()},
            "lag_entries": {t: lag.entries for t, lag in lags.items()},
        }

    async def run(self) -> None:
        """Until ``stop_event``: refresh tenants and lag periodically; workers run meanwhile."""
        next_tenants = next_lag = 0.0
        try:
            while not self.stop_event.is_set():
                now = self.clock()
                if now >= next_tenants:
                    next_tenants = now + self.config.tenants_refresh_s
                    with contextlib.suppress(RedisError, OSError):
                        await self.refresh_tenants()
                if now >= next_lag:
                    next_lag = now + self.config.lag_interval_s
                    await self.measure_lag()
                wait = max(0.01, min(next_tenants, next_lag) - self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), wait)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop reading; a batch being stored finishes (ack and trim) before its worker ends,
        bounded by the longest wait between polls plus a store attempt."""
        self.stop_event.set()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.block_ms / 1000 + 10)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
