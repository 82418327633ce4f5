"""Notices every server process acts on, through the Redis channel ``NOTIFY_CHANNEL``: today a
catalog reload (``ocs catalog load``) and subscriber directory changes. Account changes that
live sessions must hear about (RAR after a top-up, ASR after a block) are durable instead:
``ocs.charging.durable_requests``.

On a Redis Cluster the channel is a sharded one (SPUBLISH / SSUBSCRIBE, Redis 7.0): a plain
PUBLISH is carried over the cluster bus to every node, primaries and replicas, whoever
listens; a sharded message stays within the shard that owns the channel's slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from redis.asyncio.cluster import RedisCluster

from ocs.background import STOP_WAIT_S, BackgroundTask

NOTIFY_CHANNEL = "ocs:notify"
SHARDED_POLL_S = 1.0  # how long one read of the sharded channel waits for a message
Log = structlog.typing.FilteringBoundLogger


class AccountNotice(msgspec.Struct, frozen=True):
    tenant: str
    subscriber: str
    event: str  # "topup" | "block"


def encode_notice(tenant: str, subscriber: str, event: str) -> bytes:
    return msgspec.json.encode(AccountNotice(tenant, subscriber, event))


async def publish_notice(client: Any, tenant: str, subscriber: str, event: str) -> None:
    """Tell every server process about a change (best effort: PUBLISH, SPUBLISH on a cluster)."""
    notice = encode_notice(tenant, subscriber, event)
    if isinstance(client, RedisCluster):
        await client.spublish(NOTIFY_CHANNEL, notice)
    else:
        await client.publish(NOTIFY_CHANNEL, notice)


SendRequest = Callable[[str, Any, float], "asyncio.Future[Any | None]"]
"""(client Origin-Host, request message, timeout_s) → future of the answer (None: no answer)."""


class NoticeListener:
    """Subscribes to ``NOTIFY_CHANNEL`` and hands each well-formed notice to ``handler``."""

    def __init__(
        self, client: Any, handler: Callable[[AccountNotice], Awaitable[None]], *, log: Log
    ) -> None:
        self.client = client
        self.handler = handler
        self.log = log
        self._task = BackgroundTask(self._run)

    async def _run(self) -> None:
        while True:
            sharded = isinstance(self.client, RedisCluster)
            pubsub = (
                self.client.pubsub()
                if sharded
                else self.client.pubsub(ignore_subscribe_messages=True)
            )
            try:
                if sharded:
                    await self._listen_sharded(pubsub)
                else:
                    await pubsub.subscribe(NOTIFY_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect after Redis restarts
                self.log.warning("notice_listener_reconnecting", error=repr(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _listen_sharded(self, pubsub: Any) -> None:
        """SSUBSCRIBE on the shard that owns the channel; when the slot moves (a failover) the
        server ends the subscription (``sunsubscribe``) and we subscribe again where it is."""
        await pubsub.ssubscribe(NOTIFY_CHANNEL)
        while True:
            message = await pubsub.get_sharded_message(timeout=SHARDED_POLL_S)
            if message is None:
                continue
            kind = message.get("type")
            if kind == "smessage":
                await self._handle(message["data"])
            elif kind == "sunsubscribe":
                raise ConnectionError("the notice channel's shard moved")

    async def _handle(self, data: bytes) -> None:
        try:
            notice = msgspec.json.decode(data, type=AccountNotice)
        except (msgspec.DecodeError, json.JSONDecodeError) as exc:
            self.log.warning("bad_notice", error=str(exc))
            return
        await self.handler(notice)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        if not await self._task.stop():
            self.log.warning("notice_listener_not_stopped", waited_s=STOP_WAIT_S)
