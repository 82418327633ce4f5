"""Sessions as coroutines run without asyncio Tasks.

A worker runs hundreds of short sessions a second, each waiting for an answer or a timer about
ten times. With a Task per session, each wait is a Future whose result reaches the session one
event-loop iteration later (``set_result`` schedules the Task's wake-up with ``call_soon``), and
the loop's bookkeeping (futures, handles, task switching) was the largest part of a worker's CPU.

Here a session coroutine awaits a :class:`Wake`, and whoever resolves it (the connection reading
an answer, the timer wheel) resumes the session on the spot. A session may still await ordinary
asyncio futures and tasks (a SIP call runs as a Task): those resume it the asyncio way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")


class Wake(Generic[_T]):
    """Something a session waits for: resolved once with a value, which resumes its waiter at
    once (``await wake`` is only valid in a :class:`Fiber`; see :func:`as_future` for Tasks)."""

    __slots__ = ("_callback", "done", "value")

    def __init__(self) -> None:
        self._callback: Callable[[_T], None] | None = None
        self.done = False
        self.value: _T | None = None

    def resolve(self, value: _T) -> None:
        if self.done:
            return
        self.done = True
        self.value = value
        callback = self._callback
        if callback is not None:
            self._callback = None
            callback(value)

    def then(self, callback: Callable[[_T], None]) -> None:
        """Call ``callback(value)`` when resolved (at once when already)."""
        if self.done:
            callback(self.value)  # type: ignore[arg-type]  # set by resolve()
        else:
            self._callback = callback

    def __await__(self) -> Generator[Wake[_T], Any, _T]:
        if not self.done:
            yield self
        return self.value  # type: ignore[return-value]  # set by resolve()


def resolved(value: _T) -> Wake[_T]:
    wake: Wake[_T] = Wake()
    wake.resolve(value)
    return wake


def as_future(wake: Wake[_T], loop: asyncio.AbstractEventLoop) -> asyncio.Future[_T]:
    """A Future with the Wake's value, for code that runs in an asyncio Task."""
    future: asyncio.Future[_T] = loop.create_future()

    def settle(value: _T) -> None:
        if not future.done():  # cancelled meanwhile
            future.set_result(value)

    wake.then(settle)
    return future


class Fiber:
    """Drives one coroutine: started at once, resumed by what it awaits; ``on_end(self)`` once
    it returns, raises (the exception in ``error``) or is cancelled."""

    __slots__ = ("_coro", "_on_end", "_waiting", "ended", "error")

    def __init__(self, coro: Coroutine[Any, Any, None], on_end: Callable[[Fiber], None]) -> None:
        self._coro = coro
        self._on_end = on_end
        self._waiting: asyncio.Future[Any] | None = None
        self.ended = False
        self.error: Exception | None = None

    def start(self) -> None:
        self._step(None)

    def _step(self, value: Any) -> None:
        if self.ended:  # cancelled while its answer or timer was on the way
            return
        try:
            waiting = self._coro.send(value)
        except StopIteration:
            self._end()
            return
        except Exception as exc:  # for on_end to report: whoever resumed us is not to blame
            self.error = exc
            self._end()
            return
        except BaseException:
            self._end()
            raise
        if type(waiting) is Wake:
            waiting.then(self._step)
        elif asyncio.isfuture(waiting):  # an asyncio Future or Task: resumed the asyncio way
            self._waiting = waiting
            waiting.add_done_callback(self._future_done)
        elif waiting is None:  # a bare yield (asyncio.sleep(0)): again on the next iteration
            asyncio.get_running_loop().call_soon(self._step, None)
        else:
            self.cancel()
            raise TypeError(f"a fiber cannot wait for {waiting!r}")

    def _future_done(self, _future: asyncio.Future[Any]) -> None:
        self._waiting = None
        self._step(None)  # the coroutine reads the future's result (or exception) itself

    def cancel(self) -> None:
        """Stop the coroutine where it waits (``GeneratorExit`` there) and whatever it awaits."""
        if self.ended:
            return
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
        self._coro.close()
        self._end()

    def _end(self) -> None:
        self.ended = True
        self._on_end(self)
