"""The ledger's lean pipelined connections on a Redis Cluster: one per primary, each call
routed by the hash slot of its first key.

Every ledger script's keys share one hash tag (``balance.keys``), so a call belongs to exactly
one slot and one primary. redis-py's cluster client sends each call alone and waits for it; on
a 2-core box that halves what a core can charge. Here a call is written at once on its
primary's ``RespConnection`` (one write per event-loop turn per primary) and settled from the
reply, as on a standalone Redis.

The slot table is a copy of redis-py's (``NodesManager.slots_cache``): a call that meets
MOVED or a lost connection marks it stale, and the next call on the full path
(``ScriptCaller``) has redis-py ask the cluster again (``refresh``), copies the answer and
sends the call on the new primary's connection. ASK (a slot being migrated) and a cluster that
keeps moving are left to redis-py's own cluster path. The lean path never waits: without a
table or an open connection to the slot's primary the call takes the full path while the
connection opens in the background.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from balance.replica_wait import ReplicaWait
from balance.resp import RespConnection, RespLane

Address = tuple[str, int]
# READONLY: a write queued on a primary while it handed over (manual failover) and run once
# it had become a replica; like MOVED, the slot table is out of date.
_STALE_TABLE = ("MOVED", "READONLY")
_REDIRECTIONS = (*_STALE_TABLE, "ASK", "TRYAGAIN", "CLUSTERDOWN")


def redirected(exc: BaseException) -> bool:
    """The cluster sent the call elsewhere or asked for it later (it did not run)."""
    return isinstance(exc, ResponseError) and str(exc).startswith(_REDIRECTIONS)


def table_stale(exc: BaseException) -> bool:
    """The reply says the slot lives elsewhere now."""
    return isinstance(exc, ResponseError) and str(exc).startswith(_STALE_TABLE)


class ClusterLanes:
    """One ``RespLane`` per primary and a copy of the cluster's slot table."""

    def __init__(
        self,
        client: RedisCluster,
        *,
        username: str | None,
        password: str | None,
        timeout_s: float | None,
        wait: ReplicaWait | None = None,
    ) -> None:
        self._client = client
        self._wait = wait
        self._refreshing: asyncio.Future[None] | None = None
        self._username = username
        self._password = password
        self._timeout_s = timeout_s
        self._slots: list[Address | None] = []
        self._lanes: dict[Address, RespLane] = {}
        self._connecting: set[asyncio.Task[None]] = set()
        self._stale = True
        self.refreshes = 0  # slot tables taken (the first one included), for tests and logs

    @classmethod
    def for_client(cls, client: Any, wait: ReplicaWait | None = None) -> ClusterLanes | None:
        """Lanes for a plain-TCP ``RedisCluster`` client (TLS keeps redis-py), else None."""
        if not isinstance(client, RedisCluster):
            return None
        kwargs = client.connection_kwargs
        connection_class = kwargs.get("connection_class")
        if connection_class is not None and "SSL" in connection_class.__name__:
            return None
        return cls(
            client,
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            timeout_s=kwargs.get("socket_timeout"),
            wait=wait,
        )

    def mark_stale(self) -> None:
        """The table is wrong somewhere (MOVED, a primary gone): take redis-py's again after
        its next call, which follows the cluster."""
        self._stale = True

    def sync(self) -> None:
        """Copy the slot table from redis-py's cluster client if it is initialised."""
        cache = self._client.nodes_manager.slots_cache
        if not cache:
            return
        table: list[Address | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        for slot, nodes in cache.items():
            if nodes:
                table[slot] = (nodes[0].host, int(nodes[0].port))
        self._slots = table
        self._stale = False
        self.refreshes += 1
        # A primary that holds no slot any more (failed over, removed): close its connection.
        live = set(table)
        for address in [a for a in self._lanes if a not in live]:
            self._lanes.pop(address).close()

    @property
    def stale(self) -> bool:
        return self._stale

    async def refresh(self) -> None:
        """Ask the cluster for its slot table (through redis-py, one request at a time for
        all callers) and copy it."""
        running = self._refreshing
        if running is None:
            running = self._refreshing = asyncio.ensure_future(self._refresh())
            running.add_done_callback(self._refreshed)
        await asyncio.shield(running)

    async def _refresh(self) -> None:
        client = self._client
        fresh = not client.nodes_manager.slots_cache
        await client.initialize()  # a no-op once the client knows the cluster
        if not fresh:
            await client.nodes_manager.initialize()
        self.sync()

    def _refreshed(self, future: asyncio.Future[None]) -> None:
        self._refreshing = None
        if not future.cancelled():
            future.exception()  # retrieved: each caller gets it from its own await

    async def connect_for(self, key: str) -> RespConnection:
        """The connection to ``key``'s primary, opened if need be."""
        lane = self._lane_for(key)
        if lane is None:
            self.mark_stale()
            raise RedisConnectionError(f"no primary known for the slot of {key!r}")
        return await lane.connect()

    def _lane_for(self, key: str) -> RespLane | None:
        if not self._slots:
            return None
        address = self._slots[key_slot(key.encode("utf-8"))]
        if address is None:
            return None
        lane = self._lanes.get(address)
        if lane is None:
            lane = self._lanes[address] = RespLane(
                address[0],
                address[1],
                username=self._username,
                password=self._password,
                timeout_s=self._timeout_s,
                wait=self._wait,
            )
        return lane

    def ready_for(self, key: str) -> RespConnection | None:
        """The open connection to ``key``'s primary, or None (then the caller takes the full
        path; the connection opens in the background for the next calls)."""
        lane = self._lane_for(key)
        if lane is None:
            return None
        connection = lane.ready
        if connection is None:
            self._open(lane)
        return connection

    def _open(self, lane: RespLane) -> None:
        task = asyncio.ensure_future(self._connect_quietly(lane))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    @staticmethod
    async def _connect_quietly(lane: RespLane) -> None:
        # A failure is retried on a later call; meanwhile calls take redis-py's path, which
        # reports the trouble (or finds the new primary).
        try:
            await lane.connect()
        except Exception:
            return

    def close(self) -> None:
        for task in self._connecting:
            task.cancel()
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()
