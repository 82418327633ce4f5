"""Background work owned by a component: one task, started once, cancelled on stop.

Sweepers and listeners must outlive a failing round (Redis restarting, one bad record), so a
round's exception is logged and the next round runs; cancellation on stop is the only way out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

Log = structlog.typing.FilteringBoundLogger


class BackgroundTask:
    """Runs ``body`` as one task between ``start()`` and ``stop()``."""

    def __init__(self, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._body = body
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._body())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class PeriodicTask(BackgroundTask):
    """Awaits ``step()`` every ``interval_s``; a failing round is logged as ``<name>_failed``."""

    def __init__(
        self, name: str, step: Callable[[], Awaitable[object]], interval_s: float, log: Log
    ) -> None:
        super().__init__(self._loop)
        self.name = name
        self._step = step
        self.interval_s = interval_s
        self._log = log

    async def _loop(self) -> None:
        while True:
            try:
                await self._step()
            except Exception as exc:  # the next round may well succeed
                self._log.error(f"{self.name}_failed", error=repr(exc))
            await asyncio.sleep(self.interval_s)
