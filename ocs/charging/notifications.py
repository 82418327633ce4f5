"""Account changes that a live session must hear about: RAR after a top-up, ASR after a block.

Whoever changes an account (``ocs account topup|block``, the admin API) publishes a small JSON
notice on the Redis channel ``NOTIFY_CHANNEL``; every server process listens and acts for the
sessions it owns (the peer connection that carries them is here, not in Redis):

- ``topup``: a Re-Auth-Request to each session of the subscriber that is waiting for credit
  (answered 4012 or on its final grant), so the gateway asks again at once;
- ``block``: an Abort-Session-Request to each session of the subscriber.

The RAA/ASA Result-Code is logged; 5002 (the client no longer knows the session) ends it here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog

from diameter_apps.codes import ResultCode
from diameter_apps.credit_control import (
    SessionPeer,
    build_asr,
    build_rar,
    parse_server_answer,
)
from ocs.background import STOP_WAIT_S, BackgroundTask
from ocs.charging.sessions import OwnedSession, SessionRegistry

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


class ServerInitiated:
    """Sends RAR/ASR for notices; owns nothing but the decision of whom to ask."""

    def __init__(
        self,
        sessions: SessionRegistry,
        send: SendRequest,
        *,
        origin_host: str,
        origin_realm: str,
        timeout_s: float,
        log: Log,
    ) -> None:
        self.sessions = sessions
        self.send = send
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.timeout_s = timeout_s
        self.log = log
        self.sent: list[tuple[str, str, int | None]] = []  # (command, session, result) for tests

    async def handle(self, notice: AccountNotice) -> None:
        owned = self.sessions.of_subscriber(notice.tenant, notice.subscriber)
        if notice.event == "topup":
            targets = [s for s in owned if s.waiting_for_credit]
            await asyncio.gather(*(self._request("RAR", s) for s in targets))
        elif notice.event == "block":
            await asyncio.gather(*(self._request("ASR", s) for s in owned))

    async def _request(self, command: str, session: OwnedSession) -> None:
        peer = SessionPeer(
            session_id=session.session_id,
            client_host=session.origin_host,
            client_realm=session.origin_realm,
        )
        build = build_rar if command == "RAR" else build_asr
        message = build(peer, origin_host=self.origin_host, origin_realm=self.origin_realm)
        answer = await self.send(session.origin_host, message, self.timeout_s)
        result = None if answer is None else parse_server_answer(answer).result_code
        self.sent.append((command, session.session_id, result))
        self.log.info(
            "server_request_answered",
            command=command,
            session=session.session_id,
            peer=session.origin_host,
            result_code=result,
        )
        if result == ResultCode.UNKNOWN_SESSION_ID:
            self.sessions.ended(session.session_id)
        elif command == "RAR" and result == ResultCode.SUCCESS:
            session.waiting_for_credit = False


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
