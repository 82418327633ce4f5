"""Shared wake-ups for the many sleeps of a worker's sessions.

Every data session sleeps between its CCRs, so a worker at 1,500 CCR/s sleeps about 1,200 times
a second. One event-loop timer per sleep costs a timer handle, two timer-heap operations and a
callback each; sleeps that end in the same millisecond share one timer here instead.

The event loop's own timers already have millisecond resolution (uvloop rounds every delay to
whole milliseconds of its millisecond clock), so with ``slot_ms=1`` a sleep ends exactly when
its own timer would have: only the bookkeeping is shared. A coarser slot
(``load.session_timer_slot_ms``) lets a sleep end up to a slot later, so more sessions wake, and
write, together.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from sim.fiber import Wake, as_future


class WriteBatch(Protocol):
    """Connections whose writes wait while a slot's sessions run, then leave as one write each
    in the same loop iteration (not one iteration later, as a scheduled flush would)."""

    def hold_writes(self) -> None: ...

    def release_writes(self) -> None: ...


class TimerWheel:
    """``await wheel.wake_after(delay_s)`` in a session (:class:`sim.fiber.Fiber`),
    ``await wheel.sleep(delay_s)`` in a Task: one loop timer per slot of ``slot_ms`` ms."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, slot_ms: int = 1, *, writes: WriteBatch | None = None
    ) -> None:
        self._loop = loop
        self._slot_ms = slot_ms
        self._writes = writes
        # slot number (due time in slots of the loop's clock) -> sleepers waking then
        self._slots: dict[int, list[Wake[None]]] = {}

    def wake_after(self, delay_s: float) -> Wake[None]:
        """Resolved ``delay_s`` from now (rounded, like the loop's timers, to the slot)."""
        loop = self._loop
        now = loop.time()
        slot = -(-round((now + max(delay_s, 0.0)) * 1000) // self._slot_ms)  # ceiling
        wake: Wake[None] = Wake()
        waiters = self._slots.get(slot)
        if waiters is None:
            waiters = self._slots[slot] = []
            loop.call_later(slot * self._slot_ms / 1000 - now, self._fire, slot)
        waiters.append(wake)
        return wake

    def sleep(self, delay_s: float) -> asyncio.Future[None]:
        """The same, as a Future for code running in an asyncio Task."""
        return as_future(self.wake_after(delay_s), self._loop)

    def _fire(self, slot: int) -> None:
        writes = self._writes
        if writes is not None:
            writes.hold_writes()
        try:
            for wake in self._slots.pop(slot):
                wake.resolve(None)  # resumes the sleeping session here and now
        finally:
            if writes is not None:
                writes.release_writes()

    @property
    def slot_ms(self) -> int:
        return self._slot_ms

    @property
    def pending_slots(self) -> int:
        return len(self._slots)
