"""One simulated gateway's Diameter connection: an asyncio ``Protocol`` around the product's
framer and codec.

- CER on connect; ``ready`` resolves with the server's Origin-Realm from a 2001 CEA.
- Requests are pipelined: each waits on a :class:`sim.fiber.Wake` keyed by its Hop-by-Hop id,
  resolved (resuming the session at once) when the answer is read; writes made in one loop
  iteration go out as one ``transport.write`` (batched).
- The server's DWR, DPR, RAR and ASR are answered 2001; RAR and ASR are also handed to the
  owner (a session receiving ASR ends itself with CCR-T).
- When the connection has been idle for ``watchdog_s`` we send DWR; ``close()`` sends DPR and
  waits briefly for the DPA.
- A request unanswered after ``timeout_s`` resolves to None. One timer per connection, not one
  per request: every request waits the same ``timeout_s``, so the oldest pending request (the
  first in ``_pending``, which keeps sending order) always expires first, and the timer is armed
  for it alone, or for the watchdog when nothing is pending. An idle simulator thus wakes only
  when something is due, not ten times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
from collections.abc import Callable

from diameter_apps.codec import decode_message
from diameter_apps.codes import FLAG_REQUEST, CommandCode, ResultCode
from diameter_apps.errors import DiameterError, FramingError
from diameter_apps.framer import Framer
from diameter_apps.limits import DEFAULT_LIMITS
from sim.fiber import Wake, resolved
from sim.messages import PeerIdentity, answer_to, cer, dpr, dwr, header_fields, summarize_answer

SWEEP_SLACK_S = 0.1  # a timeout may be noticed this late, so one timer serves many requests
DPA_WAIT_S = 2.0
_SERVER_REQUESTS: dict[int, str] = {
    CommandCode.DEVICE_WATCHDOG: "dwr",
    CommandCode.DISCONNECT_PEER: "dpr",
    CommandCode.RE_AUTH: "rar",
    CommandCode.ABORT_SESSION: "asr",
}
ServerRequestHook = Callable[[int, str | None], None]
"""Called with (command code, Session-Id) for each RAR / ASR the server sends."""


class HandshakeError(ConnectionError):
    """The server refused our CER (its Result-Code in the message) or closed the connection."""


class DiameterClient(asyncio.Protocol):
    def __init__(
        self,
        peer: PeerIdentity,
        *,
        timeout_s: float,
        watchdog_s: float,
        on_server_request: ServerRequestHook | None = None,
    ) -> None:
        self.peer = peer
        self.timeout_s = timeout_s
        self.watchdog_s = watchdog_s
        self.on_server_request = on_server_request
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[str] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.server_requests: dict[str, int] = {}
        self._framer = Framer(DEFAULT_LIMITS)
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, tuple[Wake[bytes | None], float]] = {}
        self._hop_ids = itertools.count(random.getrandbits(31) or 1)
        self._end_ids = itertools.count(random.getrandbits(31) or 1)
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._held = False  # see hold_writes()
        self._last_traffic = self.loop.time()
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_at = 0.0  # when the armed sweeper fires
        self._handshake_hop = 0
        self._disconnect_hop = -1
        self._dpa: asyncio.Future[None] | None = None

    # -- ids and writes ------------------------------------------------------------------------

    def next_hop_by_hop(self) -> int:
        return next(self._hop_ids) & 0xFFFFFFFF

    def next_end_to_end(self) -> int:
        return next(self._end_ids) & 0xFFFFFFFF

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self.closed.done()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        if not self._flush_scheduled and not self._held:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def hold_writes(self) -> None:
        """Keep writes until :meth:`release_writes` (which writes them at once)."""
        self._held = True

    def release_writes(self) -> None:
        self._held = False
        if self._out and not self._flush_scheduled:
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._transport is not None and self._out:
            self._transport.write(b"".join(self._out))
            self._last_traffic = self.loop.time()
        self._out.clear()

    def send(self, encoded: bytes, hop_by_hop: int) -> Wake[bytes | None]:
        """Send a request; the Wake gets the answer's bytes, or None (timeout, lost)."""
        if not self.is_open:
            return resolved(None)
        wake: Wake[bytes | None] = Wake()
        deadline = self.loop.time() + self.timeout_s
        self._pending[hop_by_hop] = (wake, deadline)
        if deadline + SWEEP_SLACK_S < self._sweep_at:  # armed for the watchdog, further away
            self._arm_sweeper(deadline + SWEEP_SLACK_S)
        self._write(encoded)
        return wake

    def send_raw(self, encoded: bytes) -> None:
        """Write bytes that expect no answer we wait for (answers to server requests)."""
        if self.is_open:
            self._write(encoded)

    # -- Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._handshake_hop = self.next_hop_by_hop()
        self._write(
            cer(self.peer, hop_by_hop=self._handshake_hop, end_to_end=self.next_end_to_end())
        )
        self._arm_sweeper(self.loop.time() + self.timeout_s)

    def data_received(self, data: bytes) -> None:
        self._last_traffic = self.loop.time()
        try:
            frames = self._framer.feed(data)
        except FramingError:
            self._abort(HandshakeError("the server sent an unframeable stream"))
            return
        pending = self._pending
        for frame in frames:
            flags, command, hop_by_hop = header_fields(frame)
            if flags & FLAG_REQUEST:
                self._server_request(frame, command)
                continue
            waiter = pending.pop(hop_by_hop, None)
            if waiter is not None:
                waiter[0].resolve(frame)  # the session reads its answer now
            elif command == CommandCode.CAPABILITIES_EXCHANGE and hop_by_hop == self._handshake_hop:
                self._capabilities_answer(frame)
            elif (
                command == CommandCode.DISCONNECT_PEER
                and self._dpa is not None
                and not self._dpa.done()
            ):
                self._dpa.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._sweeper is not None:
            self._sweeper.cancel()
        # Swapped out first: the sessions resumed here may retry on another connection.
        pending, self._pending = self._pending, {}
        for wake, _deadline in pending.values():
            wake.resolve(None)
        if not self.ready.done():
            self.ready.set_exception(HandshakeError(f"connection closed before CEA: {exc}"))
        if self._dpa is not None and not self._dpa.done():
            self._dpa.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)

    # -- handshake and server requests ---------------------------------------------------------

    def _capabilities_answer(self, frame: bytes) -> None:
        try:
            message = decode_message(frame)
        except DiameterError as exc:
            self._abort(HandshakeError(f"undecodable CEA: {exc}"))
            return
        if message.result_code != ResultCode.SUCCESS:
            self._abort(HandshakeError(f"CER refused with Result-Code {message.result_code}"))
            return
        realm = message.find(296)
        if not self.ready.done():
            self.ready.set_result(realm.as_str() if realm is not None else "")

    def _server_request(self, frame: bytes, command: int) -> None:
        try:
            message = decode_message(frame)
        except DiameterError:
            return  # nothing sane to answer; the server's Tx will notice
        name = _SERVER_REQUESTS.get(command)
        key = name or f"cmd{command}"
        self.server_requests[key] = self.server_requests.get(key, 0) + 1
        if name is None:
            self.send_raw(answer_to(message, self.peer, ResultCode.COMMAND_UNSUPPORTED))
            return
        self.send_raw(answer_to(message, self.peer, ResultCode.SUCCESS))
        if name in ("rar", "asr") and self.on_server_request is not None:
            self.on_server_request(command, message.session_id)
        if name == "dpr":
            self.loop.call_soon(self._close_transport)

    # -- timers --------------------------------------------------------------------------------

    def _arm_sweeper(self, when: float) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweep_at = when
        self._sweeper = self.loop.call_later(max(0.0, when - self.loop.time()), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.loop.time()
        pending = self._pending
        # Oldest first (sending order, one timeout for all): stop at the first still in time.
        while pending:
            hop, (wake, deadline) = next(iter(pending.items()))
            if deadline > now:
                break
            del pending[hop]
            wake.resolve(None)  # may send (a retransmission): appended, with a later deadline
        if self.is_open and now - self._last_traffic >= self.watchdog_s:
            hop = self.next_hop_by_hop()
            self.send(dwr(self.peer, hop_by_hop=hop, end_to_end=self.next_end_to_end()), hop)
        if not self.is_open:
            return
        if pending:
            _wake, oldest = next(iter(pending.values()))
            self._arm_sweeper(oldest + SWEEP_SLACK_S)
        else:
            self._arm_sweeper(self._last_traffic + self.watchdog_s)

    def _abort(self, error: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)
        self._close_transport()

    def _close_transport(self) -> None:
        if self._transport is not None:
            self._flush()
            self._transport.close()

    async def close(self) -> None:
        """DPR, a short wait for DPA, then close (RFC 6733 §5.4)."""
        if self.is_open:
            self._dpa = self.loop.create_future()
            hop = self.next_hop_by_hop()
            self._disconnect_hop = hop
            self._write(dpr(self.peer, hop_by_hop=hop, end_to_end=self.next_end_to_end()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DPA_WAIT_S):
                    await self._dpa
            self._close_transport()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DPA_WAIT_S):
                await self.closed


async def connect(
    host: str,
    port: int,
    peer: PeerIdentity,
    *,
    timeout_s: float,
    watchdog_s: float,
    on_server_request: ServerRequestHook | None = None,
) -> tuple[DiameterClient, str]:
    """An open, capabilities-exchanged connection and the server's Origin-Realm."""
    loop = asyncio.get_running_loop()
    _transport, client = await loop.create_connection(
        lambda: DiameterClient(
            peer, timeout_s=timeout_s, watchdog_s=watchdog_s, on_server_request=on_server_request
        ),
        host,
        port,
    )
    async with asyncio.timeout(timeout_s):
        realm = await client.ready
    return client, realm


__all__ = ["DiameterClient", "HandshakeError", "connect", "summarize_answer"]
