"""A lean pipelined RESP connection for the ledger's hot path (script calls on plain TCP).

redis-py spends more CPU per call than the ledger script costs Redis (argument encoding, pool,
retry and timeout wrappers); on a 2-core box that halves a node's throughput. This is an
``asyncio.Protocol`` with a hiredis reader: calls are written back to back (one ``write`` per
event-loop turn) and replies matched in order. Errors come back as the redis-py exception
classes so callers handle one family. TLS clients keep using redis-py; a cluster gets one of
these per primary (``balance.cluster_lanes``).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import hiredis
from redis.exceptions import AuthenticationError, NoPermissionError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from balance.continuations import Then

if TYPE_CHECKING:
    from balance.replica_wait import Held, ReplicaWait

_ERROR_CLASSES: tuple[tuple[str, type[ResponseError]], ...] = (
    ("NOSCRIPT", NoScriptError),
    ("NOPERM", NoPermissionError),
)


def pack_command(parts: Sequence[bytes | str | int]) -> bytes:
    """One RESP command (array of bulk strings; str as UTF-8, int in decimal), packed by
    hiredis in C: the Python loop it replaces cost ~3x as much per ledger call."""
    return _pack(parts if type(parts) is tuple else tuple(parts))


# hiredis's stub types the argument as a 1-tuple; it takes any tuple of these.
_pack: Callable[[tuple[bytes | str | int, ...]], bytes] = cast(Any, hiredis.pack_command)

# Bulk-string headers by length, for the hot path's own packing: hiredis formats each one
# with sprintf (~1k instructions apiece, ~14k per ledger call); a table lookup is one step.
_BULK_HEADERS_MAX = 4096
_BULK_HEADERS = tuple(b"$%d\r\n" % n for n in range(_BULK_HEADERS_MAX))
_CRLF = b"\r\n"


def fcall_head(function: str, key_count: int, arg_count: int) -> bytes:
    """The start of ``FCALL function key_count`` in a command of that many keys and
    arguments, for ``pack_fcall`` (keep it: it depends on nothing else)."""
    return (
        b"*%d\r\n" % (3 + key_count + arg_count)
        + pack_command(("FCALL", function, key_count))[len(b"*3\r\n") :]
    )


def encoded_keys(key_list: Sequence[str]) -> bytes:
    """Keys as the bulk strings of a command, for ``pack_fcall`` (keep it: the keys of one
    subscriber do not change)."""
    return pack_command(tuple(key_list))[len(b"*%d\r\n" % len(key_list)) :]


def pack_fcall(
    head: bytes, first_key: str, other_keys: bytes, args: Sequence[bytes | str | int]
) -> bytes:
    """``pack_command(("FCALL", function, n, first_key, *keys, *args))``, the same bytes, from
    the parts a caller keeps (``fcall_head``, ``encoded_keys``): the first key (the operation
    key, new per call) and the arguments are the only parts packed here."""
    key = first_key.encode()
    parts = [head, _bulk_header(len(key)), key, _CRLF, other_keys]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        size = len(arg)
        header = _BULK_HEADERS[size] if size < _BULK_HEADERS_MAX else _bulk_header(size)
        parts += (header, arg, _CRLF)
    return b"".join(parts)


def _bulk_header(size: int) -> bytes:
    return _BULK_HEADERS[size] if size < _BULK_HEADERS_MAX else b"$%d\r\n" % size


def _error(reply: hiredis.ReplyError) -> ResponseError:
    message = str(reply)
    for prefix, error_class in _ERROR_CLASSES:
        if message.startswith(prefix):
            return error_class(message[len(prefix) :].strip())
    return ResponseError(message)


class RespConnection(asyncio.Protocol):
    """One connection; any number of calls in flight, answered in order."""

    def __init__(self, timeout_s: float | None, wait: ReplicaWait | None = None) -> None:
        self._reader = hiredis.Reader()
        # With ``wait``: calls made ``acknowledged`` are held until the WAIT that ends their
        # write has been answered (``balance.replica_wait``).
        self._wait = wait
        self._held: Held = []
        # Each call in flight: when it was sent, and its future or its continuation (the hot
        # path's calls run their continuation from ``data_received``: no future, no loop pass).
        self._waiters: collections.deque[tuple[float, asyncio.Future[Any] | None, Then | None]] = (
            collections.deque()
        )
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._timeout_s = timeout_s
        self._watchdog: asyncio.TimerHandle | None = None
        self.closed = False

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same API.
        self._transport = cast(asyncio.Transport, transport)
        # The loop is kept: looking it up per call costs a getpid() system call on CPython 3.11.
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            if not self._waiters:
                self._abort(RedisConnectionError("reply without a request: closing the connection"))
                return
            _, future, then = self._waiters.popleft()
            if then is not None:
                # Whatever a continuation raises is reported to the loop's exception handler
                # (as a future's callback would be), never into this reader loop.
                try:
                    if isinstance(reply, hiredis.ReplyError):
                        then(None, _error(reply))
                    else:
                        then(reply, None)
                except Exception as exc:
                    self._report(exc)
                continue
            assert future is not None
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_error(reply))
            else:
                future.set_result(reply)

    def _report(self, exc: Exception) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_exception_handler(
                {"message": "exception in a Redis reply continuation", "exception": exc}
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(
            RedisConnectionError(f"connection to Redis lost: {exc or 'closed by server'}")
        )

    # -- calls ----------------------------------------------------------------------------------

    def call(
        self, parts: Sequence[bytes | str | int], *, acknowledged: bool = False
    ) -> asyncio.Future[Any]:
        """Send ``parts``; the future holds the reply. ``acknowledged`` (a write whose answer
        must wait for the replicas): settled only after the batch's WAIT, if there is one."""
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.closed or self._transport is None:
            future.set_exception(RedisConnectionError("connection to Redis is closed"))
            return future
        self._send(_pack(parts if type(parts) is tuple else tuple(parts)), future, None)
        if acknowledged and self._wait is not None:
            held: asyncio.Future[Any] = loop.create_future()
            self._held.append((future, held))
            return held
        return future

    def call_then(
        self, parts: Sequence[bytes | str | int], then: Then, *, acknowledged: bool = False
    ) -> None:
        """``call`` with a continuation instead of a future: ``then`` runs from the reply's
        ``data_received`` (or at once if the connection is closed)."""
        self.send_then(_pack(parts if type(parts) is tuple else tuple(parts)), then, acknowledged)

    def send_then(self, command: bytes, then: Then, acknowledged: bool = False) -> None:
        """``call_then`` of a command already packed (``pack_command``, or a caller's own
        cheaper packing of the same bytes)."""
        if self.closed or self._transport is None:
            then(None, RedisConnectionError("connection to Redis is closed"))
            return
        if acknowledged and self._wait is not None:
            # Held for the batch's WAIT: that path settles futures (``balance.replica_wait``).
            loop = self._loop or asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()
            held: asyncio.Future[Any] = loop.create_future()
            self._send(command, future, None)
            self._held.append((future, held))
            held.add_done_callback(functools.partial(_then_from_future, then))
            return
        # ``_send``, inline: this is the hot path's call.
        self._outgoing.append(command)
        self._waiters.append((time.monotonic(), None, then))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._flush)
            if self._timeout_s and self._watchdog is None:
                self._watchdog = loop.call_later(self._timeout_s, self._check_timeouts)

    def _send(self, command: bytes, future: asyncio.Future[Any] | None, then: Then | None) -> None:
        self._outgoing.append(command)
        self._waiters.append((time.monotonic(), future, then))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._flush)
            if self._timeout_s and self._watchdog is None:
                self._watchdog = loop.call_later(self._timeout_s, self._check_timeouts)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._held and self._wait is not None:
            # One WAIT closes the batch: it covers every write this connection made before it.
            held, self._held = self._held, []
            loop = self._loop or asyncio.get_running_loop()
            waiter: asyncio.Future[Any] = loop.create_future()
            waiter.add_done_callback(functools.partial(self._wait.release, held))
            self._outgoing.append(self._wait.command)
            self._waiters.append((time.monotonic(), waiter, None))
            if self.closed or self._transport is None:
                waiter.set_exception(RedisConnectionError("connection to Redis is closed"))
        if self._outgoing and self._transport is not None and not self.closed:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def _check_timeouts(self) -> None:
        self._watchdog = None
        if not self._waiters or self._timeout_s is None:
            return
        oldest = self._waiters[0][0]
        waited = time.monotonic() - oldest
        if waited >= self._timeout_s:
            # Replies are matched by order, so a late reply cannot be skipped: drop the line.
            self._abort(RedisTimeoutError(f"Redis did not answer within {self._timeout_s} s"))
            return
        loop = self._loop or asyncio.get_running_loop()
        self._watchdog = loop.call_later(self._timeout_s - waited, self._check_timeouts)

    def _fail_all(self, exc: Exception) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiters:
            _, future, then = self._waiters.popleft()
            if then is not None:
                try:
                    then(None, exc)
                except Exception as error:
                    self._report(error)
            elif future is not None and not future.done():
                future.set_exception(exc)
        # Calls held for a WAIT that was never written: their own (failed) replies.
        held, self._held = self._held, []
        for _, result in held:
            if not result.done():
                result.set_exception(exc)

    def _abort(self, exc: Exception) -> None:
        self._fail_all(exc)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._fail_all(RedisConnectionError("connection closed by the client"))
        if self._transport is not None:
            self._transport.close()


def _then_from_future(then: Then, future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        then(None, RedisConnectionError("call cancelled"))
    elif (error := future.exception()) is not None:
        then(None, error)
    else:
        then(future.result(), None)


class RespLane:
    """A lazily (re)connected ``RespConnection`` built from a redis-py client's settings."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        timeout_s: float | None = None,
        wait: ReplicaWait | None = None,
    ) -> None:
        self.host = host
        self.wait = wait
        self.port = port
        self.username = username
        self.password = password
        self.db = db
        self.timeout_s = timeout_s
        self._connection: RespConnection | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def for_client(cls, client: Any, wait: ReplicaWait | None = None) -> RespLane | None:
        """A lane matching a plain-TCP ``redis.asyncio.Redis`` client, else None."""
        pool = getattr(client, "connection_pool", None)
        kwargs = getattr(pool, "connection_kwargs", None)
        if not isinstance(kwargs, dict) or "host" not in kwargs:
            return None  # unix socket or unknown: keep redis-py
        connection_class = getattr(pool, "connection_class", None)
        if connection_class is None or "SSL" in connection_class.__name__:
            return None
        return cls(
            str(kwargs["host"]),
            int(kwargs.get("port", 6379)),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            db=int(kwargs.get("db", 0) or 0),
            timeout_s=kwargs.get("socket_timeout"),
            wait=wait,
        )

    async def _connect(self) -> RespConnection:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            current = self._connection
            if current is not None and not current.closed:
                return current
            loop = asyncio.get_running_loop()
            try:
                _, connection = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: RespConnection(self.timeout_s, self.wait), self.host, self.port
                    ),
                    self.timeout_s,
                )
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(
                    f"cannot connect to Redis at {self.host}:{self.port}: {exc}"
                ) from exc
            try:
                if self.password is not None:
                    auth = (
                        ["AUTH", self.username, self.password]
                        if self.username
                        else ["AUTH", self.password]
                    )
                    await connection.call(auth)
                if self.db:
                    await connection.call(["SELECT", self.db])
            except ResponseError as exc:
                connection.close()
                raise AuthenticationError(str(exc)) from exc
            self._connection = connection
            return connection

    async def connect(self) -> RespConnection:
        """The open connection, connecting (and logging in) first if there is none."""
        current = self._connection
        if current is not None and not current.closed:
            return current
        return await self._connect()

    @property
    def ready(self) -> RespConnection | None:
        """The open connection, if there is one (calls can then start without awaiting)."""
        connection = self._connection
        return connection if connection is not None and not connection.closed else None

    async def call(self, parts: Sequence[bytes | str | int], *, acknowledged: bool = False) -> Any:
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connect()
        return await connection.call(parts, acknowledged=acknowledged)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
