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

    async def run(self, make_call: Callable[[], Awaitable[T]]) -> T:
        """``make_call()``; after a refused login, one repair and one more try."""
        try:
            return await make_call()
        except (AuthenticationError, ResponseError) as exc:
            if self._repair is None or not access_lost(exc):
                raise
        await self.repair()
        return await make_call()
