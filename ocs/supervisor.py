"""Child processes of ``ocs up``: a list of specs (``ocs serve``, ``ocs export``, later ``ocs api``
and ``ocs dispatch``), each started, restarted with backoff when it dies, and all stopped
together (SIGTERM, then SIGKILL after a grace period) on SIGINT/SIGTERM.

The restart decision is a pure function of the child's history (``RestartPolicy``); the
asyncio part only spawns, waits and signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

Log = structlog.typing.FilteringBoundLogger


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RestartPolicy:
    """Backoff doubling from ``first_s`` to ``max_s`` while a child keeps dying young; a child
    that ran ``stable_s`` or longer starts again from ``first_s``."""

    first_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 60.0
    failures: int = 0

    def delay_after_exit(self, ran_for_s: float) -> float:
        if ran_for_s >= self.stable_s:
            self.failures = 0
        self.failures += 1
        return float(min(self.max_s, self.first_s * 2.0 ** min(self.failures - 1, 30)))


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ChildSpec],
        log: Log,
        *,
        stop_grace_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if len({s.name for s in specs}) != len(specs):
            raise ValueError("child names must be unique")
        self.specs = list(specs)
        self.log = log
        self.stop_grace_s = stop_grace_s
        self.clock = clock
        self.stop_event = asyncio.Event()
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.restarts: dict[str, int] = {s.name: 0 for s in specs}

    async def run(self) -> None:
        """Run every child until ``stop_event``; then stop them all."""
        tasks = [asyncio.create_task(self._keep(spec)) for spec in self.specs]
        try:
            await self.stop_event.wait()
        finally:
            self.stop_event.set()
            await self._stop_all()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _keep(self, spec: ChildSpec) -> None:
        policy = RestartPolicy()
        while not self.stop_event.is_set():
            started = self.clock()
            process = await asyncio.create_subprocess_exec(
                *spec.argv, env={**os.environ, **spec.env}, start_new_session=True
            )
            self.processes[spec.name] = process
            self.log.info("child_started", child=spec.name, pid=process.pid)
            code = await process.wait()
            if self.stop_event.is_set():
                return
            delay = policy.delay_after_exit(self.clock() - started)
            self.restarts[spec.name] += 1
            self.log.warning("child_exited", child=spec.name, code=code, restart_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), delay)

    async def _stop_all(self) -> None:
        """SIGTERM every child (each shuts down gracefully), SIGKILL what is left after the
        grace period. Children run in their own sessions: a Ctrl-C reaches only us."""
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if not running:
            return
        waits = [asyncio.create_task(p.wait()) for p in running]
        _, pending = await asyncio.wait(waits, timeout=self.stop_grace_s)
        for process in running:
            if process.returncode is None:
                self.log.warning("child_killed", pid=process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        if pending:
            await asyncio.wait(pending, timeout=5)
