"""Background tasks: stopping never hangs; a failing periodic step logs once per run of
failures and backs off."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from ocs.background import BackgroundTask, PeriodicTask
from ocs.charging.notifications import NoticeListener


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        def record(event: str, **_fields: Any) -> None:
            self.lines.append((level, event))

        return record


async def test_a_swallowed_cancellation_is_repeated_until_the_task_ends() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 2:
                    raise  # as redis-py does: only a cancellation at the wrong moment is lost

    task = BackgroundTask(stubborn)
    task.start()
    await asyncio.sleep(0)
    assert await task.stop() is True
    assert swallowed == 3


async def test_a_task_that_never_ends_is_left_behind_and_stop_returns() -> None:
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = BackgroundTask(deaf, stop_wait_s=0.2)
    task.start()
    await asyncio.sleep(0)
    assert await task.stop() is False
    release.set()


async def test_failing_rounds_log_once_per_run_and_back_off() -> None:
    log = RecordingLog()
    outcomes = iter([ValueError("a"), ValueError("b"), ValueError("c"), None, ValueError("d")])
    rounds = 0
    done = asyncio.Event()

    async def step() -> None:
        nonlocal rounds
        rounds += 1
        outcome = next(outcomes, None)
        if rounds >= 5:
            done.set()
        if outcome is not None:
            raise outcome

    periodic = PeriodicTask("sweep", step, 0.001, log, failure_backoff_s=0.002)  # type: ignore[arg-type]
    periodic.start()
    await asyncio.wait_for(done.wait(), timeout=30)
    await periodic.stop()
    assert log.lines == [
        ("error", "sweep_failed"),
        ("debug", "sweep_failed"),
        ("debug", "sweep_failed"),
        ("info", "sweep_recovered"),
        ("error", "sweep_failed"),
    ]


async def test_notice_listener_stops_when_stopped_during_its_subscribe(redis_url: str) -> None:
    """Stopped right after start, while redis-py is still connecting (where it loses a
    cancellation), the listener still ends: a server's shutdown is never held up by it."""
    client = aioredis.Redis.from_url(redis_url)

    async def handler(_notice: Any) -> None:
        return None

    try:
        for pause in (0.0, 0.0005, 0.001, 0.002, 0.005):
            listener = NoticeListener(client, handler, log=RecordingLog())  # type: ignore[arg-type]
            listener.start()
            await asyncio.sleep(pause)
            assert await listener._task.stop() is True
    finally:
        await client.aclose()
