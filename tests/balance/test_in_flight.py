"""The in-flight limit of ledger calls: synchronous entry, arrival order, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from balance.in_flight import InFlightLimit, QueueFull


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        InFlightLimit(0, waiting_max=1)
    with pytest.raises(ValueError):
        InFlightLimit(1, waiting_max=-1)


async def test_waiters_get_slots_in_arrival_order_and_never_are_overtaken() -> None:
    limit = InFlightLimit(1, waiting_max=8)
    assert limit.try_enter()
    order: list[int] = []

    async def wait(n: int) -> None:
        await limit.enter()
        order.append(n)

    waiting = [asyncio.ensure_future(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    # A slot coming free goes to the first waiter, so a new synchronous entry is refused.
    limit.leave()
    assert not limit.try_enter()
    await asyncio.sleep(0)
    assert order == [0]
    limit.leave()
    limit.leave()
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2] and limit.inside == 1
    limit.leave()
    assert limit.inside == 0 and limit.try_enter()


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    limit = InFlightLimit(1, waiting_max=8)
    assert limit.try_enter()
    waiter = asyncio.ensure_future(limit.enter())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limit.leave()
    assert limit.inside == 0


async def test_a_slot_handed_to_a_waiter_cancelled_before_it_ran_is_given_back() -> None:
    limit = InFlightLimit(1, waiting_max=8)
    assert limit.try_enter()
    waiter = asyncio.ensure_future(limit.enter())
    await asyncio.sleep(0)
    limit.leave()  # hands the slot over ...
    waiter.cancel()  # ... but the waiting task is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limit.inside == 0 and limit.try_enter()


async def test_a_full_queue_refuses_at_once() -> None:
    limit = InFlightLimit(1, waiting_max=1)
    assert limit.try_enter()
    waiter = asyncio.ensure_future(limit.enter())
    await asyncio.sleep(0)
    assert limit.waiting == 1
    with pytest.raises(QueueFull):
        await limit.enter()
    limit.leave()
    await waiter  # the queued call got the slot
    limit.leave()
    assert limit.inside == 0 and limit.waiting == 0
