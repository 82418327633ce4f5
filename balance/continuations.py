"""Continuations, the hot path's alternative to futures: ``then(result, None)`` or
``then(None, error)`` runs where the outcome is known (a Redis reply's ``data_received``), with
no task, coroutine or loop pass per request. These two adapters join them to futures and tasks
for the callers that await or the paths that still run as tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Then = Callable[[Any, BaseException | None], None]


def settle_future(target: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """A continuation that settles ``target`` (unless its waiter gave up: cancelled)."""
    if target.done():
        return
    if isinstance(error, asyncio.CancelledError):
        target.cancel()
    elif error is not None:
        target.set_exception(error)
    else:
        target.set_result(result)


def continue_with(then: Then, work: asyncio.Future[Any]) -> None:
    """A done callback handing a future's or task's outcome to a continuation (cancelled:
    ``CancelledError``)."""
    if work.cancelled():
        then(None, asyncio.CancelledError())
    elif (error := work.exception()) is not None:
        then(None, error)
    else:
        then(work.result(), None)
