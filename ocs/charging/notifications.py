"""Notices every server process acts on, through the Redis channel ``NOTIFY_CHANNEL``: today a
catalog reload (``ocs catalog load``). Account changes that live sessions must hear about (RAR
after a top-up, ASR after a block) are durable instead: ``ocs.charging.durable_requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog

from ocs.background import STOP_WAIT_S, BackgroundTask

NOTIFY_CHANNEL = "ocs:notify"
Log = structlog.typing.FilteringBoundLogger


class AccountNotice(msgspec.Struct, frozen=True):
    tenant: str
    subscriber: str
    event: str  # "topup" | "block"


def encode_notice(tenant: str, subscriber: str, event: str) -> bytes:
    return msgspec.json.encode(AccountNotice(tenant, subscriber, event))


async def publish_notice(client: Any, tenant: str, subscriber: str, event: str) -> None:
    """Tell every server process about an account change (best effort: PUBLISH)."""
    await client.publish(NOTIFY_CHANNEL, encode_notice(tenant, subscriber, event))


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
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTIFY_CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        notice = msgspec.json.decode(message["data"], type=AccountNotice)
                    except (msgspec.DecodeError, json.JSONDecodeError) as exc:
                        self.log.warning("bad_notice", error=str(exc))
                        continue
                    await self.handler(notice)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect after Redis restarts
                self.log.warning("notice_listener_reconnecting", error=repr(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        if not await self._task.stop():
            self.log.warning("notice_listener_not_stopped", waited_s=STOP_WAIT_S)
