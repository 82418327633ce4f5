"""Server-initiated RAR/ASR that survive reconnects, restarts and several server processes.

A pub/sub notice is lost when no process listens at that moment (a reconnect, a restart), and
only the process that saw a session knew its peer. Here every step lives in Redis streams:

1. ``ocs account topup|block`` appends an account notice to ``NOTICE_STREAM``.
2. One server process (consumer group ``GROUP``) takes each notice, looks up the subscriber's
   sessions in the shared peer store (session → client Origin-Host/Realm, written on the
   session's first request and when its waiting-for-credit state changes) and appends one
   delivery per session to the stream of that Origin-Host (``delivery_stream``); then it acks.
3. Every process reads the delivery streams of the Origin-Hosts it holds a connection to
   (consumer group ``GROUP`` on each), so any of them delivers. Before sending, it claims the
   (notice, session) outcome key with SET NX: a second sender (a duplicate fan-out, an entry
   claimed back from a process that died) finds the claim or the recorded RAA/ASA Result-Code
   and skips. No answer (connection lost): the claim is dropped and the entry stays pending,
   to be claimed back (XAUTOCLAIM) after ``claim_idle_s`` by whichever process holds a
   connection then.

Nothing here runs per CCR but the peer store's write on a session's first request (and on a
change of its waiting state, and at its end), sent without waiting for it on a lean connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from redis.exceptions import ResponseError

from balance.resp import RespLane
from diameter_apps.codes import ResultCode
from diameter_apps.credit_control import SessionPeer, build_asr, build_rar, parse_server_answer
from ocs.background import PeriodicTask
from ocs.charging.notifications import SendRequest

Log = structlog.typing.FilteringBoundLogger

NOTICE_STREAM = "ocs:notices"
GROUP = "ocs-serve"
STREAM_LEN_MAX = 100_000  # approximate trim: notices and deliveries nobody could take
READ_COUNT = 100
OUTCOME_TTL_S = 86_400  # how long a delivered (notice, session) is remembered
EVENTS = {"topup": "RAR", "block": "ASR"}


def peers_key(tenant: str, subscriber: str) -> str:
    return f"ocs:peers:{tenant}:{subscriber}"


def delivery_stream(origin_host: str) -> str:
    return f"ocs:srv:{origin_host.lower()}"


def outcome_key(notice_id: str, session_id: str) -> str:
    return f"ocs:srv:done:{notice_id}:{session_id}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


async def publish_account_notice(client: Any, tenant: str, subscriber: str, event: str) -> str:
    """Append a ``topup`` / ``block`` notice (durable: taken by a server whenever one runs)."""
    if event not in EVENTS:
        raise ValueError(f"unknown account event {event!r}")
    entry = await client.xadd(
        NOTICE_STREAM,
        {"t": tenant, "s": subscriber, "e": event},
        maxlen=STREAM_LEN_MAX,
        approximate=True,
    )
    return _text(entry)


class PeerStore:
    """Which client (Origin-Host, Origin-Realm) carries each session, shared by all processes.

    The writes (a session's first request, a change of its waiting state, its end) go on a lean
    RESP connection of their own when the client is a plain-TCP standalone Redis: through
    redis-py each cost more server CPU than the CCR's own ledger call. They are not awaited by
    the CCR: a failed write is logged and only costs a RAR/ASR to that session."""

    def __init__(self, client: Any, *, ttl_s: int, log: Log) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.log = log
        self._lane = RespLane.for_client(client)
        self._writes: set[asyncio.Task[None]] = set()

    def remember(
        self, tenant: str, subscriber: str, session_id: str, host: str, realm: str, waiting: bool
    ) -> None:
        key = peers_key(tenant, subscriber)
        value = f"{host}\t{realm}\t{1 if waiting else 0}"
        self._write((("HSET", key, session_id, value), ("EXPIRE", key, self.ttl_s)))

    def forget(self, tenant: str, subscriber: str, session_id: str) -> None:
        self._write((("HDEL", peers_key(tenant, subscriber), session_id),))

    async def sessions_of(self, tenant: str, subscriber: str) -> list[tuple[str, str, str, bool]]:
        """(session id, Origin-Host, Origin-Realm, waiting for credit) of each known session."""
        stored = await self.client.hgetall(peers_key(tenant, subscriber))
        out = []
        for session, value in sorted(stored.items()):
            host, _, rest = _text(value).partition("\t")
            realm, _, waiting = rest.partition("\t")
            out.append((_text(session), host, realm, waiting == "1"))
        return out

    def close(self) -> None:
        if self._lane is not None:
            self._lane.close()

    def _write(self, commands: tuple[tuple[str | int, ...], ...]) -> None:
        connection = self._lane.ready if self._lane is not None else None
        if connection is None:  # not connected yet, or not a standalone TCP Redis
            self._spawn(self._write_slowly(commands))
            return
        # Continuations, not futures: no loop pass per write (they are on a session's first and
        # last request).
        for command in commands:
            connection.call_then(command, self._acknowledged)

    async def _write_slowly(self, commands: tuple[tuple[str | int, ...], ...]) -> None:
        if self._lane is not None:
            for command in commands:
                await self._lane.call(command)
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            await pipe.execute()

    def _spawn(self, write: Any) -> None:
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _acknowledged(self, _reply: Any, error: BaseException | None) -> None:
        if error is not None:
            self.log.warning("peer_store_write_failed", error=repr(error))

    def _replied(self, reply: asyncio.Future[Any]) -> None:
        if not reply.cancelled() and reply.exception() is not None:
            self.log.warning("peer_store_write_failed", error=repr(reply.exception()))

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        self._replied(task)


class DurableServerRequests:
    """Fans account notices out to delivery streams and delivers those of connected peers."""

    def __init__(
        self,
        client: Any,
        peers: PeerStore,
        send: SendRequest,
        connected_hosts: Callable[[], Iterable[str]],
        *,
        consumer: str,
        origin_host: str,
        origin_realm: str,
        timeout_s: float,
        log: Log,
        poll_s: float = 0.2,
        claim_idle_s: float = 30.0,
    ) -> None:
        self.client = client
        self.peers = peers
        self.send = send
        self.connected_hosts = connected_hosts
        self.consumer = consumer
        self.origin_host = origin_host
        self.origin_realm = origin_realm
        self.timeout_s = timeout_s
        self.log = log
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self._groups: set[str] = set()
        self._task = PeriodicTask("server_requests", self.step, poll_s, log)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def step(self) -> int:
        """One round: fan out new notices, deliver what is due on our connections."""
        done = await self.fan_out()
        for host in sorted(set(self.connected_hosts())):
            done += await self.deliver(host)
        return done

    # -- fan-out ------------------------------------------------------------------------------

    async def fan_out(self) -> int:
        await self._ensure_group(NOTICE_STREAM)
        entries = await self._take(NOTICE_STREAM)
        for entry_id, fields in entries:
            tenant, subscriber = _text(fields.get(b"t", b"")), _text(fields.get(b"s", b""))
            command = EVENTS.get(_text(fields.get(b"e", b"")))
            if command is not None and tenant and subscriber:
                for session, host, realm, waiting in await self.peers.sessions_of(
                    tenant, subscriber
                ):
                    if command == "RAR" and not waiting:
                        continue  # only a session waiting for credit gains from a re-auth
                    await self.client.xadd(
                        delivery_stream(host),
                        {"n": entry_id, "c": command, "i": session, "h": host, "r": realm,
                         "t": tenant, "s": subscriber},
                        maxlen=STREAM_LEN_MAX,
                        approximate=True,
                    )  # fmt: skip
            await self.client.xack(NOTICE_STREAM, GROUP, entry_id)
        return len(entries)

    # -- delivery -----------------------------------------------------------------------------

    async def deliver(self, host: str) -> int:
        stream = delivery_stream(host)
        await self._ensure_group(stream)
        entries = await self._take(stream)
        for entry_id, fields in entries:
            await self._deliver_one(
                stream, entry_id, {_text(k): _text(v) for k, v in fields.items()}
            )
        return len(entries)

    async def _deliver_one(self, stream: str, entry_id: str, entry: dict[str, str]) -> None:
        key = outcome_key(entry.get("n", entry_id), entry.get("i", ""))
        claim = f"sending:{self.consumer}"
        claimed = await self.client.set(key, claim, nx=True, ex=int(self.timeout_s * 2) + 5)
        if not claimed:
            # Sent (or being sent) by another process or an earlier try: skip, do not repeat.
            await self.client.xack(stream, GROUP, entry_id)
            return
        command = entry.get("c", "")
        peer = SessionPeer(
            session_id=entry.get("i", ""),
            client_host=entry.get("h", ""),
            client_realm=entry.get("r", ""),
        )
        build = build_rar if command == "RAR" else build_asr
        message = build(peer, origin_host=self.origin_host, origin_realm=self.origin_realm)
        answer = await self.send(peer.client_host, message, self.timeout_s)
        if answer is None:
            # Connection gone before the answer: let a later holder of a connection send it.
            await self.client.delete(key)
            return
        result = parse_server_answer(answer).result_code
        await self.client.set(key, str(result), ex=OUTCOME_TTL_S)
        await self.client.xack(stream, GROUP, entry_id)
        self.log.info(
            "server_request_answered",
            command=command,
            session=peer.session_id,
            peer=peer.client_host,
            result_code=result,
        )
        tenant, subscriber = entry.get("t", ""), entry.get("s", "")
        if result == ResultCode.UNKNOWN_SESSION_ID:
            self.peers.forget(tenant, subscriber, peer.session_id)
        elif command == "RAR" and result == ResultCode.SUCCESS:
            self.peers.remember(
                tenant, subscriber, peer.session_id, peer.client_host, peer.client_realm, False
            )

    # -- plumbing -----------------------------------------------------------------------------

    async def _ensure_group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            # From the start: deliveries written before any process was connected count too.
            await self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(stream)

    async def _take(self, stream: str) -> list[tuple[str, dict[bytes, bytes]]]:
        """New entries for us, and entries another consumer left pending too long."""
        try:
            claimed = await self.client.xautoclaim(
                stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", count=READ_COUNT
            )
            reply = await self.client.xreadgroup(
                GROUP, self.consumer, {stream: ">"}, count=READ_COUNT
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted (Redis flushed): create again
                self._groups.discard(stream)
            raise
        entries = [(_text(i), f) for i, f in (claimed[1] if claimed else []) if f]
        for _name, items in reply or []:
            entries.extend((_text(i), f) for i, f in items if f)
        return entries


def consumer_name(origin_host: str) -> str:
    """A name for this process in the consumer groups (host, pid: unique while it runs)."""
    with contextlib.suppress(OSError):
        return f"{origin_host}:{socket.gethostname()}:{os.getpid()}"
    return f"{origin_host}:{os.getpid()}"
