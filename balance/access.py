"""Getting a tenant's Redis access back after Redis forgot it.

A restarted Redis comes back without the tenant ACL users (``ACL SETUSER`` is not written to
the AOF) and possibly without the ledger's Functions library (``FUNCTION FLUSH``, a fresh
replica promoted). Every connection of the tenant's user is then refused with WRONGPASS /
NOAUTH, or every FCALL with "Function not found", until somebody provisions them again. The
tenant's user may do neither itself (it holds no administrative commands), so the server hands
each ledger a ``repair`` callable that does it on an admin connection; ``AccessGuard`` calls it
on such a refusal and tries the call once more. One repair runs at a time per tenant: a burst
of refused CCRs waits for the same one instead of each sending ``ACL SETUSER``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

T = TypeVar("T")
Repair = Callable[[], Awaitable[None]]

_AUTH_PREFIXES = ("WRONGPASS", "NOAUTH")


def access_lost(exc: BaseException) -> bool:
    """True when Redis refused the tenant's user itself (not a command or a key)."""
    if isinstance(exc, AuthenticationError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(_AUTH_PREFIXES)


class AccessGuard:
    """Runs calls for one tenant; on a refused login repairs the access once and retries."""

    def __init__(self, repair: Repair | None = None) -> None:
        self._repair = repair
        self._running: asyncio.Future[None] | None = None
        self.repairs = 0  # completed repairs, for tests and logs

    @property
    def enabled(self) -> bool:
        return self._repair is not None

    async def repair(self) -> None:
        """Re-provision the tenant's user and library (single flight); raises what it raised."""
        if self._repair is None:
            return
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._repair())
            running.add_done_callback(self._finished)
        # shield: one waiter cancelled (its request gave up) must not cancel the others' repair.
        await asyncio.shield(running)

    def _finished(self, future: asyncio.Future[None]) -> None:
        self._running = None
        if not future.cancelled() and future.exception() is None:
            self.repairs += 1

    async def run(self, make_call: Callable[[], Awaitable[T]], *, idempotent: bool = False) -> T:
        """``make_call()``; after a refused login, one repair and one more try. ``idempotent``
        calls are also tried again once after a lost connection: a restarted Redis first
        shows as the pooled connection closing, and only the next connection is refused."""
        retried = repaired = False
        while True:
            try:
                return await make_call()
            except (RedisConnectionError, ResponseError) as exc:
                if access_lost(exc):
                    if self._repair is None or repaired:
                        raise
                    repaired = True
                    await self.repair()
                elif idempotent and not retried and isinstance(exc, RedisConnectionError):
                    retried = True
                else:
                    raise
