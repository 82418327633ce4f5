"""``ocs dispatch``'s I/O: read the shards' event streams with one consumer group per plug-in,
hand events to the plug-ins as ``dispatch_core`` decides, acknowledge, dead-letter, trim.

Guarantees: an event is acknowledged in a plug-in's group only after that plug-in returned
``ok`` (or it was dead-lettered), so a dispatcher killed at any point redelivers what it had
not finished — at least once, with ``event.id`` as idempotency key. A restarted dispatcher
first re-reads its own unacknowledged entries; another dispatcher takes over a dead one's
entries after ``claim_idle_s`` (XAUTOCLAIM). A stream is trimmed only below the oldest entry
that any configured plug-in's group still needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import ResponseError

from balance import keys
from balance.events import Event, EventError, decode_event, encode_event_fields, shard_of_stream
from ocs.dispatch_config import DispatchConfig, PluginSpec
from ocs.dispatch_core import Action, Decision, DeliveryQueue, Verdict
from ocs.plugins import Plugin
from ocs.provisioning_hold import HoldReleaser, holds

CLAIM_CHUNK = 1000  # ids per XCLAIM
DEAD_LETTER_MAXLEN = 100_000  # per shard; approximate trim, the oldest dead letters go first


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class DispatchMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("plugin", "tenant")
        self.delivered = Counter(
            "ocs_dispatch_delivered", "Events a plug-in accepted", labels, registry=self.registry
        )
        self.failed = Counter(
            "ocs_dispatch_failed_attempts",
            "Delivery attempts that failed (retry, fail, error, timeout)",
            labels,
            registry=self.registry,
        )
        self.dead = Counter(
            "ocs_dispatch_dead_letters", "Events dead-lettered", labels, registry=self.registry
        )
        self.pending = Gauge(
            "ocs_dispatch_pending",
            "Events read and not yet finished, per plug-in",
            ("plugin",),
            registry=self.registry,
        )
        self.oldest_age = Gauge(
            "ocs_dispatch_oldest_undelivered_age_seconds",
            "Age of the oldest event a plug-in has not finished (0: none)",
            ("plugin",),
            registry=self.registry,
        )


@dataclass(slots=True)
class _Lane:
    """One plug-in over one stream."""

    spec: PluginSpec
    stream: str
    tenant: str
    redo: bool
    queue: DeliveryQueue
    group_ready: bool = False
    recovered: bool = False
    next_claim_s: float = 0.0
    ack_ids: dict[str, str] = field(default_factory=dict)  # event entry id -> stream entry id


class Dispatcher:
    def __init__(
        self,
        client: Any,
        config: DispatchConfig,
        plugins: dict[str, Plugin],
        *,
        consumer: str,
        clock: Callable[[], float] = time.time,
        metrics: DispatchMetrics | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.plugins = plugins
        self.consumer = consumer
        self.clock = clock
        self.metrics = metrics or DispatchMetrics()
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._releaser = HoldReleaser(client, clock)
        self._next_scan_s = 0.0
        self._streams: list[str] = []

    # -- discovery ------------------------------------------------------------------------------

    async def _scan(self) -> list[str]:
        found: set[str] = set()
        for pattern in ("{t:*}:ev", "{t:*}:ev:redo"):
            async for key in self.client.scan_iter(match=pattern, count=1000, _type="stream"):
                found.add(_text(key))
        return sorted(found)

    def _lanes_for(self, stream: str) -> Iterable[_Lane]:
        try:
            tenant, _ = shard_of_stream(stream)
        except EventError:
            return []
        lanes = []
        for spec in self.config.plugins:
            if not spec.takes(tenant):
                continue
            lane = self._lanes.get((spec.name, stream))
            if lane is None:
                lane = _Lane(
                    spec,
                    stream,
                    tenant,
                    stream.endswith(":redo"),
                    DeliveryQueue(self.config.policy),
                )
                self._lanes[(spec.name, stream)] = lane
            lanes.append(lane)
        return lanes

    # -- one pass -------------------------------------------------------------------------------

    async def step(self) -> int:
        """Read, deliver what is due, acknowledge; returns the number of plug-in calls made."""
        now = self.clock()
        trim_now = now >= self._next_scan_s
        if trim_now:
            self._streams = await self._scan()
            self._next_scan_s = now + self.config.scan_every_s
        # Streams are independent (order is kept per subscriber, within one stream): up to
        # streams_in_flight of them are served at once, so a slow receiver answer for one
        # shard does not hold up the others.
        limit = asyncio.Semaphore(self.config.streams_in_flight)

        async def serve(stream: str) -> int:
            async with limit:
                return await self._serve_stream(stream, now, trim_now)

        calls = sum(await asyncio.gather(*(serve(stream) for stream in self._streams)))
        self._publish(now)
        return calls

    async def _serve_stream(self, stream: str, now: float, trim_now: bool) -> int:
        lanes = list(self._lanes_for(stream))
        for lane in lanes:
            await self._fill(lane, now)
        handled = await asyncio.gather(*(self._deliver(lane, now) for lane in lanes))
        if self.config.trim and lanes and trim_now:
            await self._trim(stream, lanes)
        return sum(handled)

    async def _fill(self, lane: _Lane, now: float) -> None:
        if not lane.group_ready:
            try:
                await self.client.xgroup_create(lane.stream, lane.spec.group, id="0")
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            lane.group_ready = True
        room = min(lane.queue.room(), self.config.read_count)
        if room <= 0:
            return
        if not lane.recovered:
            # This consumer's own unacknowledged entries first (a restart after a crash).
            reply = await self.client.xreadgroup(
                lane.spec.group, self.consumer, {lane.stream: "0"}, count=room
            )
            entries = reply[0][1] if reply else []
            await self._offer(lane, entries)
            if len(entries) < room:
                lane.recovered = True
            return
        if now >= lane.next_claim_s:
            lane.next_claim_s = now + self.config.claim_idle_s / 2
            # Keep what we hold ours: an entry waiting for its backoff (or behind its
            # subscriber's failing event) grows idle; re-claiming it resets that, so another
            # dispatcher's XAUTOCLAIM does not take it while we still mean to deliver it.
            held = list(lane.ack_ids.values())
            for start in range(0, len(held), CLAIM_CHUNK):
                await self.client.xclaim(
                    lane.stream,
                    lane.spec.group,
                    self.consumer,
                    min_idle_time=0,
                    message_ids=held[start : start + CLAIM_CHUNK],
                    justid=True,
                )
            claimed = await self.client.xautoclaim(
                lane.stream,
                lane.spec.group,
                self.consumer,
                min_idle_time=int(self.config.claim_idle_s * 1000),
                start_id="0-0",
                count=room,
            )
            await self._offer(lane, claimed[1])
            room = min(lane.queue.room(), self.config.read_count)
            if room <= 0:
                return
        reply = await self.client.xreadgroup(
            lane.spec.group, self.consumer, {lane.stream: ">"}, count=room
        )
        await self._offer(lane, reply[0][1] if reply else [])

    async def _offer(self, lane: _Lane, entries: list[Any]) -> None:
        """Queue the entries read; acknowledge at once a re-delivery meant for another plug-in."""
        tenant, shard = shard_of_stream(lane.stream)
        others: list[str] = []
        for entry_id, fields in entries:
            if not fields:
                others.append(_text(entry_id))  # trimmed or deleted while pending: let it go
                continue
            stream_id = _text(entry_id)
            event_entry = stream_id
            if lane.redo:
                if _text(fields.get(b"plugin", b"")) != lane.spec.name:
                    others.append(stream_id)
                    continue
                event_entry = _text(fields.get(b"event_entry", b""))
            try:
                event = decode_event(tenant, shard, event_entry, fields)
            except (EventError, ValueError):
                others.append(stream_id)  # not an event (foreign entry): nothing to deliver
                continue
            if lane.queue.offer(event):
                lane.ack_ids[event_entry] = stream_id
        if others:
            await self.client.xack(lane.stream, lane.spec.group, *others)

    async def _deliver(self, lane: _Lane, now: float) -> int:
        ready = lane.queue.ready(now)
        if not ready:
            return 0
        plugin = self.plugins[lane.spec.name]
        verdicts = await asyncio.gather(*(self._call(plugin, lane.spec, e) for e in ready))
        done = self.clock()
        for event, (verdict, error) in zip(ready, verdicts, strict=True):
            decision = lane.queue.outcome(event, verdict, done, error)
            await self._apply(lane, decision)
        return len(ready)

    async def _call(self, plugin: Plugin, spec: PluginSpec, event: Event) -> tuple[Verdict, str]:
        if not spec.wants(event.type):
            return Verdict.OK, ""
        try:
            verdict = await asyncio.wait_for(plugin.handle(event), self.config.handle_timeout_s)
        except TimeoutError:
            return Verdict.RETRY, f"no answer within {self.config.handle_timeout_s} s"
        except Exception as exc:  # a plug-in's bug or I/O error: retried, then dead-lettered
            return Verdict.RETRY, f"{type(exc).__name__}: {exc}"
        if not isinstance(verdict, Verdict):
            return Verdict.FAIL, f"plug-in returned {verdict!r}, not a Verdict"
        if verdict is Verdict.OK and spec.confirms_provisioning and holds(event):
            error = await self._releaser.release(event, spec.name)
            if error:
                return Verdict.RETRY, error
        return verdict, ""

    async def _apply(self, lane: _Lane, decision: Decision) -> None:
        labels = (lane.spec.name, lane.tenant)
        event = decision.event
        if decision.action is Action.RETRY:
            self.metrics.failed.labels(*labels).inc()
            return
        stream_id = lane.ack_ids.pop(event.entry_id, event.entry_id)
        if decision.action is Action.DEAD:
            self.metrics.failed.labels(*labels).inc()
            self.metrics.dead.labels(*labels).inc()
            prefix = keys.shard_prefix(event.tenant, event.shard)
            await self.client.xadd(
                keys.dead_letter_key(prefix),
                {
                    "plugin": lane.spec.name,
                    "event_entry": event.entry_id,
                    "attempts": str(decision.attempts),
                    "error": decision.error[:1000],
                    **encode_event_fields(event),
                },
                maxlen=DEAD_LETTER_MAXLEN,
                approximate=True,
            )
        else:
            self.metrics.delivered.labels(*labels).inc()
        await self.client.xack(lane.stream, lane.spec.group, stream_id)

    async def _trim(self, stream: str, lanes: list[_Lane]) -> None:
        """Drop entries every configured plug-in's group is done with."""
        groups = {_text(g["name"]): g for g in await self.client.xinfo_groups(stream)}
        floor: str | None = None
        for lane in lanes:
            info = groups.get(lane.spec.group)
            if info is None:
                return
            if int(info["pending"]) > 0:
                summary = await self.client.xpending(stream, lane.spec.group)
                need = _text(summary["min"])
            else:
                need = _text(info["last-delivered-id"])
            if floor is None or _id_key(need) < _id_key(floor):
                floor = need
        if floor is not None and floor != "0-0":
            await self.client.xtrim(stream, minid=floor, approximate=False)

    def _publish(self, now: float) -> None:
        for spec in self.config.plugins:
            lanes = [lane for (name, _), lane in self._lanes.items() if name == spec.name]
            self.metrics.pending.labels(spec.name).set(sum(len(lane.queue) for lane in lanes))
            oldest = [t for lane in lanes if (t := lane.queue.oldest_at_s()) is not None]
            self.metrics.oldest_age.labels(spec.name).set(
                max(0.0, now - min(oldest)) if oldest else 0
            )

    def close(self) -> None:
        """Release what the dispatcher opened itself (the Redis client is the caller's)."""
        self._releaser.close()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            calls = await self.step()
            if calls == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_s)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
