"""Background work owned by a component: one task, started once, cancelled on stop.

Sweepers and listeners must outlive a failing round (Redis restarting, one bad record), so a
round's exception is logged and the next round runs; cancellation on stop is the only way out.

Stopping never hangs. redis-py's asyncio client swallows a cancellation that arrives while it
is connecting (seen with the notice listener's SUBSCRIBE right after start-up), so a task is
cancelled again every ``CANCEL_AGAIN_S`` until it ends; one still running after ``STOP_WAIT_S``
is left behind so the server's shutdown (DPR to the peers, closing listeners) goes on.
A failing periodic step waits ``failure_backoff_s`` before its next try and logs one error per
run of failures, not one per try (a sweeper stepping every 20 ms would otherwise log 50 lines
a second while Redis is down).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

Log = structlog.typing.FilteringBoundLogger


STOP_WAIT_S = 2.0
CANCEL_AGAIN_S = 0.05


class BackgroundTask:
    """Runs ``body`` as one task between ``start()`` and ``stop()``."""

    def __init__(
        self, body: Callable[[], Coroutine[Any, Any, None]], *, stop_wait_s: float = STOP_WAIT_S
    ) -> None:
        self._body = body
        self._stop_wait_s = stop_wait_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._body())

    async def stop(self) -> bool:
        """Cancel the task and wait for it (bounded); False if it did not finish in time."""
        task, self._task = self._task, None
        if task is None:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_wait_s
        while not task.done():
            left = deadline - loop.time()
            if left <= 0:
                return False
            task.cancel()
            await asyncio.wait({task}, timeout=min(CANCEL_AGAIN_S, left))
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()  # retrieved: it already said what went wrong while it ran
        return True


class PeriodicTask(BackgroundTask):
    """Awaits ``step()`` every ``interval_s``. A failing round is logged as ``<name>_failed``
    (once per run of failures; ``<name>_recovered`` when a round succeeds again) and the next
    try comes after ``failure_backoff_s`` (default: ``interval_s``)."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval_s: float,
        log: Log,
        *,
        failure_backoff_s: float | None = None,
    ) -> None:
        super().__init__(self._loop)
        self.name = name
        self._step = step
        self.interval_s = interval_s
        self.failure_backoff_s = interval_s if failure_backoff_s is None else failure_backoff_s
        self._log = log
        self.failures = 0  # consecutive failed rounds

    async def _loop(self) -> None:
        while True:
            try:
                await self._step()
            except Exception as exc:  # the next round may well succeed
                self.failures += 1
                if self.failures == 1:
                    self._log.error(f"{self.name}_failed", error=repr(exc))
                else:
                    self._log.debug(f"{self.name}_failed", error=repr(exc), times=self.failures)
                await asyncio.sleep(max(self.interval_s, self.failure_backoff_s))
                continue
            if self.failures:
                self._log.info(f"{self.name}_recovered", failed_rounds=self.failures)
                self.failures = 0
            await asyncio.sleep(self.interval_s)
