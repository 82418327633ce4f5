"""How a ledger operation reaches Redis: one in-flight slot, the tenant's access guard, and
the lean path that writes a script call at once and settles its future from the reply.

``ScriptCalls`` is the part of ``balance.ledger.Ledger`` that knows nothing about money: it
takes a script, its keys and its encoded arguments, and gives back the reply or the ledger
error it stands for. Every script is idempotent on its operation id, so a call that met a
lost connection or a missing library is simply sent again on the full path.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from balance.access import AccessGuard, Repair
from balance.continuations import continue_with, settle_future
from balance.errors import LedgerOverloaded, LedgerUnavailable, error_from_reply
from balance.in_flight import InFlightLimit, QueueFull
from balance.scripts import LuaScript, ScriptCaller

_T = TypeVar("_T")
Args = list[bytes | str | int]


def ledger_error(script: LuaScript, exc: BaseException) -> BaseException:
    """What a failed script call raises: the script's own refusal (``OCS_*`` replies) as its
    ledger error, Redis trouble as ``LedgerUnavailable``; NOPERM and anything else as is."""
    if isinstance(exc, NoPermissionError):
        return exc
    if isinstance(exc, ResponseError):
        mapped = error_from_reply(str(exc))
        return mapped if mapped is not None else LedgerUnavailable(f"{script.name}: {exc}")
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return LedgerUnavailable(f"{script.name}: Redis unavailable: {exc}")
    return exc


class ScriptCalls:
    """Script calls of one tenant's ledger over one Redis client (standalone or cluster)."""

    def __init__(
        self,
        client: Any,
        *,
        library: str,
        in_flight_max: int,
        waiting_max: int | None,
        repair: Repair | None,
        caller_options: dict[str, Any] | None = None,
    ) -> None:
        # Calls beyond the connection pool wait here instead of failing in the pool
        # (redis-py's cluster pool raises when it runs out of connections).
        # Calls beyond ``waiting_max`` waiting ones are refused at once (LedgerOverloaded): a
        # server sheds load instead of queueing requests into its Redis timeout.
        self.in_flight = InFlightLimit(in_flight_max, waiting_max)
        self.access = AccessGuard(repair)
        self.caller = ScriptCaller(
            client,
            library=library,
            reload_library=self.access.repair if self.access.enabled else None,
            **(caller_options or {}),
        )

    def close(self) -> None:
        self.caller.close()

    async def run(self, script: LuaScript, key_list: Sequence[str], args: Args) -> Any:
        """The full path: wait for a slot, call (repairing the tenant's access if Redis forgot
        it), and once more after a lost connection."""
        try:
            await self.in_flight.enter()
        except QueueFull as exc:
            raise LedgerOverloaded(f"{script.name}: overloaded: {exc}") from exc
        call = functools.partial(self.caller.call, script, key_list, args)
        try:
            try:
                return await self.access.run(call)
            except RedisConnectionError:
                # A pooled connection died (Redis restarted, failed over). Every script is
                # idempotent on its operation id, so one retry on a fresh connection is safe:
                # if the first attempt was applied, the retry returns its stored result. The
                # fresh connection may find the tenant's user gone: ``access`` repairs it.
                return await self.access.run(call)
        except Exception as exc:
            mapped = ledger_error(script, exc)
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            self.in_flight.leave()

    def lean(
        self,
        script: LuaScript,
        key_list: list[str],
        args: Args,
        decode: Callable[[Any], _T],
    ) -> asyncio.Future[_T]:
        """``lean_then`` settling a future (for callers that await)."""
        result: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self.lean_then(script, key_list, args, decode, functools.partial(settle_future, result))
        return result

    def lean_then(
        self,
        script: LuaScript,
        key_list: list[str],
        args: Args,
        decode: Callable[[Any], _T],
        then: Callable[[_T | None, BaseException | None], None],
        other_keys: bytes | None = None,
    ) -> None:
        """The hot path's script call: written at once on the lean connection and continued
        from the reply's ``data_received`` by ``then(result, None)`` or ``then(None, error)``
        (no task, coroutine or future per request); not connected yet, waiting for a slot, or
        not the lean connection: the full path (``run``), as a task. ``other_keys``: see
        ``ScriptCaller.start_then``."""
        flight = self.in_flight
        if flight.inside < flight.limit and not flight.waiters:
            # ``flight.try_enter()``, inline (once per CCR).
            flight.inside += 1
            replied = functools.partial(self._lean_replied, script, key_list, args, decode, then)
            try:
                started = self.caller.start_then(script, key_list, args, replied, other_keys)
            except BaseException:
                self.in_flight.leave()
                raise
            if started:
                return
            self.in_flight.leave()
        self._full_path(script, key_list, args, decode, then)

    def _full_path(
        self,
        script: LuaScript,
        key_list: list[str],
        args: Args,
        decode: Callable[[Any], _T],
        then: Callable[[_T | None, BaseException | None], None],
    ) -> None:
        task = asyncio.ensure_future(self._slow(script, key_list, args, decode))
        task.add_done_callback(functools.partial(continue_with, then))

    async def _slow(
        self, script: LuaScript, key_list: list[str], args: Args, decode: Callable[[Any], _T]
    ) -> _T:
        return decode(await self.run(script, key_list, args))

    def _lean_replied(
        self,
        script: LuaScript,
        key_list: list[str],
        args: Args,
        decode: Callable[[Any], _T],
        then: Callable[[_T | None, BaseException | None], None],
        reply: Any,
        error: BaseException | None,
    ) -> None:
        flight = self.in_flight
        if flight.waiters:
            flight.leave()  # the slot passes on to the first live waiter
        else:
            flight.inside -= 1  # ``leave``'s usual case, inline (once per CCR)
        if error is None:
            try:
                result = decode(reply)
            except Exception as exc:
                then(None, exc)
                return
            then(result, None)
            return
        if self.caller.retry_on_full_path(error):
            # The full path reconnects, reloads the library or follows the cluster, then calls
            # again: safe, the script is idempotent on the operation id.
            self._full_path(script, key_list, args, decode, then)
            return
        then(None, ledger_error(script, error))
