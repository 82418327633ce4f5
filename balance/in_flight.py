"""How many ledger calls one ``Ledger`` has at Redis at once.

An ``asyncio.Semaphore`` would do for coroutines, but the credit-control hot path starts its
script call without a coroutine (``Ledger.credit_control``) and needs to take a slot
synchronously or learn that it must wait. Slots are handed to waiters in arrival order; a call
that enters synchronously never overtakes one that is already waiting.

The queue of waiters can be bounded too: past ``waiting_max`` a call is refused at once
(``QueueFull``) rather than queued behind work Redis cannot finish before the caller's own
timeout. Under overload that keeps answers prompt (the caller answers 3004 TOO_BUSY and the
client retries or fails over) instead of letting every queued request time out together.
"""

from __future__ import annotations

import asyncio
import collections
import time


class QueueFull(Exception):
    """``waiting_max`` calls are already waiting for a slot."""


class InFlightLimit:
    """At most ``limit`` calls inside; up to ``waiting_max`` more (None: any number) wait
    (``enter``) in arrival order; beyond that ``enter`` raises ``QueueFull``."""

    def __init__(self, limit: int, waiting_max: int | None = None) -> None:
        if limit <= 0 or (waiting_max is not None and waiting_max < 0):
            raise ValueError("the in-flight limit must be positive, the queue not negative")
        self.limit = limit
        self.waiting_max = waiting_max
        self.inside = 0
        # Calls that had to wait for a slot, and their total wait: read by the metrics at scrape
        # time. Only the waiting path touches them; a call that enters at once costs nothing.
        self.waits = 0
        self.wait_s = 0.0
        # Public for the hot path's inline ``try_enter`` / ``leave`` (``ScriptCalls.lean_then``):
        # read it, never change it from outside.
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self.waiters)

    def try_enter(self) -> bool:
        """Take a slot now if one is free and nobody is waiting for one."""
        if self.inside < self.limit and not self.waiters:
            self.inside += 1
            return True
        return False

    async def enter(self) -> None:
        """Take a slot, waiting for one if need be."""
        if self.try_enter():
            return
        if self.waiting_max is not None and len(self.waiters) >= self.waiting_max:
            raise QueueFull(f"{len(self.waiters)} calls already waiting for one of {self.limit}")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self.waits += 1
        started = time.perf_counter()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # the slot was handed over just before the cancellation
            raise
        finally:
            self.wait_s += time.perf_counter() - started

    def leave(self) -> None:
        """Give the slot back: to the first live waiter, else to the pool."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; ``inside`` is unchanged
                return
        self.inside -= 1
